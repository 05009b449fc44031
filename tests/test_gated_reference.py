"""The hand-derived BPTT of the gated cells (tinygrad_rnn.bptt.reference: lstm_bptt, gru_bptt): right
by finite differences, and equal to autograd through nn.LSTM and nn.GRU — every weight gradient, dx,
dh0 and each state's total gradient — to 1e-10 in float64. (The benchmark's fast sweeps are held
against them in test_bptt_reference.py.)"""

import numpy as np
import pytest
from checks import assert_relative, parts
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt.reference import gru_bptt, gru_forward, lstm_bptt, lstm_forward
from tinygrad_rnn.testing import examples, float_sequences

F64 = "float64"
KINDS = ("lstm", "gru")
LAYER = {"lstm": nn.LSTM, "gru": nn.GRU}


# ---- autograd == the hand-derived BPTT ---------------------------------------------------------------------


@settings(max_examples=examples(12))
@given(
    kind=st.sampled_from(KINDS),
    seq=float_sequences(features=st.integers(1, 4), batch_size=st.integers(1, 4), max_len=st.integers(1, 7)),
    hidden=st.integers(1, 5),
    use_lengths=st.booleans(),
    with_h0=st.booleans(),
    with_d_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_autograd_equals_hand_derived_bptt(kind, seq, hidden, use_lengths, with_h0, with_d_last, seed):
    """Every gradient of nn.LSTM / nn.GRU, and the total gradient reaching each state (retained),
    equals lstm_bptt / gru_bptt to 1e-10 in float64."""
    rng = np.random.default_rng(seed)
    x, lengths = seq
    B, T, _ = x.shape
    lengths = lengths if use_lengths else None
    layer = LAYER[kind](x.shape[2], hidden, dtype=F64, rng=rng)
    cell = layer.cells[0]
    n_parts = 1 + (kind == "lstm")
    h0 = [rng.normal(size=(1, B, hidden)) for _ in range(n_parts)]
    d_out = rng.normal(size=(B, T, hidden))
    d_last = [rng.normal(size=(B, hidden)) if with_d_last else np.zeros((B, hidden)) for _ in range(n_parts)]
    xt = tg.Tensor(x, requires_grad=True)
    h0t = [tg.Tensor(p, requires_grad=True) for p in h0]
    start = None if not with_h0 else tuple(h0t) if kind == "lstm" else h0t[0]
    out, last, states = layer(xt, start, lengths=lengths, return_states=True)
    for s in states[0]:
        for p in parts(s):
            p.retain_grad()
    loss = (out * tg.Tensor(d_out)).sum()
    for part, u in zip(parts(last), d_last):
        loss = loss + (part[0] * tg.Tensor(u)).sum()
    loss.backward()
    start_h = dict(zip(("h0", "c0"), (p[0] for p in h0))) if with_h0 else {}
    if kind == "lstm":
        ref = lstm_bptt(
            x,
            *(p.numpy() for p in cell.parameters()),
            d_out,
            lengths=lengths,
            d_h_last=d_last[0],
            d_c_last=d_last[1],
            **start_h,
        )
        if lengths is None:  # with padding the retained c_t is the masked state, which h_t does not read
            assert_relative(np.stack([s[1].grad for s in states[0]], axis=1), ref.dc, "dL/dc_t")
    else:
        ref = gru_bptt(
            x, *(p.numpy() for p in cell.parameters()), d_out, lengths=lengths, d_h_last=d_last[0], **start_h
        )
        assert_relative(cell.b_hn.grad, ref.db_hn, "db_hn")
    for name in ("W", "V", "b"):
        assert_relative(getattr(cell, name).grad, getattr(ref, "d" + name), "d" + name)
    assert_relative(xt.grad, ref.dx, "dx")
    assert_relative(np.stack([parts(s)[0].grad for s in states[0]], axis=1), ref.dh, "dL/dh_t")
    if with_h0:
        assert_relative(h0t[0].grad[0], ref.dh0, "dh0")
        if kind == "lstm":
            assert_relative(h0t[1].grad[0], ref.dc0, "dc0")


@pytest.mark.parametrize("kind", KINDS)
def test_hand_derived_bptt_matches_finite_differences(kind):
    """The references stand on their own: central differences of their forward pass agree."""
    rng = np.random.default_rng(7)
    B, T, E, H = 2, 4, 3, 3
    G = 4 if kind == "lstm" else 3
    x, d_last = rng.normal(size=(B, T, E)), rng.normal(size=(B, H))
    weights = {
        "W": rng.normal(size=(E, G * H)),
        "V": rng.normal(size=(H, G * H)),
        "b": rng.normal(size=G * H),
    }
    if kind == "gru":
        weights["b_hn"] = rng.normal(size=H)
    forward = lstm_forward if kind == "lstm" else gru_forward

    def loss(w):
        hs = forward(x, **w)
        return float(((hs[0] if kind == "lstm" else hs)[T] * d_last).sum())  # L = Σ d_last ⊙ h_T

    zeros = np.zeros((B, T, H))
    ref = (lstm_bptt if kind == "lstm" else gru_bptt)(x, *weights.values(), zeros, d_h_last=d_last)
    eps = 1e-6
    for name, w in weights.items():
        for idx in [tuple(rng.integers(0, n) for n in w.shape) for _ in range(4)]:
            plus, minus = {k: v.copy() for k, v in weights.items()}, {k: v.copy() for k, v in weights.items()}
            plus[name][idx] += eps
            minus[name][idx] -= eps
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = getattr(ref, "d" + name)[idx]
            assert abs(numeric - analytic) <= 1e-6 + 1e-5 * abs(numeric), (
                f"{kind} d{name}{idx}: numeric {numeric!r}, hand-derived {analytic!r}"
            )
