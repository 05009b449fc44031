"""RTRL (``bptt.rtrl``): the gradient of BPTT computed forward in time, for every cell, to 1e-10."""

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt import rtrl
from tinygrad_rnn.nn.recurrent import as_parts, from_parts

RNG = np.random.default_rng


def _bptt(cell, x, d, h0=None):
    """Autograd through the unrolled cell: ∂/∂θ of Σ_t Σ d_t ⊙ h_t."""
    cell.zero_grad()
    B, T, _ = x.shape
    state = cell.initial_state(B) if h0 is None else from_parts(tuple(tg.Tensor(p) for p in as_parts(h0)))
    loss = 0.0
    xt = tg.Tensor(x)
    for t in range(T):
        state = cell(xt[:, t], state)
        loss = loss + (cell.hidden(state) * d[:, t]).sum()
    loss.backward()
    return {name: p.grad for name, p in cell.named_parameters()}


def _cell(kind, E=3, H=4):
    return {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[kind](
        E, H, rng=RNG(0), dtype="float64"
    )


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("with_h0", [False, True])
def test_rtrl_equals_bptt(kind, with_h0):
    cell = _cell(kind)
    B, T = 2, 6
    x, d = RNG(1).standard_normal((B, T, 3)), RNG(2).standard_normal((B, T, 4))
    h0 = None
    if with_h0:
        n = len(cell.state_names)
        h0 = tuple(RNG(3 + i).standard_normal((B, 4)) for i in range(n))
        h0 = h0 if n > 1 else h0[0]
    forward_in_time = rtrl(cell, x, d, h0=h0)
    backward_in_time = _bptt(cell, x, d, h0)
    assert list(forward_in_time) == [name for name, _ in cell.named_parameters()]
    for name, g in backward_in_time.items():
        assert forward_in_time[name].shape == g.shape
        err = np.abs(forward_in_time[name] - g).max()
        assert err <= 1e-10 * max(1.0, np.abs(g).max()), f"{kind}: {name}: RTRL and BPTT differ by {err:.3e}"


def test_rtrl_keeps_no_graph_and_leaves_grads_alone():
    cell = _cell("lstm")
    rtrl(cell, RNG(1).standard_normal((1, 3, 3)), RNG(2).standard_normal((1, 3, 4)))
    assert all(p.grad is None for p in cell.parameters())


def test_rtrl_refuses_mismatched_shapes():
    cell = _cell("gru")
    with pytest.raises(tg.ShapeError, match=r"x of shape \(2, 5, 2\), want \(B, T, 3\)"):
        rtrl(cell, np.zeros((2, 5, 2)), np.zeros((2, 5, 4)))
    with pytest.raises(tg.ShapeError, match=r"d_outputs of shape \(2, 4, 4\), want .* \(2, 5, 4\)"):
        rtrl(cell, np.zeros((2, 5, 3)), np.zeros((2, 4, 4)))
