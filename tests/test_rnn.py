"""nn.RNNCell and nn.RNN: initialisation, the cells' math, lengths, truncation, gradients, T = 2000."""

import numpy as np
import pytest
from devices import device_params, host
from hypothesis import given, settings
from hypothesis import strategies as st
from tinygrad_rnn.testing import examples, float_sequences

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.tensor import ShapeError
from checks import run_cells_one_by_one

F64 = "float64"


# ---- RNNCell ---------------------------------------------------------------------------------------

def test_cell_parameters_names_shapes_and_uniform_init():
    tg.manual_seed(0)
    cell = nn.RNNCell(3, 16)
    assert [(n, p.shape) for n, p in cell.named_parameters()] == [("W", (3, 16)), ("V", (16, 16)), ("b", (16,))]
    k = 1 / np.sqrt(16)
    for name, p in cell.named_parameters():
        values = p.numpy()
        assert np.abs(values).max() <= k, f"{name} outside U(-1/sqrt(H), 1/sqrt(H))"
        assert np.abs(values).max() > 0.5 * k, f"{name} does not use the range U(-1/sqrt(H), 1/sqrt(H))"
    assert cell.W.dtype == np.float32


def test_cell_orthogonal_and_identity_init():
    V = nn.RNNCell(2, 7, init="orthogonal", dtype=F64).V.numpy()
    np.testing.assert_allclose(V.T @ V, np.eye(7), atol=1e-12, err_msg="orthogonal init: VᵀV must be I")
    assert not np.allclose(V, np.eye(7))
    np.testing.assert_array_equal(nn.RNNCell(2, 5, init="identity").V.numpy(), np.eye(5))
    with pytest.raises(ValueError, match="init must be one of uniform, orthogonal, identity"):
        nn.RNNCell(2, 5, init="xavier")


def test_same_seed_gives_same_weights_on_every_device():
    tg.manual_seed(42)
    a = nn.RNN(3, 4, num_layers=2).state_dict()
    tg.manual_seed(42)
    b = nn.RNN(3, 4, num_layers=2, device="strict").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = nn.RNN(3, 4, num_layers=2, rng=np.random.default_rng(42)).state_dict()
    np.testing.assert_array_equal(a["cells.1.V"], c["cells.1.V"], err_msg="rng= must act like manual_seed")


@pytest.mark.parametrize("device", device_params())
def test_cell_computes_tanh_of_xW_plus_hV_plus_b(device):
    rng = np.random.default_rng(1)
    cell = nn.RNNCell(3, 4, dtype=F64, device=device)
    x, h = rng.normal(size=(2, 3)), rng.normal(size=(2, 4))
    W, V, b = cell.W.numpy(), cell.V.numpy(), cell.b.numpy()
    out = cell(tg.Tensor(x, device=device), tg.Tensor(h, device=device))
    np.testing.assert_allclose(out.numpy(), np.tanh(x @ W + h @ V + b), rtol=1e-14)
    np.testing.assert_allclose(cell(tg.Tensor(x, device=device)).numpy(), np.tanh(x @ W + b), rtol=1e-14)
    with pytest.raises(ShapeError, match=r"x_t of shape \(2, 5\), want \(B, 3\)"):
        cell(tg.Tensor(np.zeros((2, 5)), device=device))
    with pytest.raises(ShapeError, match=r"h_prev of shape \(2, 3\), want \(2, 4\)"):
        cell(tg.Tensor(x, device=device), tg.Tensor(np.zeros((2, 3)), device=device))


def test_cell_protocol_forward_is_the_step_nn_RNN_runs():
    """cell(x_t, h) == cell.step(cell.project_input(x_t), h); project_input maps (..., E) for all
    steps at once; the zero state and hidden() as the unroller uses them."""
    rng = np.random.default_rng(2)
    cell = nn.RNNCell(3, 4, dtype=F64)
    x, h = tg.Tensor(rng.normal(size=(2, 3))), tg.Tensor(rng.normal(size=(2, 4)))
    np.testing.assert_array_equal(cell(x, h).numpy(), cell.step(cell.project_input(x), h).numpy())
    xs = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(cell.project_input(tg.Tensor(xs)).numpy(), xs @ cell.W.numpy() + cell.b.numpy(),
                               rtol=1e-14)
    zero = cell.initial_state(2)
    assert zero.shape == (2, 4) and not zero.numpy().any() and cell.hidden(zero) is zero
    rnn = nn.RNN(3, 4, dtype=F64)
    assert isinstance(rnn, nn.Recurrent) and rnn.cell_class is nn.RNNCell


def test_unbind_of_an_axis_of_size_one_backpropagates():
    """Regression: a 1-tuple output (h0 of a 1-layer RNN, or T = 1) got its gradient unwrapped."""
    x = tg.Tensor(np.arange(6.0).reshape(1, 2, 3), requires_grad=True)
    (only,) = x.unbind(axis=0)
    (only * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((1, 2, 3), 2.0))


# ---- RNN: shapes and errors ------------------------------------------------------------------------

def test_rnn_shapes_cells_order_and_names():
    rnn = nn.RNN(3, 4, num_layers=2, bidirectional=True)
    assert [c.input_size for c in rnn.cells] == [3, 3, 8, 8]
    assert [n for n, _ in rnn.named_parameters()][:4] == ["cells.0.W", "cells.0.V", "cells.0.b", "cells.1.W"]
    out, h_last = rnn(tg.randn(5, 6, 3))
    assert out.shape == (5, 6, 8) and h_last.shape == (4, 5, 4)
    out, h_last, states = rnn(tg.randn(5, 6, 3), return_states=True)
    assert len(states) == 4 and all(len(s) == 6 and s[0].shape == (5, 4) for s in states)


def test_rnn_rejects_bad_inputs_with_clear_messages():
    rnn = nn.RNN(3, 4, num_layers=2)
    with pytest.raises(ShapeError, match=r"x of shape \(2, 5\), want \(B, T, 3\)"):
        rnn(tg.randn(2, 5))
    with pytest.raises(ShapeError, match=r"h0 of shape \(1, 2, 4\), want .* \(2, 2, 4\)"):
        rnn(tg.randn(2, 5, 3), h0=tg.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 6 is outside \[0, 5\]"):
        rnn(tg.randn(2, 5, 3), lengths=[5, 6])
    with pytest.raises(ShapeError, match=r"lengths of shape \(3,\) for a batch of 2"):
        rnn(tg.randn(2, 5, 3), lengths=[5, 5, 5])
    with pytest.raises(TypeError, match="lengths must be integers"):
        rnn(tg.randn(2, 5, 3), lengths=[5.0, 2.0])


# ---- RNN == its cells -------------------------------------------------------------------------------

@settings(max_examples=examples(15))
@given(seq=float_sequences(features=st.integers(1, 4), batch_size=st.integers(1, 3), max_len=st.integers(1, 6)),
       hidden=st.integers(1, 4), layers=st.sampled_from([1, 2]), bidirectional=st.booleans(),
       with_h0=st.booleans(), seed=st.integers(0, 2**16))
def test_rnn_computes_exactly_what_its_cells_compute(seq, hidden, layers, bidirectional, with_h0, seed):
    rng = np.random.default_rng(seed)
    x, lengths = seq
    rnn = nn.RNN(x.shape[2], hidden, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng)
    h0 = rng.normal(size=(len(rnn.cells), x.shape[0], hidden)) if with_h0 else None
    out, h_last = rnn(tg.Tensor(x), None if h0 is None else tg.Tensor(h0), lengths=lengths)
    want_out, want_last = run_cells_one_by_one(rnn, x, None if h0 is None else [h0], lengths)
    want_h = want_last[0]
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-12, atol=1e-14, err_msg="outputs")
    np.testing.assert_allclose(h_last.numpy(), want_h, rtol=1e-12, atol=1e-14, err_msg="h_last")


# ---- gradients ----------------------------------------------------------------------------------------

@settings(max_examples=examples(20))
@given(seq=float_sequences(features=st.integers(1, 5), batch_size=st.integers(1, 4), max_len=st.integers(1, 8)),
       hidden=st.integers(1, 5), layers=st.sampled_from([1, 2]), bidirectional=st.booleans(),
       use_lengths=st.booleans(), with_h0=st.booleans(), seed=st.integers(0, 2**16))
def test_rnn_gradcheck(seq, hidden, layers, bidirectional, use_lengths, with_h0, seed):
    """Autograd through the whole unrolled RNN (x, h0 and every W, V, b) == finite differences."""
    rng = np.random.default_rng(seed)
    x_host, lengths = seq
    B = x_host.shape[0]
    rnn = nn.RNN(x_host.shape[2], hidden, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng)
    x = tg.Tensor(x_host, requires_grad=True, name="x")
    h0 = tg.Tensor(rng.normal(size=(len(rnn.cells), B, hidden)), requires_grad=True, name="h0")
    lengths = lengths if use_lengths else None
    for name, p in rnn.named_parameters():
        p.name = name

    def fn(x, h0, *params):
        return rnn(x, h0 if with_h0 else None, lengths=lengths)

    assert gradcheck(fn, [x, h0, *rnn.parameters()], seed=seed)


@settings(max_examples=examples(10))
@given(seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 3), max_len=st.integers(1, 5)),
       layers=st.sampled_from([1, 2]), bidirectional=st.booleans(), seed=st.integers(0, 2**16))
def test_need_outputs_false_gives_the_same_h_last_and_gradients(seq, layers, bidirectional, seed):
    rng = np.random.default_rng(seed)
    x_host, lengths = seq
    rnn = nn.RNN(x_host.shape[2], 3, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng)
    upstream = rng.normal(size=(len(rnn.cells), x_host.shape[0], 3))
    grads = []
    for need in (True, False):
        x = tg.Tensor(x_host, requires_grad=True)
        rnn.zero_grad()
        out, h_last = rnn(x, lengths=lengths, need_outputs=need)
        assert (out is None) == (not need)
        h_last.backward(upstream)
        grads.append([host(x.grad)] + [host(p.grad) for p in rnn.parameters()] + [h_last.numpy()])
    for i, (a, b) in enumerate(zip(*grads)):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-15, err_msg=f"item {i} (x.grad, parameter grads, h_last)")


@pytest.mark.parametrize("device", device_params())
def test_rnn_runs_on_each_device_like_on_cpu(device):
    rng = np.random.default_rng(5)
    x, lengths = rng.normal(size=(3, 5, 2)), [5, 2, 4]
    rnns = [nn.RNN(2, 3, num_layers=2, bidirectional=True, dtype=F64, rng=np.random.default_rng(9), device=d)
            for d in ("cpu", device)]
    results = []
    for rnn in rnns:
        xt = tg.Tensor(x, requires_grad=True, device=rnn.device)
        out, h = rnn(xt, lengths=lengths)
        (out * out).sum().backward()
        results.append((out.numpy(), h.numpy(), host(xt.grad), [host(p.grad) for p in rnn.parameters()]))
    (o1, h1, gx1, g1), (o2, h2, gx2, g2) = results
    np.testing.assert_allclose(o2, o1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h2, h1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gx2, gx1, rtol=1e-12, atol=1e-15)
    for a, b in zip(g2, g1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@settings(max_examples=examples(15))
@given(seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 4), max_len=st.integers(1, 6)),
       extra=st.integers(1, 4), layers=st.sampled_from([1, 2]), bidirectional=st.booleans(),
       truncate=st.sampled_from([None, 1, 2, 3]), seed=st.integers(0, 2**16))
def test_outputs_and_gradients_do_not_depend_on_padding(seq, extra, layers, bidirectional, truncate, seed):
    """More padding, with garbage in it, changes nothing: true-step outputs, h_last, all gradients
    (with truncated BPTT too: its chunks are counted along each sequence, not along the padding)."""
    rng = np.random.default_rng(seed)
    x, lengths = seq
    B, T, E = x.shape
    rnn = nn.RNN(E, 3, num_layers=layers, bidirectional=bidirectional, truncate=truncate, dtype=F64, rng=rng)
    upstream = rng.normal(size=(B, T, rnn.hidden_size * rnn.directions))
    up_h = rng.normal(size=(len(rnn.cells), B, 3))
    padded = np.concatenate([x, rng.normal(size=(B, extra, E))], axis=1)
    padded[np.arange(T + extra)[None, :] >= lengths[:, None]] = rng.normal(size=E)  # garbage in padding

    def run(inputs, up):
        for p in rnn.parameters():
            p.grad = None
        xt = tg.Tensor(inputs, requires_grad=True)
        out, h = rnn(xt, lengths=lengths)
        ((out * tg.Tensor(up)).sum() + (h * tg.Tensor(up_h)).sum()).backward()
        return out.numpy(), h.numpy(), xt.grad.copy(), [p.grad.copy() for p in rnn.parameters()]

    out1, h1, gx1, g1 = run(x, upstream)
    garbage_up = np.concatenate([upstream, rng.normal(size=(B, extra, upstream.shape[2]))], axis=1)
    out2, h2, gx2, g2 = run(padded, garbage_up)
    mask = np.arange(T + extra)[None, :] < lengths[:, None]
    np.testing.assert_allclose(out2[:, :T], out1, rtol=1e-12, atol=1e-15, err_msg="true-step outputs")
    assert not out2[~mask].any(), "outputs at padded steps must be 0"
    np.testing.assert_allclose(h2, h1, rtol=1e-12, atol=1e-15, err_msg="h_last")
    np.testing.assert_allclose(gx2[:, :T][mask[:, :T]], gx1[mask[:, :T]], rtol=1e-12, atol=1e-15)
    assert not gx2[~mask].any(), "inputs at padded steps must get no gradient"
    for (name, _), a, b in zip(rnn.named_parameters(), g2, g1):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14, err_msg=f"d{name}")


# ---- truncated BPTT ---------------------------------------------------------------------------------

def _grads(rnn, x, lengths=None):
    for p in rnn.parameters():
        p.grad = None
    xt = tg.Tensor(x, requires_grad=True)
    out, h = rnn(xt, lengths=lengths)
    upstream = np.random.default_rng(0).normal(size=out.shape)
    ((out * tg.Tensor(upstream)).sum() + h.sum()).backward()
    return xt.grad.copy(), [p.grad.copy() for p in rnn.parameters()]


@settings(max_examples=examples(10))
@given(seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 3), max_len=st.integers(1, 7)),
       k_extra=st.integers(0, 3), bidirectional=st.booleans(), seed=st.integers(0, 2**16))
def test_truncate_at_least_T_is_exactly_full_bptt(seq, k_extra, bidirectional, seed):
    x, lengths = seq
    T = x.shape[1]
    full = nn.RNN(x.shape[2], 3, num_layers=2, bidirectional=bidirectional, dtype=F64, rng=np.random.default_rng(seed))
    cut = nn.RNN(x.shape[2], 3, num_layers=2, bidirectional=bidirectional, dtype=F64, rng=np.random.default_rng(seed),
                 truncate=T + k_extra)
    gx1, g1 = _grads(full, x, lengths)
    gx2, g2 = _grads(cut, x, lengths)
    np.testing.assert_array_equal(gx2, gx1)
    for a, b in zip(g2, g1):
        np.testing.assert_array_equal(a, b)


def test_truncate_below_T_cuts_the_gradient_after_k_steps():
    rng = np.random.default_rng(3)
    T, k = 7, 3
    x = rng.normal(size=(2, T, 2))
    full = nn.RNN(2, 4, dtype=F64, rng=np.random.default_rng(1))
    cut = nn.RNN(2, 4, dtype=F64, rng=np.random.default_rng(1), truncate=k)
    _, g_full = _grads(full, x)
    _, g_cut = _grads(cut, x)
    assert not np.allclose(g_cut[1], g_full[1]), "truncate=3 < T=7 must change dL/dV"

    # A loss on the last state only: its gradient reaches only the last chunk of steps [6, 7).
    xt = tg.Tensor(x, requires_grad=True)
    h0 = tg.Tensor(rng.normal(size=(1, 2, 4)), requires_grad=True)
    _, h_last = cut(xt, h0)
    h_last.sum().backward()
    last_chunk = (T - 1) // k * k
    assert not xt.grad[:, :last_chunk].any(), "steps before the last chunk must get no gradient"
    assert np.abs(xt.grad[:, last_chunk:]).min() > 0
    assert h0.grad is None or not h0.grad.any(), "h0 lies more than k steps back"


def test_truncated_gradients_do_not_depend_on_padding_in_either_direction():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 2))
    padded = np.concatenate([x, np.zeros((1, 4, 2))], axis=1)
    rnn = nn.RNN(2, 3, bidirectional=True, truncate=3, dtype=F64, rng=np.random.default_rng(1))

    def grads(inputs):
        for p in rnn.parameters():
            p.grad = None
        out, h_last = rnn(tg.Tensor(inputs), lengths=[6])
        (out[:, :6].sum() + (h_last * h_last).sum()).backward()   # h_last: the carried state too
        return [p.grad.copy() for p in rnn.parameters()]

    for (name, _), a, b in zip(rnn.named_parameters(), grads(padded), grads(x)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"d{name}")


def test_unrolling_2000_steps_forward_and_backward():
    """No recursion anywhere (forward loop, iterative backward, freeing the graph)."""
    rnn = nn.RNN(3, 8, rng=np.random.default_rng(0))
    x = tg.Tensor(np.random.default_rng(1).normal(size=(2, 2000, 3)).astype(np.float32))
    out, h = rnn(x, lengths=[2000, 1500])
    (out.mean() + h.sum()).backward()
    assert np.isfinite(rnn.cells[0].V.grad).all() and np.abs(rnn.cells[0].W.grad).sum() > 0
    del out, h  # dropping a 2000-step graph must not overflow the C stack either


# ---- observing the states (for the BPTT tools) ------------------------------------------------------

def test_return_states_are_the_states_and_retain_their_gradient():
    rng = np.random.default_rng(2)
    rnn = nn.RNN(2, 3, dtype=F64, rng=rng)
    x = tg.Tensor(rng.normal(size=(2, 4, 2)))
    out, h_last, states = rnn(x, lengths=[4, 2], return_states=True)
    (hs,) = states
    np.testing.assert_array_equal(np.stack([s.numpy() for s in hs], axis=1)[0], out.numpy()[0])
    np.testing.assert_array_equal(hs[3].numpy()[1], hs[1].numpy()[1], err_msg="padded steps carry the state")
    for s in hs:
        s.retain_grad()
    (h_last * h_last).sum().backward()  # L = Σ h_last²: dL/dh_T = 2 h_T, then back through V
    np.testing.assert_allclose(hs[3].grad, 2 * h_last.numpy()[0], rtol=1e-14)
    assert all(s.grad is not None for s in hs)
