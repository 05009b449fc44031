"""Autodiff: deep graphs, accumulation, no_grad, requires_grad, retain_grad, one
backward for all pieces of unbind/split, detach."""

import sys

import numpy as np
import pytest
from devices import host

import tinygrad_rnn as tg
from tinygrad_rnn import ops
from tinygrad_rnn.tensor import textbook_backward


def recorded_ops(t):
    """Every op recorded in the graph that produced ``t`` (each once)."""
    seen, stack = {}, [t._op]
    while stack:
        op = stack.pop()
        if op is not None and id(op) not in seen:
            seen[id(op)] = op
            stack.extend(x._op for x in op.inputs)
    return list(seen.values())


def leaf(values, device, **kw):
    return tg.Tensor(np.asarray(values, dtype=np.float64), device=device, requires_grad=True, **kw)


# ---- deep graphs ---------------------------------------------------------------------------------


def test_a_chain_of_10000_ops_backpropagates_without_recursion(device):
    x = leaf(1.0, device)
    y = x
    for _ in range(10_000):
        y = y * 1.0001  # dy/dx = 1.0001 ** 10000 ≈ e
    limit = sys.getrecursionlimit()
    y.backward()
    assert sys.getrecursionlimit() == limit
    np.testing.assert_allclose(host(x.grad), 1.0001**10_000, rtol=1e-9)


def test_an_unrolled_recurrence_of_3000_steps_backpropagates():
    # h_t = tanh(x_t + h_{t-1} · 0.5): thousands of steps, each a few ops deep, one unbind
    T = 3000
    xs = leaf(np.linspace(-1, 1, T), "cpu")
    h = tg.Tensor(0.0, dtype="float64")
    for x_t in xs.unbind(0):
        h = (x_t + h * 0.5).tanh()
    h.backward()
    assert np.isfinite(xs.grad).all() and xs.grad[-1] == pytest.approx(1 - h.item() ** 2)


# ---- accumulation --------------------------------------------------------------------------------


def test_gradients_accumulate_across_backward_calls_and_reset_with_none(device):
    x = leaf([1.0, -2.0, 3.0], device)
    for calls in (1, 2, 3):
        (x * x).sum().backward()
        np.testing.assert_allclose(host(x.grad), calls * 2 * np.array([1.0, -2.0, 3.0]))
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), 2 * np.array([1.0, -2.0, 3.0]))


def test_paths_that_meet_add_their_gradients(device):
    x = leaf([0.5, -1.5], device)
    a = x * 2
    y = (a * a + a + x).sum()  # dy/dx = (2a + 1) · 2 + 1
    y.backward()
    np.testing.assert_allclose(host(x.grad), (2 * 2 * np.array([0.5, -1.5]) + 1) * 2 + 1)


def test_gradients_never_alias_each_other_or_the_upstream(device):
    a, b = leaf([1.0, 2.0], device), leaf([3.0, 4.0], device)
    upstream = np.ones(2)
    (a + b).backward(upstream)  # add passes the same gradient array to both inputs
    a.grad += 10  # in-place on one must not touch the other ...
    upstream[:] = 7  # ... nor follow the caller's array
    np.testing.assert_array_equal(host(b.grad), [1.0, 1.0])
    (a + b).backward(np.ones(2))
    np.testing.assert_array_equal(host(a.grad), [12.0, 12.0])
    np.testing.assert_array_equal(host(b.grad), [2.0, 2.0])


def test_backward_on_a_leaf_sets_its_grad(device):
    x = leaf([1.0, 2.0], device)
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(host(x.grad), [3.0, 4.0])


# ---- no_grad and requires_grad -------------------------------------------------------------------


def test_no_grad_records_nothing_and_restores_recording(device):
    x = leaf([1.0, 2.0], device)
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        with tg.no_grad():
            pass
        assert not tg.is_grad_enabled()  # nested blocks restore the outer state
        y = (x * x).tanh().sum()
        parts = x.unbind(0)
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf
    assert all(not p.requires_grad and p.is_leaf for p in parts)
    z = (x * x).sum()
    assert z.requires_grad and not z.is_leaf


def test_no_grad_restores_recording_after_an_exception():
    with pytest.raises(ZeroDivisionError), tg.no_grad():
        1 / 0
    assert tg.is_grad_enabled()


def test_requires_grad_propagates_from_any_input(device):
    w = leaf([[1.0, 2.0]], device)
    c = tg.Tensor([[3.0], [4.0]], device=device, dtype="float64")
    assert (c @ w).requires_grad and (w @ c).requires_grad and (c + 1).requires_grad is False
    assert tg.stack([c.reshape(2), w.reshape(2)]).requires_grad
    assert not w.detach().requires_grad
    assert not (w.detach() * c.T).requires_grad
    # a constant input gets no gradient, the other does
    (c.T * w).sum().backward()
    assert c.grad is None and w.grad is not None


def test_requires_grad_flag_on_a_leaf_can_be_switched():
    x = tg.Tensor([1.0, 2.0]).requires_grad_()
    assert x.requires_grad and x.is_leaf
    x.requires_grad_(False)
    assert not (x * 2).requires_grad


# ---- retain_grad ---------------------------------------------------------------------------------


def test_retain_grad_keeps_the_true_gradient_of_an_intermediate(device):
    rng = np.random.default_rng(0)
    x_np, W_np = rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    x, W = leaf(x_np, device), leaf(W_np, device)
    h = (x @ W).retain_grad()
    u = h.tanh()
    loss = (u * u).sum()
    loss.backward()
    t = np.tanh(x_np @ W_np)
    np.testing.assert_allclose(host(h.grad), 2 * t * (1 - t * t), rtol=1e-12)  # ∂L/∂h
    assert u.grad is None  # not retained
    np.testing.assert_allclose(host(W.grad), x_np.T @ host(h.grad), rtol=1e-12)


def test_retain_grad_on_unbound_pieces_gives_dL_dh_t(device):
    # L = Σ_t c_t · sum(h_t), so ∂L/∂h_t = c_t everywhere (the per-step gradients BPTT reads)
    h = leaf(np.ones((4, 3)), device)
    pieces = [p.retain_grad() for p in h.unbind(0)]
    coefs = [1.0, -2.0, 0.5, 3.0]
    loss = sum((p * c).sum() for p, c in zip(pieces, coefs))
    loss.backward()
    for p, c in zip(pieces, coefs):
        np.testing.assert_array_equal(host(p.grad), np.full(3, c))
    loss2 = sum((p * c).sum() for p, c in zip(pieces, coefs))
    loss2.backward()  # retained grads accumulate too
    np.testing.assert_array_equal(host(pieces[1].grad), np.full(3, -4.0))


def test_retain_grad_on_a_scalar_intermediate_is_a_device_array(device):
    x = leaf(2.0, device)
    s = (x * x).retain_grad()
    (s * 3).backward()
    assert isinstance(s.grad, tg.get_backend(device).array_type)
    assert host(s.grad) == 3.0 and host(x.grad) == 12.0


# ---- unbind / split: one op, one backward ----------------------------------------------------


@pytest.mark.parametrize("kind", ["unbind", "split"])
def test_unbind_and_split_over_T_pieces_run_one_backward(monkeypatch, device, kind):
    T = 50
    op = ops.Unbind if kind == "unbind" else ops.Split
    calls = []
    original = op.backward
    monkeypatch.setattr(op, "backward", lambda self, grads: calls.append(len(grads)) or original(self, grads))
    x = leaf(np.arange(T * 2.0).reshape(2, T), device)
    pieces = x.unbind(1) if kind == "unbind" else x.split(T, axis=1)
    loss = pieces[0].sum()
    for t, p in enumerate(pieces[1:], start=1):
        loss = loss + p.sum() * t
    assert sum(o.name == kind for o in recorded_ops(loss)) == 1
    with textbook_backward():  # the op's own backward (by default the walk gathers Unbind's)
        loss.backward()
    assert calls == [T]  # one backward, for all T pieces at once
    np.testing.assert_array_equal(host(x.grad), np.tile(np.maximum(np.arange(T), 1.0), (2, 1)))


def test_unused_pieces_get_zero_gradient(device):
    x = leaf(np.ones((3, 4)), device)
    a, _, c = x.unbind(0)
    (a.sum() + 2 * c.sum()).backward()
    np.testing.assert_array_equal(host(x.grad), [[1] * 4, [0] * 4, [2] * 4])


# ---- detach ----------------------------------------------------------------------------------


def test_detach_stops_the_gradient_but_keeps_the_values(device):
    x = leaf([1.5, -2.0], device)
    y = (x * x.detach()).sum()  # d/dx [x · stop(x)] = stop(x), not 2x
    y.backward()
    np.testing.assert_array_equal(host(x.grad), [1.5, -2.0])
    np.testing.assert_array_equal(tg.detach(x).numpy(), x.numpy())


# ---- dtypes of gradients -------------------------------------------------------------------------


def test_a_grad_has_the_dtype_of_its_tensor_even_in_a_promoted_graph(device):
    x = tg.Tensor([1.0, 2.0], device=device, requires_grad=True)  # float32
    y = x * tg.Tensor([0.5, 0.25], device=device, dtype="float64")  # promoted to float64
    assert y.dtype == np.float64
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(host(x.grad), [0.5, 0.25])


def test_numpy_scalars_act_like_python_scalars(device):
    x = tg.Tensor([1.0, 2.0], device=device)  # float32
    assert (x * np.float64(0.5)).dtype == np.float32 == (x * 0.5).dtype
    assert (np.float64(2.0) - x).dtype == np.float32
    np.testing.assert_array_equal((np.float64(2.0) - x).numpy(), [1.0, 0.0])
