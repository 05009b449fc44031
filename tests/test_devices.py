"""Devices: every registry op gives the CPU's values and gradients on ``strict`` and ``cuda``.

``strict`` (``strict_backend.py``) always runs, so CI without a GPU still proves the core is
device-agnostic; ``cuda`` runs where a GPU and CuPy exist (``make test-gpu``) and otherwise skips
with the reason. Parity: float64, relative error ≤ 1e-9 (relative to the array's largest value
for entries near zero, where a relative error means nothing).
"""

import devices
import numpy as np
import pytest
import strict_backend
from devices import device_params
from hypothesis import given, settings
from hypothesis import strategies as st
from op_registry import OPS, forward_backward

import tinygrad_rnn as tg
from tinygrad_rnn import get_backend
from tinygrad_rnn.backend import GPU_INSTALL_HINT
from tinygrad_rnn.testing import examples

PARITY_RTOL = 1e-9


def assert_parity(actual: np.ndarray, cpu: np.ndarray, what: str):
    assert actual.shape == cpu.shape and actual.dtype == cpu.dtype, (
        f"{what}: {actual.shape} {actual.dtype} on device vs {cpu.shape} {cpu.dtype} on cpu"
    )
    if cpu.dtype.kind != "f":
        np.testing.assert_array_equal(actual, cpu, err_msg=what)
        return
    scale = float(np.max(np.abs(cpu))) if cpu.size else 0.0
    np.testing.assert_allclose(actual, cpu, rtol=PARITY_RTOL, atol=PARITY_RTOL * scale, err_msg=what)


@pytest.mark.parametrize("spec", OPS, ids=lambda s: s.name)
@pytest.mark.parametrize("device", device_params(cpu=False, cuda="always"))
@settings(max_examples=examples(15))
@given(data=st.data())
def test_op_matches_cpu_forward_and_gradients(spec, device, data):
    case = data.draw(spec.cases, label="case")
    seed = data.draw(st.integers(0, 2**32 - 1), label="upstream seed")
    cpu_in, cpu_out = forward_backward(spec, case, "cpu", seed)
    dev_in, dev_out = forward_backward(spec, case, device, seed)
    for k, (d, c) in enumerate(zip(dev_out, cpu_out)):
        assert d.device == device
        assert_parity(d.numpy(), c.numpy(), f"{spec.name} output {k}")
    for i, (d, c) in enumerate(zip(dev_in, cpu_in)):
        assert (d.grad is None) == (c.grad is None), (
            f"{spec.name}: input {i} has a gradient on one device only"
        )
        if c.grad is not None:
            assert isinstance(d.grad, get_backend(device).array_type)
            assert_parity(
                d.backend.to_host(d.grad), c.backend.to_host(c.grad), f"{spec.name} grad of input {i}"
            )


# ---- the strict device really is strict (else the parity above would prove little) --------------


@pytest.fixture
def strict_array():
    return tg.Tensor([[1.0, 2.0], [3.0, 4.0]], device="strict", dtype="float64").data


def test_strict_arrays_are_not_numpy_arrays(strict_array):
    assert not isinstance(strict_array, np.ndarray)
    assert get_backend("strict").array_type is strict_backend.StrictArray


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda a: np.float64(1.0) + np.ones(2) + a])
def test_strict_arrays_refuse_implicit_conversion(strict_array, convert):
    with pytest.raises(TypeError):
        convert(strict_array)


@pytest.mark.parametrize(
    "mix",
    [
        lambda a: a + np.ones((2, 2)),
        lambda a: np.ones((2, 2)) * a,
        lambda a: a[np.array([0, 1])],
        lambda a: a.__setitem__(0, np.zeros(2)),
        lambda a: get_backend("strict").xp.stack([a, np.ones((2, 2))]),
    ],
    ids=["array_right", "array_left", "host_index", "host_assign", "xp_function"],
)
def test_strict_arrays_refuse_to_mix_with_host_arrays(strict_array, mix):
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        mix(strict_array)


@pytest.mark.parametrize(
    "fn",
    [np.exp, np.sum, np.transpose, lambda a: np.stack([a, a])],
    ids=["ufunc", "reduction", "function", "stack"],
)
def test_strict_arrays_refuse_numpy_functions(strict_array, fn):
    with pytest.raises(TypeError, match="backend.xp"):
        fn(strict_array)


def test_strict_arrays_allow_what_cupy_allows(strict_array):
    xp = get_backend("strict").xp
    total = xp.exp(strict_array).sum()
    assert isinstance(total, strict_backend.StrictArray) and total.shape == ()  # 0-d, not a scalar
    assert isinstance(np.float64(2.0) * strict_array + 1, strict_backend.StrictArray)
    assert float(strict_array.sum()) == 10.0 and bool((strict_array > 0).all())
    np.testing.assert_array_equal(xp.asnumpy(strict_array), [[1.0, 2.0], [3.0, 4.0]])


def test_strict_scatter_add_sums_repeated_indices():
    backend = get_backend("strict")
    target = backend.xp.zeros((3, 2))
    backend.scatter_add(target, backend.asarray([0, 2, 0]), backend.asarray(np.ones((3, 2))))
    np.testing.assert_array_equal(backend.to_host(target), [[2, 2], [0, 0], [1, 1]])


# ---- the strict device behaves like CuPy where it matters ---------------------------


def test_strict_wraps_out_of_range_integer_array_indices_like_cupy():
    xp = get_backend("strict").xp
    a = xp.asarray(np.arange(4.0))
    np.testing.assert_array_equal(xp.asnumpy(a[xp.asarray([5, -6])]), [1.0, 2.0])  # NumPy would raise
    table = xp.asarray(np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(xp.asnumpy(table[xp.asarray([0, 1]), xp.asarray([3, 2])]), [1.0, 2.0])
    a[xp.asarray([4])] = 9.0
    np.testing.assert_array_equal(xp.asnumpy(a), [9.0, 1.0, 2.0, 3.0])
    xp.add.at(a, xp.asarray([7, 7]), 1.0)
    np.testing.assert_array_equal(xp.asnumpy(a), [9.0, 1.0, 2.0, 5.0])
    with pytest.raises(IndexError):
        a[7]  # a scalar index is checked, as on CuPy


def test_strict_offers_only_functions_cupy_has():
    xp = get_backend("strict").xp
    for numpy_only in ("errstate", "seterr", "add.reduceat"):
        with pytest.raises(AttributeError, match="not offered"):
            obj = xp
            for part in numpy_only.split("."):
                obj = getattr(obj, part)
    assert xp.add.at is not None and xp.stack is not None


@pytest.mark.parametrize(
    "dtype, ok", [("float32", True), ("float64", True), ("int32", True), ("int64", False), ("bool", False)]
)
def test_strict_scatter_add_accepts_cupys_dtypes_only(dtype, ok):
    backend = get_backend("strict")
    target = backend.xp.zeros(3, dtype=dtype)
    values = backend.asarray(np.ones(2, dtype=dtype))
    if ok:
        backend.scatter_add(target, backend.asarray([0, 0]), values)
        assert backend.to_host(target)[0] == 2
    else:
        with pytest.raises(TypeError, match=f"does not support dtype {dtype}"):
            backend.scatter_add(target, backend.asarray([0, 0]), values)


def test_losses_and_last_state_pick_the_right_elements_on_the_strict_device():
    """cross_entropy and last_state index by construction; on a wrapping device a wrong index
    would give a wrong number, so their values are held against the CPU."""
    from tinygrad_rnn.nn import functional as F

    rng = np.random.default_rng(0)
    logits, targets = rng.normal(size=(4, 3, 5)), np.array([[0, 4, -100], [1, 2, 3], [4, 4, 0], [-100, 1, 2]])
    outputs, lengths = rng.normal(size=(4, 3, 2)), np.array([3, 1, 2, 3])
    for reduction in ("mean", "none"):
        want = F.cross_entropy(tg.Tensor(logits), targets, reduction=reduction).numpy()
        got = F.cross_entropy(
            tg.Tensor(logits, device="strict"), tg.Tensor(targets, device="strict"), reduction=reduction
        ).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-14)
    np.testing.assert_array_equal(
        F.last_state(tg.Tensor(outputs, device="strict"), lengths).numpy(), outputs[np.arange(4), lengths - 1]
    )


# ---- which devices run: TINYGRAD_RNN_TEST_DEVICE (make test-gpu) ---------------------------------


def _names(params):
    return [p.values[0] for p in params]


def _skipped(params):
    return {p.values[0]: m.kwargs["reason"] for p in params for m in p.marks if m.name == "skip"}


def test_device_list_always_has_cpu_and_strict(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_ENV, raising=False)
    names = _names(device_params())
    assert names[:2] == ["cpu", "strict"]
    assert ("cuda" in names) == tg.device_available("cuda")


def test_requested_cuda_is_listed_and_skips_with_the_reason_when_missing(monkeypatch):
    monkeypatch.setenv(devices.DEVICE_ENV, "cuda")
    params = device_params()
    assert _names(params) == ["cpu", "strict", "cuda"]
    if tg.device_available("cuda"):
        assert "cuda" not in _skipped(params)
    else:  # the reason says what is missing: CuPy (with the pip command) or a GPU
        reason = _skipped(params)["cuda"]
        assert GPU_INSTALL_HINT in reason or "GPU" in reason, reason


def test_cuda_grad_is_a_cupy_array(cuda):
    x = tg.Tensor([1.0, 2.0], device=cuda, dtype="float64", requires_grad=True)
    (x * x).sum().backward()
    assert type(x.grad).__module__.startswith("cupy")
    np.testing.assert_array_equal(x.backend.to_host(x.grad), [2.0, 4.0])
