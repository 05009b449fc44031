"""Every op of the registry (``op_registry.py``) on every device under test:

* forward values, shape, dtype and array type match the NumPy reference;
* gradients match finite differences (``gradcheck`` in float64, both modes);
* ``.grad`` is a device array of the input's shape and dtype;
* ops outside the graph (detach, comparisons, argmax) record nothing.
"""

import numpy as np
import pytest
from devices import device_params, host
from hypothesis import given, settings
from hypothesis import strategies as st
from op_registry import ERRORS, OPS, as_tuple, forward_backward, recording_ops

import tinygrad_rnn as tg
from tinygrad_rnn import get_backend
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.testing import examples

DIFFERENTIABLE = [spec for spec in OPS if spec.differentiable]
GRAPHLESS = [spec for spec in OPS if not spec.differentiable]

by_op = pytest.mark.parametrize("spec", OPS, ids=lambda s: s.name)
by_differentiable_op = pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=lambda s: s.name)
by_device = pytest.mark.parametrize("device", device_params())


@by_op
@by_device
@settings(max_examples=examples(25))
@given(data=st.data())
def test_forward_matches_numpy(spec, device, data):
    case = data.draw(spec.cases, label="case")
    with recording_ops() as seen:
        outputs = as_tuple(spec.fn(*case.tensors(device), **case.params))
    assert not spec.ops or seen & set(spec.ops), f"{spec.name} names ops {spec.ops} but ran {sorted(seen)}"
    expected = as_tuple(spec.ref(*case.arrays, **case.params))
    assert len(outputs) == len(expected)
    array_type = get_backend(device).array_type
    for k, (out, ref) in enumerate(zip(outputs, expected)):
        ref = np.asarray(ref)
        assert out.device == device
        assert isinstance(out.data, array_type), f"output {k} is a {type(out.data)}, not a {array_type}"
        assert out.shape == ref.shape, f"output {k}: shape {out.shape}, NumPy gives {ref.shape}"
        assert out.dtype == ref.dtype, f"output {k}: dtype {out.dtype}, NumPy gives {ref.dtype}"
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12, atol=1e-12, err_msg=f"output {k}")


@pytest.mark.parametrize(
    "spec, mode",
    [(spec, mode) for spec in DIFFERENTIABLE for mode in spec.grad_modes],
    ids=lambda x: x.name if hasattr(x, "name") else x,
)
@by_device
@settings(max_examples=examples(12))
@given(data=st.data())
def test_gradcheck(spec, device, mode, data):
    case = data.draw(spec.cases, label="case")
    inputs = case.tensors(device)
    assert any(t.requires_grad for t in inputs), "a differentiable op's case needs a float input"
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    assert gradcheck(
        lambda *ts: spec.fn(*ts, **case.params), inputs, mode=mode, seed=seed, **spec.grad_kwargs
    )


@by_differentiable_op
@by_device
@settings(max_examples=examples(8))
@given(data=st.data())
def test_grad_is_a_device_array_of_the_input_shape(spec, device, data):
    case = data.draw(spec.cases, label="case")
    inputs, _ = forward_backward(spec, case, device, seed=0)
    array_type = get_backend(device).array_type
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            assert t.grad is None, f"input {i} is a constant but got a gradient"
            continue
        assert isinstance(t.grad, array_type), f"input {i}: grad is a {type(t.grad)}, not a {array_type}"
        assert tuple(t.grad.shape) == t.shape, f"input {i}: grad shape {tuple(t.grad.shape)} != {t.shape}"
        assert t.grad.dtype == t.dtype, f"input {i}: grad dtype {t.grad.dtype} != {t.dtype}"
        assert np.all(np.isfinite(t.numpy())) and np.all(np.isfinite(get_backend(device).to_host(t.grad)))


@pytest.mark.parametrize("spec", GRAPHLESS, ids=lambda s: s.name)
@by_device
@settings(max_examples=examples(5))
@given(data=st.data())
def test_graphless_ops_record_nothing(spec, device, data):
    case = data.draw(spec.cases, label="case")
    inputs = case.tensors(device)
    assert any(t.requires_grad for t in inputs)
    for out in as_tuple(spec.fn(*inputs, **case.params)):
        assert not out.requires_grad and out.is_leaf
        with pytest.raises(RuntimeError, match="does not require grad"):
            out.sum().backward() if out.dtype.kind == "f" else out.backward()


@pytest.mark.parametrize("spec", ERRORS, ids=lambda s: s.name)
def test_bad_inputs_are_refused_on_every_device(spec, device):
    """On the strict device an unchecked index would wrap (as on CuPy) and return a wrong value."""
    with pytest.raises(spec.error, match=spec.match):
        spec.fn(device)


# ---- numerical stability at extreme inputs (beyond the registry's bounded values) ------------------


def test_log_softmax_is_stable_for_logits_of_1e4(device):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]])
    x = tg.Tensor(logits, device=device, requires_grad=True)
    y = x.log_softmax(axis=-1)
    np.testing.assert_allclose(y.numpy(), [[0.0, -2e4, -1e4], [-np.log(3)] * 3], rtol=1e-15, atol=1e-12)
    g = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 1.0]])
    y.backward(g)
    softmax = np.array([[1.0, 0.0, 0.0], [1 / 3] * 3])
    np.testing.assert_allclose(x.numpy(), logits)
    np.testing.assert_allclose(
        get_backend(device).to_host(x.grad), g - softmax * g.sum(axis=-1, keepdims=True), atol=1e-12
    )


def test_sigmoid_saturates_without_overflow(device):
    x = tg.Tensor([-1000.0, 0.0, 1000.0], device=device, dtype="float64", requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # e^-1000 underflowing to 0 is exact
        y = x.sigmoid()
        y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(get_backend(device).to_host(x.grad), [0.0, 0.25, 0.0])


@pytest.mark.parametrize(
    "make_index",
    [
        lambda ids: ids,  # a host NumPy array
        lambda ids: ids.tolist(),  # a list
        lambda ids: (slice(None), ids),  # inside a tuple
    ],
    ids=["numpy", "list", "tuple"],
)
def test_getitem_moves_host_index_arrays_to_the_device(device, make_index):
    x = tg.Tensor(np.arange(12.0).reshape(3, 4), device=device, requires_grad=True)
    ids = np.array([2, 0, 2])
    y = x[make_index(ids)]
    ref = np.arange(12.0).reshape(3, 4)[make_index(ids)]
    np.testing.assert_array_equal(y.numpy(), ref)
    y.sum().backward()
    np.testing.assert_array_equal(get_backend(device).to_host(x.grad), _counts(x.shape, make_index(ids)))


def _counts(shape, index):
    """How often each element of an array of ``shape`` is picked by ``index``."""
    counts = np.zeros(shape)
    np.add.at(counts, index, 1.0)
    return counts


@by_differentiable_op
@by_device
@settings(max_examples=examples(8))
@given(data=st.data())
def test_float32_stays_float32_forward_and_backward(spec, device, data):
    """No op upcasts float32 (the default dtype) to float64, neither its values nor its gradients."""
    case = data.draw(spec.cases, label="case")
    arrays = [a.astype(np.float32) if a.dtype == np.float64 else a for a in case.arrays]
    leaves = [tg.Tensor(a, device=device, requires_grad=case.differentiable(i)) for i, a in enumerate(arrays)]
    # an identity op in front of each input: its retained grad is what the op's backward produced
    inputs = [t.reshape(t.shape).retain_grad() if t.requires_grad else t for t in leaves]
    outputs = as_tuple(spec.fn(*inputs, **case.params))
    expected = as_tuple(spec.ref(*arrays, **case.params))
    for k, (out, ref) in enumerate(zip(outputs, expected)):
        ref = np.asarray(ref)
        assert out.dtype == ref.dtype, f"output {k}: dtype {out.dtype}, NumPy gives {ref.dtype}"
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5, err_msg=f"output {k}")
        if out.requires_grad:
            out.backward(np.ones(out.shape))
    for i, t in enumerate(inputs):
        if t.requires_grad:
            assert t.grad.dtype == np.float32, f"input {i}: the op's backward gave {t.grad.dtype}"


# ---- sigmoid and relu over the whole float64 range -----------------------------------


def _exact_sigmoid(x: float):
    """σ(x) and σ'(x) = σ(x) σ(−x) in 50-digit decimal arithmetic, rounded once to float64."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 50
        e = Decimal(-x).exp()
        s, s_neg = 1 / (1 + e), e / (1 + e)
        return float(s), float(s * s_neg)


def test_sigmoid_is_exact_to_rounding_over_the_whole_range(device):
    points = np.concatenate(
        [np.linspace(-700, 700, 2801), [-40.0, -37.0, -30.0, -1e-8, 0.0, 1e-8, 37.0, 40.0]]
    )
    x = tg.Tensor(points, device=device, requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    exact = np.array([_exact_sigmoid(v) for v in points])
    np.testing.assert_allclose(y.numpy(), exact[:, 0], rtol=4e-16, atol=0)
    np.testing.assert_allclose(host(x.grad), exact[:, 1], rtol=1e-15, atol=0)


def test_sigmoid_in_float32_is_exact_to_rounding_over_the_whole_range(device):
    """float32 keeps its own rounding: σ to a few float32 ulps, down into the subnormals (σ(−100)
    ≈ 3.7e−44 is not 0), and 0 and 1 exactly where float32 has nothing closer."""
    points = np.concatenate(
        [np.linspace(-700, 700, 2801), [-103.0, -100.0, -87.0, -17.0, -1e-4, 0.0, 1e-4, 17.0, 87.0]]
    ).astype(np.float32)
    x = tg.Tensor(points, device=device, requires_grad=True)
    y = x.sigmoid()
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    exact = np.array([_exact_sigmoid(float(v)) for v in points]).astype(np.float32)
    np.testing.assert_allclose(y.numpy(), exact[:, 0], rtol=3e-7, atol=3e-45)
    np.testing.assert_allclose(host(x.grad), exact[:, 1], rtol=5e-7, atol=3e-45)
    assert y.numpy()[points == -100.0][0] > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_of_nan_and_infinities(device, dtype):
    x = tg.Tensor([np.nan, -np.inf, np.inf, -0.0], device=device, dtype=dtype, requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = x.sigmoid()
        y.backward(np.ones(4))
    np.testing.assert_array_equal(y.numpy(), [np.nan, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(host(x.grad), [np.nan, 0.0, 0.0, 0.25])


def test_log_of_sigmoid_far_left_is_finite_with_gradient_one(device):
    x = tg.Tensor([-40.0], device=device, dtype="float64", requires_grad=True)
    y = x.sigmoid().log()
    y.backward(np.ones(1))
    np.testing.assert_allclose(y.numpy(), [-40.0], rtol=1e-15)  # PyTorch: −40, gradient 1
    np.testing.assert_allclose(host(x.grad), [1.0], rtol=1e-15)


def test_relu_of_minus_infinity_is_zero(device):
    x = tg.Tensor([-np.inf, -1.0, 0.0, 2.0, np.inf], device=device, requires_grad=True)
    y = x.relu()
    np.testing.assert_array_equal(y.numpy(), [0.0, 0.0, 0.0, 2.0, np.inf])
    y.sum().backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.0, 0.0, 1.0, 1.0])
