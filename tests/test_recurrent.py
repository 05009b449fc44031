"""The unroller (nn.Recurrent) with each of the three cells — nn.RNN, nn.LSTM, nn.GRU: the shared
signature, shapes and errors, a layer against its cells one by one, gradients against finite
differences, lengths and padding, truncation, devices, T = 2000, observed states, PyTorch.

Every test runs for every cell in ``nn.CELLS``: the unroller is written once, and so are its tests.
"""

import numpy as np
import pytest
from checks import host_state, parts, run_cells_one_by_one
from devices import device_params, host
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.tensor import ShapeError
from tinygrad_rnn.testing import examples, float_sequences

F64 = "float64"
CELLS = list(nn.CELLS)


def layer_of(cell, *args, **kwargs):
    """The layer of ``cell`` (nn.RNN, nn.LSTM or nn.GRU) built with these arguments."""
    return nn.CELLS[cell].layer(*args, **kwargs)


def n_parts(cell) -> int:
    return len(nn.CELLS[cell].cell.state_names)


def as_state(tensors):
    """The layer's form of a state from its parts: h itself, or the tuple (h, c)."""
    tensors = tuple(tensors)
    return tensors if len(tensors) > 1 else tensors[0]


# ---- the shared signature ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_the_three_layers_share_one_positional_signature(cell):
    """(input_size, hidden_size, num_layers, bidirectional, truncate) by position, as PyTorch's
    RNNBase; what only one cell has (init, forget_bias) by keyword only."""
    layer = layer_of(cell, 3, 4, 2, True, 5, checkpoint=2, rng=np.random.default_rng(0))
    assert (
        layer.input_size,
        layer.hidden_size,
        layer.num_layers,
        layer.bidirectional,
        layer.truncate,
        layer.checkpoint,
    ) == (3, 4, 2, True, 5, 2)
    assert isinstance(layer, nn.Recurrent) and layer.cell_class is nn.CELLS[cell].cell
    assert all(type(c) is nn.CELLS[cell].cell for c in layer.cells)
    with pytest.raises(TypeError, match="positional"):
        layer_of(cell, 3, 4, 2, True, 5, "uniform")
    same = nn.recurrent_layer(cell, 3, 4, 2, True, 5, checkpoint=2, rng=np.random.default_rng(0))
    assert repr(same) == repr(layer)


def test_cell_options_are_keyword_only():
    assert nn.RNN(3, 4, init="identity").cells[0].init == "identity"
    assert nn.LSTM(3, 4, forget_bias=0.5).cells[0].forget_bias == 0.5
    for make in (lambda: nn.RNNCell(3, 4, "identity"), lambda: nn.LSTMCell(3, 4, 0.5)):
        with pytest.raises(TypeError, match="positional"):
            make()


# ---- shapes and errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_same_seed_gives_same_weights_on_every_device(cell):
    tg.manual_seed(42)
    a = layer_of(cell, 3, 4, num_layers=2).state_dict()
    tg.manual_seed(42)
    b = layer_of(cell, 3, 4, num_layers=2, device="strict").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = layer_of(cell, 3, 4, num_layers=2, rng=np.random.default_rng(42)).state_dict()
    np.testing.assert_array_equal(a["cells.1.V"], c["cells.1.V"], err_msg="rng= must act like manual_seed")


@pytest.mark.parametrize("cell", CELLS)
def test_shapes_cells_order_and_names(cell):
    layer = layer_of(cell, 3, 4, num_layers=2, bidirectional=True)
    assert [c.input_size for c in layer.cells] == [3, 3, 8, 8]
    names = [n for n, _ in layer.named_parameters()]
    assert names == [
        f"cells.{k}.{p}" for k in range(4) for p in ("W", "V", "b", "b_hn")[: 3 + (cell == "gru")]
    ]
    x = tg.randn(5, 6, 3)
    out, last = layer(x)
    assert out.shape == (5, 6, 8) and len(parts(last)) == n_parts(cell)
    assert all(p.shape == (4, 5, 4) for p in parts(last))
    out, last = layer(x, as_state(tg.randn(4, 5, 4) for _ in range(n_parts(cell))))
    out, last, states = layer(x, return_states=True)
    assert len(states) == 4 and all(len(s) == 6 and len(parts(s[0])) == n_parts(cell) for s in states)
    assert all(p.shape == (5, 4) for s in states for p in parts(s[0]))
    assert layer(x, need_outputs=False)[0] is None


@pytest.mark.parametrize("cell", CELLS)
def test_bad_inputs_get_clear_messages(cell):
    layer = layer_of(cell, 3, 4, num_layers=2)
    name = nn.CELLS[cell].layer.__name__
    zeros = as_state(tg.zeros(2, 2, 4) for _ in range(n_parts(cell)))
    with pytest.raises(ShapeError, match=rf"{name}: x of shape \(2, 5\), want \(B, T, 3\)"):
        layer(tg.randn(2, 5))
    bad_h0 = as_state([tg.zeros(2, 2, 4)] * (n_parts(cell) - 1) + [tg.zeros(1, 2, 4)])
    with pytest.raises(ShapeError, match=r"h0 of shape \(1, 2, 4\), want .* \(2, 2, 4\)"):
        layer(tg.randn(2, 5, 3), h0=bad_h0)
    want = (
        r"a tensor h0, got tuple of 2"
        if n_parts(cell) == 1
        else r"a tuple of 2 tensors \(h0, c0\), got Tensor"
    )
    wrong_parts = (tg.zeros(2, 2, 4), tg.zeros(2, 2, 4)) if n_parts(cell) == 1 else tg.zeros(2, 2, 4)
    with pytest.raises(ShapeError, match=rf"h0 must be {want}"):
        layer(tg.randn(2, 5, 3), h0=wrong_parts)
    with pytest.raises(ValueError, match=r"lengths\[1\] = 6 is outside \[0, 5\]"):
        layer(tg.randn(2, 5, 3), zeros, lengths=[5, 6])
    with pytest.raises(ShapeError, match=r"lengths of shape \(3,\) for a batch of 2"):
        layer(tg.randn(2, 5, 3), lengths=[5, 5, 5])
    with pytest.raises(TypeError, match="lengths must be integers"):
        layer(tg.randn(2, 5, 3), lengths=[5.0, 2.0])
    with pytest.raises(ValueError, match="no time steps"):
        layer(tg.randn(2, 0, 3))


def test_unbind_of_an_axis_of_size_one_backpropagates():
    """Regression: a 1-tuple output (h0 of a 1-layer RNN, or T = 1) got its gradient unwrapped."""
    x = tg.Tensor(np.arange(6.0).reshape(1, 2, 3), requires_grad=True)
    (only,) = x.unbind(axis=0)
    (only * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((1, 2, 3), 2.0))


# ---- a layer computes exactly what its cells compute ----------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=examples(10))
@given(
    seq=float_sequences(features=st.integers(1, 4), batch_size=st.integers(1, 3), max_len=st.integers(1, 6)),
    hidden=st.integers(1, 4),
    layers=st.sampled_from([1, 2]),
    bidirectional=st.booleans(),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_layer_computes_exactly_what_its_cells_compute(
    cell, seq, hidden, layers, bidirectional, with_h0, seed
):
    rng = np.random.default_rng(seed)
    x, lengths = seq
    layer = layer_of(
        cell, x.shape[2], hidden, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng
    )
    h0 = (
        [rng.normal(size=(len(layer.cells), x.shape[0], hidden)) for _ in range(n_parts(cell))]
        if with_h0
        else None
    )
    out, last = layer(tg.Tensor(x), None if h0 is None else as_state(map(tg.Tensor, h0)), lengths=lengths)
    want_out, want_last = run_cells_one_by_one(layer, x, h0, lengths)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-12, atol=1e-14, err_msg="outputs")
    for i, got in enumerate(host_state(last)):
        np.testing.assert_allclose(got, want_last[i], rtol=1e-12, atol=1e-14, err_msg=f"last state part {i}")


# ---- gradients ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=examples(12))
@given(
    seq=float_sequences(features=st.integers(1, 4), batch_size=st.integers(1, 3), max_len=st.integers(1, 6)),
    hidden=st.integers(1, 4),
    layers=st.sampled_from([1, 2]),
    bidirectional=st.booleans(),
    use_lengths=st.booleans(),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_layer_gradcheck(cell, seq, hidden, layers, bidirectional, use_lengths, with_h0, seed):
    """Autograd through the whole unrolled layer (x, every part of h0 and every parameter) ==
    finite differences."""
    rng = np.random.default_rng(seed)
    x_host, lengths = seq
    B = x_host.shape[0]
    layer = layer_of(
        cell, x_host.shape[2], hidden, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng
    )
    x = tg.Tensor(x_host, requires_grad=True, name="x")
    h0 = [
        tg.Tensor(rng.normal(size=(len(layer.cells), B, hidden)), requires_grad=True, name=n + "0")
        for n in nn.CELLS[cell].cell.state_names
    ]
    lengths = lengths if use_lengths else None
    for name, p in layer.named_parameters():
        p.name = name

    def fn(x, *rest):
        out, last = layer(x, as_state(h0) if with_h0 else None, lengths=lengths)
        return (out, *parts(last))

    assert gradcheck(fn, [x, *h0, *layer.parameters()], seed=seed)


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=examples(6))
@given(
    seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 3), max_len=st.integers(1, 5)),
    layers=st.sampled_from([1, 2]),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_need_outputs_false_gives_the_same_last_state_and_gradients(cell, seq, layers, bidirectional, seed):
    rng = np.random.default_rng(seed)
    x_host, lengths = seq
    layer = layer_of(
        cell, x_host.shape[2], 3, num_layers=layers, bidirectional=bidirectional, dtype=F64, rng=rng
    )
    upstream = [rng.normal(size=(len(layer.cells), x_host.shape[0], 3)) for _ in range(n_parts(cell))]
    grads = []
    for need in (True, False):
        x = tg.Tensor(x_host, requires_grad=True)
        layer.zero_grad()
        out, last = layer(x, lengths=lengths, need_outputs=need)
        assert (out is None) == (not need)
        sum((p * tg.Tensor(u)).sum() for p, u in zip(parts(last), upstream)).backward()
        grads.append([host(x.grad)] + [host(p.grad) for p in layer.parameters()] + list(host_state(last)))
    for i, (a, b) in enumerate(zip(*grads)):
        np.testing.assert_allclose(
            b, a, rtol=1e-13, atol=1e-15, err_msg=f"item {i} (x.grad, parameter grads, last)"
        )


def _backward(layer, x, lengths, up, up_last, h0=None):
    """Outputs, last state, dx and every parameter's gradient of Σ up ⊙ out + Σ up_last ⊙ last."""
    for p in layer.parameters():
        p.grad = None
    xt = tg.Tensor(x, requires_grad=True, device=layer.cells[0].W.device)
    out, last = layer(xt, h0, lengths=lengths)
    loss = (out * tg.Tensor(up, device=xt.device)).sum()
    for part, u in zip(parts(last), up_last):
        loss = loss + (part * tg.Tensor(u, device=xt.device)).sum()
    loss.backward()
    return out.numpy(), host_state(last), host(xt.grad), [host(p.grad) for p in layer.parameters()]


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("cell", CELLS)
def test_layer_runs_on_each_device_like_on_cpu(cell, device):
    rng = np.random.default_rng(5)
    x, lengths = rng.normal(size=(3, 5, 2)), [5, 2, 4]
    up, up_last = rng.normal(size=(3, 5, 6)), [rng.normal(size=(4, 3, 3)) for _ in range(n_parts(cell))]
    results = [
        _backward(
            layer_of(
                cell,
                2,
                3,
                num_layers=2,
                bidirectional=True,
                truncate=2,
                dtype=F64,
                rng=np.random.default_rng(9),
                device=d,
            ),
            x,
            lengths,
            up,
            up_last,
        )
        for d in ("cpu", device)
    ]
    (o1, last1, gx1, g1), (o2, last2, gx2, g2) = results
    for i, (a, b) in enumerate(zip([o2, *last2, gx2, *g2], [o1, *last1, gx1, *g1])):
        np.testing.assert_allclose(
            a, b, rtol=1e-12, atol=1e-15, err_msg=f"item {i} (out, last, dx, parameter grads)"
        )


# ---- lengths and padding -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=examples(10))
@given(
    seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 4), max_len=st.integers(1, 6)),
    extra=st.integers(1, 4),
    layers=st.sampled_from([1, 2]),
    bidirectional=st.booleans(),
    truncate=st.sampled_from([None, 1, 2, 3]),
    seed=st.integers(0, 2**16),
)
def test_outputs_and_gradients_do_not_depend_on_padding(
    cell, seq, extra, layers, bidirectional, truncate, seed
):
    """More padding, with garbage in it, changes nothing: true-step outputs, the last state, all
    gradients — the whole state carries over a padded step; with truncated BPTT too, its chunks
    being counted along each sequence, not along the padding."""
    rng = np.random.default_rng(seed)
    x, lengths = seq
    B, T, E = x.shape
    layer = layer_of(
        cell, E, 3, num_layers=layers, bidirectional=bidirectional, truncate=truncate, dtype=F64, rng=rng
    )
    up = rng.normal(size=(B, T, 3 * layer.directions))
    up_last = [rng.normal(size=(len(layer.cells), B, 3)) for _ in range(n_parts(cell))]
    padded = np.concatenate([x, rng.normal(size=(B, extra, E))], axis=1)
    padded[np.arange(T + extra)[None, :] >= lengths[:, None]] = rng.normal(size=E)  # garbage in padding
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


# ---- truncated BPTT ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
@settings(max_examples=examples(8))
@given(
    seq=float_sequences(features=st.integers(1, 3), batch_size=st.integers(1, 3), max_len=st.integers(1, 7)),
    k_extra=st.integers(0, 3),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_truncate_at_least_T_is_exactly_full_bptt(cell, seq, k_extra, bidirectional, seed):
    x, lengths = seq
    T = x.shape[1]
    rng = np.random.default_rng(seed)
    up = rng.normal(size=(x.shape[0], T, 3 * (1 + bidirectional)))
    up_last = [rng.normal(size=(2 * (1 + bidirectional), x.shape[0], 3)) for _ in range(n_parts(cell))]
    results = [
        _backward(
            layer_of(
                cell,
                x.shape[2],
                3,
                num_layers=2,
                bidirectional=bidirectional,
                truncate=k,
                dtype=F64,
                rng=np.random.default_rng(seed),
            ),
            x,
            lengths,
            up,
            up_last,
        )
        for k in (None, T + k_extra)
    ]
    np.testing.assert_array_equal(results[1][2], results[0][2])
    for a, b in zip(results[1][3], results[0][3]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_truncate_below_T_cuts_the_gradient_after_k_steps(cell):
    """truncate=3 < T=7 changes dL/dV; a loss on the last state reaches only the last chunk of
    steps [6, 7) — through h and, for the LSTM, through the cell state c — and not h0."""
    rng = np.random.default_rng(3)
    T, k = 7, 3
    x = rng.normal(size=(2, T, 2))
    up, up_last = rng.normal(size=(2, T, 4)), [np.ones((1, 2, 4))] * n_parts(cell)
    full, cut = (layer_of(cell, 2, 4, truncate=t, dtype=F64, rng=np.random.default_rng(1)) for t in (None, k))
    assert not np.allclose(
        _backward(cut, x, None, up, up_last)[3][1], _backward(full, x, None, up, up_last)[3][1]
    ), "truncate=3 < T=7 must change dL/dV"

    xt = tg.Tensor(x, requires_grad=True)
    h0 = [tg.Tensor(rng.normal(size=(1, 2, 4)), requires_grad=True) for _ in range(n_parts(cell))]
    _, last = cut(xt, as_state(h0))
    sum(p.sum() for p in parts(last)).backward()
    last_chunk = (T - 1) // k * k
    assert not xt.grad[:, :last_chunk].any(), "steps before the last chunk must get no gradient"
    assert np.abs(xt.grad[:, last_chunk:]).max() > 0
    assert all(h.grad is None or not h.grad.any() for h in h0), "h0 lies more than k steps back"


@pytest.mark.parametrize("cell", CELLS)
def test_truncated_gradients_do_not_depend_on_padding_in_either_direction(cell):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 6, 2))
    padded = np.concatenate([x, np.zeros((1, 4, 2))], axis=1)
    layer = layer_of(cell, 2, 3, bidirectional=True, truncate=3, dtype=F64, rng=np.random.default_rng(1))

    def grads(inputs):
        for p in layer.parameters():
            p.grad = None
        out, last = layer(tg.Tensor(inputs), lengths=[6])
        (out[:, :6].sum() + sum((p * p).sum() for p in parts(last))).backward()  # the carried state too
        return [p.grad.copy() for p in layer.parameters()]

    for (name, _), a, b in zip(layer.named_parameters(), grads(padded), grads(x)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"d{name}")


@pytest.mark.parametrize("cell", CELLS)
def test_unrolling_2000_steps_forward_and_backward(cell):
    """No recursion anywhere (forward loop, iterative backward, freeing the graph)."""
    layer = layer_of(cell, 3, 8, rng=np.random.default_rng(0))
    x = tg.Tensor(np.random.default_rng(1).normal(size=(2, 2000, 3)).astype(np.float32))
    out, last = layer(x, lengths=[2000, 1500])
    (out.mean() + sum(p.sum() for p in parts(last))).backward()
    assert np.isfinite(layer.cells[0].V.grad).all() and np.abs(layer.cells[0].W.grad).sum() > 0
    del out, last  # dropping a 2000-step graph must not overflow the C stack either


# ---- observing the states (for the BPTT tools) -------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_return_states_are_the_states_and_retain_their_gradient(cell):
    rng = np.random.default_rng(2)
    layer = layer_of(cell, 2, 3, dtype=F64, rng=rng)
    x = tg.Tensor(rng.normal(size=(2, 4, 2)))
    out, last, states = layer(x, lengths=[4, 2], return_states=True)
    (steps,) = states
    hs = [layer.cells[0].hidden(s) for s in steps]
    np.testing.assert_array_equal(np.stack([h.numpy() for h in hs], axis=1)[0], out.numpy()[0])
    for a, b in zip(host_state(steps[3]), host_state(steps[1])):
        np.testing.assert_array_equal(a[1], b[1], err_msg="padded steps carry the whole state")
    for h in hs:
        h.retain_grad()
    h_last = parts(last)[0]
    (h_last * h_last).sum().backward()  # L = Σ h_last²: dL/dh_T = 2 h_T, then back through the steps
    np.testing.assert_allclose(hs[3].grad, 2 * h_last.numpy()[0], rtol=1e-14)
    assert all(h.grad is not None for h in hs)


# ---- PyTorch -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_weights_carried_to_torch_give_the_same_outputs(cell):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    B, T, E, H = 3, 6, 4, 5
    x = rng.normal(size=(B, T, E))
    ours = layer_of(cell, E, H, num_layers=2, bidirectional=True, dtype=F64, rng=rng)
    theirs = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
        E, H, num_layers=2, bidirectional=True, batch_first=True
    ).double()
    with torch.no_grad():
        for k, c in enumerate(ours.cells):
            suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
            hidden_bias = np.zeros(c.V.shape[1])
            if cell == "gru":
                hidden_bias[2 * H :] = c.b_hn.numpy()  # PyTorch's b_hn is the n block of bias_hh
            for name, value in (
                ("weight_ih", c.W.numpy().T),
                ("weight_hh", c.V.numpy().T),
                ("bias_ih", c.b.numpy()),
                ("bias_hh", hidden_bias),
            ):
                getattr(theirs, name + suffix).copy_(torch.from_numpy(np.ascontiguousarray(value)))
    out, last = ours(tg.Tensor(x))
    t_out, t_last = theirs(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=1e-12, atol=1e-14)
    for a, b in zip(host_state(last), t_last if cell == "lstm" else (t_last,)):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-12, atol=1e-14)
