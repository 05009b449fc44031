"""nn.LSTMCell, nn.GRUCell, nn.LSTM, nn.GRU: the layouts against their equations, the layers against
their cells, gradients against finite differences and the hand-derived BPTT, padding, truncation."""

import numpy as np
import pytest
from devices import device_params
from hypothesis import given, settings
from hypothesis import strategies as st
from tinygrad_rnn.testing import examples, float_sequences

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt.reference import gru_bptt, gru_forward, lstm_bptt, lstm_forward
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.tensor import ShapeError
from checks import assert_relative, host_state, parts, run_cells_one_by_one

F64 = "float64"
KINDS = ("lstm", "gru")
LAYER = {"lstm": nn.LSTM, "gru": nn.GRU}


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def lstm_step(x, h, c, W, V, b):
    """Issue 12's LSTM layout, written out: blocks i, f, g, o of W (E, 4H), V (H, 4H), b (4H,)."""
    H = V.shape[0]
    blk = [slice(k * H, (k + 1) * H) for k in range(4)]
    i = sigmoid(x @ W[:, blk[0]] + h @ V[:, blk[0]] + b[blk[0]])
    f = sigmoid(x @ W[:, blk[1]] + h @ V[:, blk[1]] + b[blk[1]])
    g = np.tanh(x @ W[:, blk[2]] + h @ V[:, blk[2]] + b[blk[2]])
    o = sigmoid(x @ W[:, blk[3]] + h @ V[:, blk[3]] + b[blk[3]])
    c = f * c + i * g
    return o * np.tanh(c), c


def gru_step(x, h, W, V, b, b_hn):
    """Issue 12's GRU layout, written out: blocks r, z, n of W (E, 3H), V (H, 3H), b (3H,); b_hn (H,)."""
    H = V.shape[0]
    blk = [slice(k * H, (k + 1) * H) for k in range(3)]
    r = sigmoid(x @ W[:, blk[0]] + h @ V[:, blk[0]] + b[blk[0]])
    z = sigmoid(x @ W[:, blk[1]] + h @ V[:, blk[1]] + b[blk[1]])
    n = np.tanh(x @ W[:, blk[2]] + b[blk[2]] + r * (h @ V[:, blk[2]] + b_hn))
    return (1 - z) * n + z * h


# ---- layouts and initialisation ------------------------------------------------------------------------

def test_parameter_names_shapes_and_init():
    tg.manual_seed(0)
    lstm, gru = nn.LSTMCell(3, 16), nn.GRUCell(3, 16)
    assert [(n, p.shape) for n, p in lstm.named_parameters()] == [("W", (3, 64)), ("V", (16, 64)), ("b", (64,))]
    assert [(n, p.shape) for n, p in gru.named_parameters()] == [
        ("W", (3, 48)), ("V", (16, 48)), ("b", (48,)), ("b_hn", (16,))]
    k = 1 / np.sqrt(16)
    b = lstm.b.numpy()
    np.testing.assert_array_equal(b[16:32], 1.0, err_msg="the forget gate's bias starts at 1")
    for name, values in [("W", lstm.W.numpy()), ("V", lstm.V.numpy()), ("b_i,g,o", np.delete(b, range(16, 32))),
                         *[(n, p.numpy()) for n, p in gru.named_parameters()]]:
        assert np.abs(values).max() <= k and np.abs(values).max() > 0.5 * k, f"{name} not U(-1/sqrt(H), 1/sqrt(H))"
    b_torch_like = nn.LSTMCell(3, 16, forget_bias=None).b.numpy()
    assert np.abs(b_torch_like).max() <= k and len(np.unique(b_torch_like[16:32])) == 16
    np.testing.assert_array_equal(nn.LSTMCell(3, 4, forget_bias=2.5).b.numpy()[4:8], 2.5)
    assert nn.LSTM(3, 4, num_layers=2, forget_bias=0.0).cells[1].b.numpy()[4:8].tolist() == [0.0] * 4


def test_chrono_init_sets_forget_and_input_biases_of_every_cell():
    lstm = nn.LSTM(3, 8, num_layers=2, bidirectional=True, rng=np.random.default_rng(0))
    before = [(c.W.numpy().copy(), c.V.numpy().copy(), c.b.numpy().copy()) for c in lstm.cells]
    assert nn.chrono_init_(lstm, 50, rng=np.random.default_rng(1)) is lstm
    for cell, (W, V, b_old) in zip(lstm.cells, before):
        b, H = cell.b.numpy(), 8
        b_i, b_f = b[:H], b[H:2 * H]
        assert b.dtype == np.float32 and cell.forget_bias == "chrono"
        # b_f = log u, u ~ U(1, T_max − 1): f = σ(b_f) between 1/2 and (T_max − 1)/T_max
        assert np.all(b_f >= 0) and np.all(b_f <= np.log(49) + 1e-6) and len(np.unique(b_f)) == H, b_f
        np.testing.assert_array_equal(b_i, -b_f)
        np.testing.assert_array_equal(b[2 * H:], b_old[2 * H:], err_msg="the g and o biases are left as they were")
        np.testing.assert_array_equal(cell.W.numpy(), W)
        np.testing.assert_array_equal(cell.V.numpy(), V)
    # the same rng, the same biases; one LSTMCell works too
    again = nn.chrono_init_(nn.LSTM(3, 8, num_layers=2, bidirectional=True, rng=np.random.default_rng(0)), 50,
                            rng=np.random.default_rng(1))
    np.testing.assert_array_equal(again.cells[3].b.numpy(), lstm.cells[3].b.numpy())
    cell = nn.chrono_init_(nn.LSTMCell(2, 4, dtype=np.float64), 2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(cell.b.numpy()[4:8], 0.0)     # T_max = 2: u = 1, f = σ(0) = 1/2
    assert cell.b.dtype == np.float64 and "forget_bias='chrono'" in repr(cell)
    with pytest.raises(TypeError, match="needs an LSTM or an LSTMCell, got GRU"):
        nn.chrono_init_(nn.GRU(2, 4), 10)
    with pytest.raises(ValueError, match=r"max_length must be an integer ≥ 2 .* got 1"):
        nn.chrono_init_(nn.LSTM(2, 4), 1)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_chrono_init_after_a_recorded_forward_makes_backward_refuse(bidirectional):
    """chrono_init_ changes the biases: a graph recorded before it must not be differentiated
    with the new values (it has to bump the versions, as a load does)."""
    from tinygrad_rnn.tensor import InPlaceModificationError
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=bidirectional, rng=np.random.default_rng(0))
    out, _ = lstm(tg.randn(2, 5, 3))
    loss = out.sum()
    nn.chrono_init_(lstm, 20, rng=np.random.default_rng(1))
    with pytest.raises(InPlaceModificationError, match="changed in place"):
        loss.backward()
    assert all(cell.b.grad is None for cell in lstm.cells)


def test_chrono_init_makes_the_cell_state_a_slow_leaky_average():
    """With zero weights, c_t = f c_{t−1} + (1 − f) g exactly: i = σ(−b_f) = 1 − σ(b_f) = 1 − f."""
    cell = nn.chrono_init_(nn.LSTMCell(1, 6, dtype=np.float64), 100, rng=np.random.default_rng(0))
    cell.W.data = np.zeros((1, 24))
    cell.V.data = np.zeros((6, 24))
    f = 1 / (1 + np.exp(-cell.b.numpy()[6:12]))
    g = np.tanh(cell.b.numpy()[12:18])
    state = (tg.Tensor(np.zeros((1, 6))), tg.Tensor(np.ones((1, 6))))
    h, c = cell(tg.Tensor(np.zeros((1, 1))), state)
    np.testing.assert_allclose(c.numpy()[0], f * 1.0 + (1 - f) * g, rtol=1e-12)
    assert np.all(1 / (1 - f) >= 2 - 1e-9) and np.all(1 / (1 - f) <= 100 + 1e-9)   # time constants 2 … T_max


@pytest.mark.parametrize("device", device_params())
def test_cells_compute_their_equations(device):
    rng = np.random.default_rng(1)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    T = lambda a: tg.Tensor(a, device=device)   # noqa: E731
    lstm = nn.LSTMCell(3, 4, dtype=F64, device=device)
    W, V, b = (p.numpy() for p in lstm.parameters())
    for got, want in zip(host_state(lstm(T(x), (T(h), T(c)))), lstm_step(x, h, c, W, V, b)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    for got, want in zip(host_state(lstm(T(x))), lstm_step(x, 0 * h, 0 * c, W, V, b)):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    gru = nn.GRUCell(3, 4, dtype=F64, device=device)
    W, V, b, b_hn = (p.numpy() for p in gru.parameters())
    np.testing.assert_allclose(gru(T(x), T(h)).numpy(), gru_step(x, h, W, V, b, b_hn), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(gru(T(x)).numpy(), gru_step(x, 0 * h, W, V, b, b_hn), rtol=1e-13, atol=1e-15)


def test_cells_follow_the_protocol_and_refuse_bad_input():
    x = tg.randn(2, 3, dtype=F64)
    for cell in (nn.LSTMCell(3, 4, dtype=F64), nn.GRUCell(3, 4, dtype=F64)):
        state = cell.initial_state(2)
        assert all(s.shape == (2, 4) and not s.numpy().any() for s in parts(state))
        a, b = cell(x, state), cell.step(cell.project_input(x), state)
        for u, v in zip(host_state(a), host_state(b)):
            np.testing.assert_array_equal(u, v)
        assert cell.hidden(a) is parts(a)[0]
        assert cell.project_input(tg.randn(5, 2, 3, dtype=F64)).shape == (5, 2, cell.W.shape[1])
        with pytest.raises(ShapeError, match=r"x_t of shape \(2, 5\), want \(B, 3\)"):
            cell(tg.randn(2, 5, dtype=F64))
    with pytest.raises(ShapeError, match=r"c of shape \(2, 3\), want \(2, 4\)"):
        nn.LSTMCell(3, 4)(tg.randn(2, 3), (tg.zeros(2, 4), tg.zeros(2, 3)))
    with pytest.raises(TypeError, match=r"state must be a tuple \(h, c\)"):
        nn.LSTMCell(3, 4)(tg.randn(2, 3), tg.zeros(2, 4))
    with pytest.raises(ShapeError, match=r"h_prev of shape \(2, 3\), want \(2, 4\)"):
        nn.GRUCell(3, 4)(tg.randn(2, 3), tg.zeros(2, 3))


def test_layers_shapes_h0_and_errors():
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    assert [c.input_size for c in lstm.cells] == [3, 3, 8, 8]
    assert [n for n, _ in lstm.named_parameters()][:4] == ["cells.0.W", "cells.0.V", "cells.0.b", "cells.1.W"]
    out, (h, c) = lstm(tg.randn(5, 6, 3))
    assert out.shape == (5, 6, 8) and h.shape == c.shape == (4, 5, 4)
    out, (h, c) = lstm(tg.randn(5, 6, 3), (tg.randn(4, 5, 4), tg.randn(4, 5, 4)))
    out, (h, c), states = lstm(tg.randn(5, 6, 3), return_states=True)
    assert len(states) == 4 and all(len(s) == 6 and len(s[0]) == 2 for s in states)
    with pytest.raises(ShapeError, match=r"h0 must be a tuple of 2 tensors \(h0, c0\)"):
        lstm(tg.randn(5, 6, 3), tg.zeros(4, 5, 4))
    with pytest.raises(ShapeError, match=r"h0 of shape \(1, 5, 4\), want .* \(4, 5, 4\)"):
        lstm(tg.randn(5, 6, 3), (tg.zeros(4, 5, 4), tg.zeros(1, 5, 4)))
    gru = nn.GRU(3, 4, num_layers=2)
    out, h = gru(tg.randn(5, 6, 3))
    assert out.shape == (5, 6, 4) and h.shape == (2, 5, 4)
    assert gru(tg.randn(5, 6, 3), need_outputs=False)[0] is None
    with pytest.raises(ShapeError, match=r"h0 must be a tensor h0, got tuple of 2"):
        gru(tg.randn(5, 6, 3), (tg.zeros(2, 5, 4), tg.zeros(2, 5, 4)))
    with pytest.raises(ShapeError, match=r"GRU: x of shape \(2, 5\), want \(B, T, 3\)"):
        gru(tg.randn(2, 5))


# ---- a layer computes exactly what its cells compute ------------------------------------------------------

@settings(max_examples=examples(10))
@given(kind=st.sampled_from(KINDS), seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 3),
                                                        max_len=st.integers(1, 5)),
       hidden=st.integers(1, 4), layers=st.sampled_from([1, 2]), bidirectional=st.booleans(),
       with_h0=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_computes_exactly_what_its_cells_compute(kind, seq, hidden, layers, bidirectional, with_h0, seed):
    rng = np.random.default_rng(seed)
    x, lengths = seq
    layer = LAYER[kind](x.shape[2], hidden, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng)
    n_parts = 2 if kind == "lstm" else 1
    h0 = [rng.normal(size=(len(layer.cells), x.shape[0], hidden)) for _ in range(n_parts)] if with_h0 else None
    h0_arg = None if h0 is None else tuple(tg.Tensor(p) for p in h0)
    out, last = layer(tg.Tensor(x), h0_arg if h0_arg is None or n_parts > 1 else h0_arg[0], lengths=lengths)
    want_out, want_last = run_cells_one_by_one(layer, x, h0, lengths)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-12, atol=1e-14, err_msg="outputs")
    for i, got in enumerate(host_state(last)):
        np.testing.assert_allclose(got, want_last[i], rtol=1e-12, atol=1e-14, err_msg=f"last state part {i}")


# ---- gradients ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_cell_gradcheck(kind):
    rng = np.random.default_rng(3)
    cell = (nn.LSTMCell if kind == "lstm" else nn.GRUCell)(3, 4, dtype=F64, rng=rng)
    x = tg.Tensor(rng.normal(size=(2, 3)), requires_grad=True, name="x")
    state = [tg.Tensor(rng.normal(size=(2, 4)), requires_grad=True, name=n) for n in ("h", "c")[:1 + (kind == "lstm")]]
    for name, p in cell.named_parameters():
        p.name = name

    def fn(x, *rest):
        return parts(cell(x, tuple(state) if kind == "lstm" else state[0]))

    assert gradcheck(fn, [x, *state, *cell.parameters()], seed=3)


@settings(max_examples=examples(12))
@given(kind=st.sampled_from(KINDS),
       seq=float_sequences(features=st.integers(1, 4), batch_size=st.integers(1, 3), max_len=st.integers(1, 6)),
       hidden=st.integers(1, 4), layers=st.sampled_from([1, 2]), bidirectional=st.booleans(),
       use_lengths=st.booleans(), with_h0=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_gradcheck(kind, seq, hidden, layers, bidirectional, use_lengths, with_h0, seed):
    """Autograd through the whole unrolled layer (x, h0 (and c0) and every parameter) == finite differences."""
    rng = np.random.default_rng(seed)
    x_host, lengths = seq
    B = x_host.shape[0]
    layer = LAYER[kind](x_host.shape[2], hidden, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng)
    x = tg.Tensor(x_host, requires_grad=True, name="x")
    h0 = [tg.Tensor(rng.normal(size=(len(layer.cells), B, hidden)), requires_grad=True, name=n)
          for n in ("h0", "c0")[:1 + (kind == "lstm")]]
    lengths = lengths if use_lengths else None
    for name, p in layer.named_parameters():
        p.name = name

    def fn(x, *rest):
        start = None if not with_h0 else tuple(h0) if kind == "lstm" else h0[0]
        out, last = layer(x, start, lengths=lengths)
        return (out, *parts(last))

    assert gradcheck(fn, [x, *h0, *layer.parameters()], seed=seed)


def _backward(layer, x, lengths, up, up_last, h0=None):
    for p in layer.parameters():
        p.grad = None
    xt = tg.Tensor(x, requires_grad=True)
    out, last = layer(xt, h0, lengths=lengths)
    loss = (out * tg.Tensor(up)).sum()
    for part, u in zip(parts(last), up_last):
        loss = loss + (part * tg.Tensor(u)).sum()
    loss.backward()
    return out.numpy(), host_state(last), xt.grad.copy(), [p.grad.copy() for p in layer.parameters()]


@settings(max_examples=examples(10))
@given(kind=st.sampled_from(KINDS),
       seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 4), max_len=st.integers(1, 6)),
       extra=st.integers(1, 3), layers=st.sampled_from([1, 2]), bidirectional=st.booleans(),
       truncate=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_outputs_and_gradients_do_not_depend_on_padding(kind, seq, extra, layers, bidirectional, truncate, seed):
    """More padding, with garbage in it, changes nothing — the whole state carries over a padded step."""
    rng = np.random.default_rng(seed)
    x, lengths = seq
    B, T, E = x.shape
    layer = LAYER[kind](E, 3, num_layers=layers, bidirectional=bidirectional, truncate=truncate, dtype=F64, rng=rng)
    up = rng.normal(size=(B, T, 3 * layer.directions))
    up_last = [rng.normal(size=(len(layer.cells), B, 3)) for _ in range(1 + (kind == "lstm"))]
    padded = np.concatenate([x, rng.normal(size=(B, extra, E))], axis=1)
    padded[np.arange(T + extra)[None, :] >= lengths[:, None]] = rng.normal(size=E)
    out1, last1, gx1, g1 = _backward(layer, x, lengths, up, up_last)
    garbage_up = np.concatenate([up, rng.normal(size=(B, extra, up.shape[2]))], axis=1)
    out2, last2, gx2, g2 = _backward(layer, padded, lengths, garbage_up, up_last)
    mask = np.arange(T + extra)[None, :] < lengths[:, None]
    np.testing.assert_allclose(out2[:, :T], out1, rtol=1e-12, atol=1e-15, err_msg="true-step outputs")
    assert not out2[~mask].any(), "outputs at padded steps must be 0"
    for a, b in zip(last2, last1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg="last state")
    np.testing.assert_allclose(gx2[:, :T][mask[:, :T]], gx1[mask[:, :T]], rtol=1e-12, atol=1e-15)
    assert not gx2[~mask].any(), "inputs at padded steps must get no gradient"
    for (name, _), a, b in zip(layer.named_parameters(), g2, g1):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14, err_msg=f"d{name}")


@settings(max_examples=examples(8))
@given(kind=st.sampled_from(KINDS),
       seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 3), max_len=st.integers(1, 6)),
       k_extra=st.integers(0, 2), bidirectional=st.booleans(), seed=st.integers(0, 2**16))
def test_truncate_at_least_T_is_exactly_full_bptt(kind, seq, k_extra, bidirectional, seed):
    x, lengths = seq
    T = x.shape[1]
    rng = np.random.default_rng(seed)
    up = rng.normal(size=(x.shape[0], T, 3 * (1 + bidirectional)))
    up_last = [rng.normal(size=(2 * (1 + bidirectional), x.shape[0], 3)) for _ in range(1 + (kind == "lstm"))]
    results = [_backward(LAYER[kind](x.shape[2], 3, num_layers=2, bidirectional=bidirectional, truncate=k, dtype=F64,
                                     rng=np.random.default_rng(seed)), x, lengths, up, up_last)
               for k in (None, T + k_extra)]
    np.testing.assert_array_equal(results[1][2], results[0][2])
    for a, b in zip(results[1][3], results[0][3]):
        np.testing.assert_array_equal(a, b)


def test_truncate_below_T_cuts_the_cell_state_path_too():
    """A loss on the last state: with truncate=k, no gradient reaches steps before the last chunk,
    through h or through the LSTM's cell state c."""
    rng = np.random.default_rng(3)
    T, k = 7, 3
    x = rng.normal(size=(2, T, 2))
    for kind in KINDS:
        layer = LAYER[kind](2, 4, dtype=F64, rng=np.random.default_rng(1), truncate=k)
        xt = tg.Tensor(x, requires_grad=True)
        _, last = layer(xt)
        sum(p.sum() for p in parts(last)).backward()
        last_chunk = (T - 1) // k * k
        assert not xt.grad[:, :last_chunk].any(), f"{kind}: steps before the last chunk must get no gradient"
        assert np.abs(xt.grad[:, last_chunk:]).max() > 0


# ---- autograd == the hand-derived BPTT ------------------------------------------------------------------------


@settings(max_examples=examples(12))
@given(kind=st.sampled_from(KINDS),
       seq=float_sequences(features=st.integers(1, 4), batch_size=st.integers(1, 4), max_len=st.integers(1, 7)),
       hidden=st.integers(1, 5), use_lengths=st.booleans(), with_h0=st.booleans(), with_d_last=st.booleans(),
       seed=st.integers(0, 2**16))
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
        ref = lstm_bptt(x, *(p.numpy() for p in cell.parameters()), d_out, lengths=lengths,
                        d_h_last=d_last[0], d_c_last=d_last[1], **start_h)
        if lengths is None:  # with padding the retained c_t is the masked state, which h_t does not read
            assert_relative(np.stack([s[1].grad for s in states[0]], axis=1), ref.dc, "dL/dc_t")
    else:
        ref = gru_bptt(x, *(p.numpy() for p in cell.parameters()), d_out, lengths=lengths, d_h_last=d_last[0],
                       **start_h)
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
    weights = {"W": rng.normal(size=(E, G * H)), "V": rng.normal(size=(H, G * H)), "b": rng.normal(size=G * H)}
    if kind == "gru":
        weights["b_hn"] = rng.normal(size=H)
    forward = lstm_forward if kind == "lstm" else gru_forward

    def loss(w):
        hs = forward(x, **w)
        return float(((hs[0] if kind == "lstm" else hs)[T] * d_last).sum())     # L = Σ d_last ⊙ h_T

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
                f"{kind} d{name}{idx}: numeric {numeric!r}, hand-derived {analytic!r}")


# ---- devices and PyTorch --------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("kind", KINDS)
def test_layer_runs_on_each_device_like_on_cpu(kind, device):
    rng = np.random.default_rng(5)
    x, lengths = rng.normal(size=(3, 5, 2)), [5, 2, 4]
    layers = [LAYER[kind](2, 3, num_layers=2, bidirectional=True, truncate=2, dtype=F64,
                          rng=np.random.default_rng(9), device=d) for d in ("cpu", device)]
    up = rng.normal(size=(3, 5, 6))
    results = []
    for layer in layers:
        xt = tg.Tensor(x, requires_grad=True, device=layer.cells[0].W.device)
        out, last = layer(xt, lengths=lengths)
        loss = (out * tg.Tensor(up, device=xt.device)).sum()
        for part in parts(last):
            loss = loss + part.sum()
        loss.backward()
        results.append([out.numpy(), *host_state(last), xt.grad if isinstance(xt.grad, np.ndarray) else
                        xt.backend.to_host(xt.grad)]
                       + [p.grad if isinstance(p.grad, np.ndarray) else p.backend.to_host(p.grad)
                          for p in layer.parameters()])
    for i, (a, b) in enumerate(zip(*results)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15, err_msg=f"item {i}")


@pytest.mark.parametrize("kind", KINDS)
def test_weights_carried_to_torch_give_the_same_outputs(kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    B, T, E, H = 3, 6, 4, 5
    x = rng.normal(size=(B, T, E))
    ours = LAYER[kind](E, H, num_layers=2, bidirectional=True, dtype=F64, rng=rng)
    theirs = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(E, H, num_layers=2, bidirectional=True,
                                                                  batch_first=True).double()
    with torch.no_grad():
        for k, cell in enumerate(ours.cells):
            suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
            hidden_bias = np.zeros(cell.V.shape[1])
            if kind == "gru":
                hidden_bias[2 * H:] = cell.b_hn.numpy()      # PyTorch's b_hn is the n block of bias_hh
            for name, value in (("weight_ih", cell.W.numpy().T), ("weight_hh", cell.V.numpy().T),
                                ("bias_ih", cell.b.numpy()), ("bias_hh", hidden_bias)):
                getattr(theirs, name + suffix).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    out, last = ours(tg.Tensor(x))
    t_out, t_last = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-14)
    for a, b in zip(host_state(last), t_last if kind == "lstm" else (t_last,)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-12, atol=1e-14)
