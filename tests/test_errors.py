"""One test per error: each raises a clear exception whose message says what to do."""

import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import backend, optim
from tinygrad_rnn.backend import GPU_INSTALL_HINT, DeviceError
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.tensor import ShapeError

# ---- devices -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: tg.Tensor([1.0], device="tpu"),
        lambda: tg.zeros(2, device="tpu"),
        lambda: tg.Tensor([1.0]).to("tpu"),
        lambda: tg.set_default_device("tpu"),
    ],
    ids=["Tensor", "zeros", "to", "set_default_device"],
)
def test_unknown_device_names_it_and_the_known_ones(make):
    with pytest.raises(DeviceError) as info:
        make()
    message = str(info.value)
    assert "'tpu'" in message and "'cpu'" in message and "'cuda'" in message
    assert tg.get_default_device() == "cpu"


@pytest.fixture
def cuda_backend_cleared(monkeypatch):
    """Forget any created cuda backend (restored afterwards) so the next use imports CuPy again."""
    monkeypatch.delitem(backend._BACKENDS, "cuda", raising=False)
    monkeypatch.setattr(backend, "_default_device", backend._default_device)


@pytest.fixture
def without_cupy(monkeypatch, cuda_backend_cleared):
    """Simulate a machine without CuPy: ``import cupy`` raises ImportError."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setitem(sys.modules, "cupyx", None)


@pytest.mark.parametrize(
    "use",
    [
        lambda: tg.get_backend("cuda"),
        lambda: tg.Tensor([1.0], device="cuda"),
        lambda: tg.Tensor([1.0]).to("cuda"),
        lambda: tg.randn(2, 3, device="cuda"),
        lambda: tg.set_default_device("cuda"),
    ],
    ids=["get_backend", "Tensor", "to", "randn", "set_default_device"],
)
def test_cuda_without_cupy_names_the_pip_install(without_cupy, use):
    with pytest.raises(DeviceError, match=re.escape("pip install -e '.[gpu]'")):
        use()
    assert not tg.device_available("cuda")
    assert tg.get_default_device() == "cpu"


def test_cuda_from_the_environment_without_cupy(without_cupy, monkeypatch):
    monkeypatch.setenv("TINYGRAD_RNN_DEVICE", "cuda")
    with pytest.raises(DeviceError, match=re.escape(GPU_INSTALL_HINT)):
        backend._device_from_environment()


def test_default_device_from_the_environment(monkeypatch, cuda_backend_cleared):
    monkeypatch.setenv("TINYGRAD_RNN_DEVICE", "strict")
    backend._device_from_environment()
    assert tg.get_default_device() == "strict" and tg.Tensor([1.0]).device == "strict"


def _fake_cupy(get_device_count):
    cupy = types.ModuleType("cupy")
    cupy.ndarray = type("ndarray", (), {})
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return cupy


def _no_driver():
    raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


@pytest.mark.parametrize(
    "count, expected",
    [(_no_driver, "no usable GPU"), (lambda: 0, "found no GPU")],
    ids=["driver_error", "zero_gpus"],
)
def test_cuda_with_cupy_but_no_gpu_says_so(monkeypatch, cuda_backend_cleared, count, expected):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    monkeypatch.setitem(sys.modules, "cupyx", types.ModuleType("cupyx"))
    with pytest.raises(DeviceError, match=expected) as info:
        tg.Tensor([1.0], device="cuda")
    assert "device='cpu'" in str(info.value)


@pytest.mark.parametrize(
    "mix",
    [
        lambda a, b: a + b,
        lambda a, b: b * a,
        lambda a, b: a @ b,
        lambda a, b: tg.stack([a, b]),
        lambda a, b: tg.concatenate([a, b]),
        lambda a, b: tg.where(a > 0, a, b),
        lambda a, b: a < b,
        lambda a, b: a + b.data,  # a raw array of the other device
    ],
    ids=["add", "mul", "matmul", "stack", "concatenate", "where", "compare", "raw_array"],
)
def test_mixing_devices_names_both(mix):
    a = tg.Tensor(np.ones((2, 2)), requires_grad=True)
    b = tg.Tensor(np.ones((2, 2)), device="strict")
    with pytest.raises(DeviceError) as info:
        mix(a, b)
    message = str(info.value)
    assert "cpu" in message and "strict" in message and ".to(device)" in message


def test_gather_rows_with_ids_on_another_device_names_both():
    table = tg.Tensor(np.ones((4, 2)))
    with pytest.raises(DeviceError, match="cpu.*strict|strict.*cpu"):
        tg.gather_rows(table, tg.Tensor([0, 1], device="strict"))


# ---- shapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, shapes",
    [
        (lambda d: tg.zeros(2, 3, device=d) + tg.zeros(4, device=d), ["(2, 3)", "(4,)"]),
        (lambda d: tg.zeros(2, 3, device=d) @ tg.zeros(4, 5, device=d), ["(2, 3)", "(4, 5)"]),
        (lambda d: tg.zeros(2, 3, 4, device=d) @ tg.zeros(5, 6, device=d), ["(2, 3, 4)", "(5, 6)"]),
        (lambda d: tg.stack([tg.zeros(2, 3, device=d), tg.zeros(3, 2, device=d)]), ["(2, 3)", "(3, 2)"]),
        (
            lambda d: tg.concatenate([tg.zeros(2, 3, device=d), tg.zeros(2, 4, device=d)]),
            ["(2, 3)", "(2, 4)"],
        ),
        (
            lambda d: tg.where(tg.zeros(2, device=d) > 0, tg.zeros(2, device=d), tg.zeros(3, device=d)),
            ["(2,)", "(3,)"],
        ),
    ],
    ids=["add", "matmul", "matmul_batched", "stack", "concatenate", "where"],
)
def test_shape_error_names_both_shapes(device, bad, shapes):
    with pytest.raises(ShapeError) as info:
        bad(device)
    for shape in shapes:
        assert shape in str(info.value)
    assert isinstance(info.value, ValueError)


def test_backward_with_a_wrong_gradient_shape_names_both(device):
    y = tg.zeros(2, 3, device=device, requires_grad=True) * 2
    with pytest.raises(ShapeError, match=re.escape("(3, 2)") + ".*" + re.escape("(2, 3)")):
        y.backward(np.ones((3, 2)))


@pytest.mark.parametrize(
    "bad",
    [
        lambda x: x.split(4, axis=1),
        lambda x: x.split([1, 1], axis=1),
        lambda x: x.reshape(4, 2),
        lambda x: x.permute(0, 0),
    ],
    ids=["split_count", "split_sizes", "reshape", "permute"],
)
def test_shape_ops_refuse_impossible_shapes(bad):
    with pytest.raises(ShapeError, match=re.escape("(2, 3)")):
        bad(tg.zeros(2, 3))


# ---- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ids, bad", [([0, 4, 1], 4), ([2, -1], -1), ([[0, 1], [7, 2]], 7)], ids=["past_the_end", "negative", "2d"]
)
def test_gather_rows_refuses_out_of_range_ids_on_every_device(device, ids, bad):
    table = tg.Tensor(np.arange(8.0).reshape(4, 2), device=device, requires_grad=True)
    with pytest.raises(IndexError) as info:
        tg.gather_rows(table, tg.Tensor(ids, device=device))
    assert f"id {bad} " in str(info.value) and "0..3" in str(info.value)


def test_gather_rows_refuses_float_ids(device):
    with pytest.raises(TypeError, match="integers"):
        tg.gather_rows(tg.zeros(4, 2, device=device), tg.Tensor([0.0, 1.0], device=device))


# ---- autodiff misuse -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: tg.Tensor([1, 2, 3], requires_grad=True),
        lambda: tg.Tensor(np.array([1, 2]), requires_grad=True),
        lambda: tg.Tensor([True, False]).requires_grad_(),
    ],
    ids=["list", "array", "requires_grad_"],
)
def test_requires_grad_on_an_integer_tensor_is_refused(make):
    with pytest.raises(TypeError, match="floating-point"):
        make()


def test_backward_on_a_non_scalar_needs_a_gradient(device):
    y = tg.Tensor([1.0, 2.0], device=device, requires_grad=True) * 3
    with pytest.raises(RuntimeError, match=r"scalar.*\(2,\).*backward\(grad\)"):
        y.backward()


def test_backward_without_a_graph_is_refused():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (tg.Tensor([1.0]) * 2).sum().backward()


def test_power_by_a_tensor_is_refused():
    x = tg.Tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="Python number"):
        x**x


def test_item_of_many_elements_is_refused():
    with pytest.raises(ValueError, match=re.escape("(2,)")):
        tg.Tensor([1.0, 2.0]).item()


def test_unusable_device_in_the_environment_fails_at_first_use_not_at_import():
    env = {**os.environ, "TINYGRAD_RNN_DEVICE": "tpu"}
    code = (
        "import tinygrad_rnn as tg\n"
        "print(tg.Tensor([1.0], device='cpu').device)\n"  # naming the device works
        "tg.Tensor([1.0])\n"
    )  # the default device is refused
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "cpu\n", proc.stderr
    assert proc.returncode != 0 and "DeviceError: unknown device 'tpu'" in proc.stderr


def test_cli_with_an_unusable_device_in_the_environment_says_so_in_one_line(tmp_path):
    env = {**os.environ, "TINYGRAD_RNN_DEVICE": "tpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", "predict", str(tmp_path), "好"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown device 'tpu'"), proc.stderr
    assert proc.stderr.count("\n") == 1


# ---- axes out of range ---------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, axis",
    [
        (lambda x: x.sum(axis=2), 2),
        (lambda x: x.sum(axis=(0, 2)), 2),
        (lambda x: x.mean(axis=-3), -3),
        (lambda x: x.max(axis=5), 5),
        (lambda x: x.log_softmax(axis=2), 2),
        (lambda x: x.permute(2, 1), 2),
        (lambda x: tg.stack([x, x], axis=5), 5),  # stacking makes 3 dimensions: NumPy names those
        (lambda x: tg.stack([x, x], axis=-4), -4),
        (lambda x: x.unbind(axis=2), 2),
        (lambda x: x.split(1, axis=3), 3),
        (lambda x: tg.cat([x, x], axis=5), 5),
        (lambda x: x.transpose(0, 2), 2),
    ],
    ids=[
        "sum",
        "sum_tuple",
        "mean",
        "max",
        "log_softmax",
        "permute",
        "stack",
        "stack_negative",
        "unbind",
        "split",
        "cat",
        "transpose",
    ],
)
def test_out_of_range_axes_raise_like_numpy(device, bad, axis):
    x = tg.zeros(2, 3, device=device)
    with pytest.raises(IndexError) as info:  # NumPy's AxisError is an IndexError and a ValueError
        bad(x)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    ndim = 3 if "stack" in bad.__code__.co_names else 2
    assert f"axis {axis} is out of bounds for array of dimension {ndim}" in message, message


def test_repeated_axes_say_so():
    with pytest.raises(ValueError, match=r"axis \(0, -2\) repeats an axis"):
        tg.zeros(2, 3).sum(axis=(0, -2))


def test_transpose_with_one_axis_says_what_it_takes():
    with pytest.raises(TypeError, match="no axes .* or two axes"):
        tg.zeros(2, 3).transpose(0)


# ---- errors inside an op keep their type and their cause ---------------------------


class _BuggyOp(tg.Op):
    name = "buggy"

    def forward(self, a):
        raise ValueError("a learner's bug in forward")


def test_a_value_error_inside_forward_is_not_turned_into_a_shape_error():
    with pytest.raises(ValueError, match="a learner's bug") as info:
        _BuggyOp.apply(tg.zeros(2))
    assert not isinstance(info.value, ShapeError)
    assert info.traceback[-1].name == "forward", "the traceback must end in the op's own forward"


def test_a_shape_error_keeps_numpys_error_as_its_cause():
    with pytest.raises(ShapeError) as info:
        tg.zeros(2, 3) + tg.zeros(4)
    assert isinstance(info.value.__cause__, ValueError) and "broadcast" in str(info.value.__cause__)


# ---- devices and pieces --------------------------------------------------------------


def test_cross_entropy_with_targets_on_another_device_names_both():
    logits = tg.Tensor(np.zeros((2, 3)), requires_grad=True)
    with pytest.raises(DeviceError, match="cpu.*strict"):
        F.cross_entropy(logits, tg.Tensor([0, 1], device="strict"))


def test_backward_with_a_gradient_on_another_device_names_both():
    y = tg.Tensor(np.ones(2), requires_grad=True) * 2
    with pytest.raises(DeviceError, match="strict.*cpu"):
        y.backward(tg.Tensor(np.ones(2), device="strict"))
    with pytest.raises(DeviceError, match="strict.*cpu"):
        y.backward(tg.Tensor(np.ones(2), device="strict").data)


def test_clip_grad_norm_over_two_devices_names_both():
    a = tg.Tensor(np.ones(2), requires_grad=True)
    b = tg.Tensor(np.ones(2), device="strict", requires_grad=True)
    a.grad, b.grad = a.xp.ones(2), b.xp.ones(2)
    with pytest.raises(DeviceError, match="cpu, strict"):
        optim.clip_grad_norm_([a, b], 1.0)


def test_split_refuses_a_negative_piece_size():
    with pytest.raises(ShapeError, match=r"\[3, -1\] must not be negative"):
        tg.zeros(2, 3).split([3, -1], axis=1)
