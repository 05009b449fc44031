"""nn.RNNCell, nn.LSTMCell, nn.GRUCell: their parameters and initialisation, each step against its
equations written out in NumPy, the cell protocol (state_names, initial_state, hidden, step), bad
input, gradients against finite differences, and chrono initialisation of the LSTM."""

import numpy as np
import pytest
from checks import host_state, parts
from devices import device_params

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.tensor import InPlaceModificationError, ShapeError

F64 = "float64"
CELLS = list(nn.CELLS)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def rnn_step(x, h, W, V, b):
    """The chapter's cell: h_t = tanh(x_t W + h_{t−1} V + b)."""
    return np.tanh(x @ W + h @ V + b)


def lstm_step(x, h, c, W, V, b):
    """The LSTM layout, written out: blocks i, f, g, o of W (E, 4H), V (H, 4H), b (4H,)."""
    H = V.shape[0]
    blk = [slice(k * H, (k + 1) * H) for k in range(4)]
    i = sigmoid(x @ W[:, blk[0]] + h @ V[:, blk[0]] + b[blk[0]])
    f = sigmoid(x @ W[:, blk[1]] + h @ V[:, blk[1]] + b[blk[1]])
    g = np.tanh(x @ W[:, blk[2]] + h @ V[:, blk[2]] + b[blk[2]])
    o = sigmoid(x @ W[:, blk[3]] + h @ V[:, blk[3]] + b[blk[3]])
    c = f * c + i * g
    return o * np.tanh(c), c


def gru_step(x, h, W, V, b, b_hn):
    """The GRU layout, written out: blocks r, z, n of W (E, 3H), V (H, 3H), b (3H,); b_hn (H,)."""
    H = V.shape[0]
    blk = [slice(k * H, (k + 1) * H) for k in range(3)]
    r = sigmoid(x @ W[:, blk[0]] + h @ V[:, blk[0]] + b[blk[0]])
    z = sigmoid(x @ W[:, blk[1]] + h @ V[:, blk[1]] + b[blk[1]])
    n = np.tanh(x @ W[:, blk[2]] + b[blk[2]] + r * (h @ V[:, blk[2]] + b_hn))
    return (1 - z) * n + z * h


# ---- parameters and initialisation ------------------------------------------------------------------------


def test_parameter_names_shapes_and_uniform_init():
    tg.manual_seed(0)
    rnn, lstm, gru = nn.RNNCell(3, 16), nn.LSTMCell(3, 16), nn.GRUCell(3, 16)
    assert [(n, p.shape) for n, p in rnn.named_parameters()] == [
        ("W", (3, 16)),
        ("V", (16, 16)),
        ("b", (16,)),
    ]
    assert [(n, p.shape) for n, p in lstm.named_parameters()] == [
        ("W", (3, 64)),
        ("V", (16, 64)),
        ("b", (64,)),
    ]
    assert [(n, p.shape) for n, p in gru.named_parameters()] == [
        ("W", (3, 48)),
        ("V", (16, 48)),
        ("b", (48,)),
        ("b_hn", (16,)),
    ]
    k = 1 / np.sqrt(16)
    b = lstm.b.numpy()
    np.testing.assert_array_equal(b[16:32], 1.0, err_msg="the forget gate's bias starts at 1")
    for name, values in [
        *[("rnn " + n, p.numpy()) for n, p in rnn.named_parameters()],
        ("lstm W", lstm.W.numpy()),
        ("lstm V", lstm.V.numpy()),
        ("lstm b_i,g,o", np.delete(b, range(16, 32))),
        *[("gru " + n, p.numpy()) for n, p in gru.named_parameters()],
    ]:
        assert np.abs(values).max() <= k, f"{name} outside U(-1/sqrt(H), 1/sqrt(H))"
        assert np.abs(values).max() > 0.5 * k, f"{name} does not use the range U(-1/sqrt(H), 1/sqrt(H))"
    assert all(p.dtype == np.float32 for cell in (rnn, lstm, gru) for p in cell.parameters())


def test_rnn_cell_orthogonal_and_identity_init():
    V = nn.RNNCell(2, 7, init="orthogonal", dtype=F64).V.numpy()
    np.testing.assert_allclose(V.T @ V, np.eye(7), atol=1e-12, err_msg="orthogonal init: VᵀV must be I")
    assert not np.allclose(V, np.eye(7))
    np.testing.assert_array_equal(nn.RNNCell(2, 5, init="identity").V.numpy(), np.eye(5))
    with pytest.raises(ValueError, match="init must be one of uniform, orthogonal, identity"):
        nn.RNNCell(2, 5, init="xavier")


def test_lstm_cell_forget_bias():
    k = 1 / np.sqrt(16)
    b_torch_like = nn.LSTMCell(3, 16, forget_bias=None).b.numpy()
    assert np.abs(b_torch_like).max() <= k and len(np.unique(b_torch_like[16:32])) == 16
    np.testing.assert_array_equal(nn.LSTMCell(3, 4, forget_bias=2.5).b.numpy()[4:8], 2.5)
    assert nn.LSTM(3, 4, num_layers=2, forget_bias=0.0).cells[1].b.numpy()[4:8].tolist() == [0.0] * 4
    for bad in (True, "1", float("nan"), float("inf")):
        with pytest.raises(ValueError, match="forget_bias must be a finite number or None"):
            nn.LSTMCell(2, 3, forget_bias=bad)


# ---- each step is its equations --------------------------------------------------------------------------


@pytest.mark.parametrize("device", device_params())
def test_cells_compute_their_equations(device):
    rng = np.random.default_rng(1)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    T = lambda a: tg.Tensor(a, device=device)  # noqa: E731
    rnn = nn.RNNCell(3, 4, dtype=F64, device=device)
    W, V, b = (p.numpy() for p in rnn.parameters())
    np.testing.assert_allclose(rnn(T(x), T(h)).numpy(), rnn_step(x, h, W, V, b), rtol=1e-14)
    np.testing.assert_allclose(rnn(T(x)).numpy(), rnn_step(x, 0 * h, W, V, b), rtol=1e-14)
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


# ---- the cell protocol -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_cells_follow_the_protocol(cell):
    """state_names says what a state is made of; the zero state, hidden(), and
    cell(x_t, state) == cell.step(cell.project_input(x_t), state) as the unroller uses them."""
    c = nn.CELLS[cell].cell(3, 4, dtype=F64)
    assert c.state_names == {"rnn": ("h",), "lstm": ("h", "c"), "gru": ("h",)}[cell]
    assert c.W.shape[1] == c.gates * 4 and c.gates == {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = tg.randn(2, 3, dtype=F64)
    state = c.initial_state(2)
    assert isinstance(state, tuple) == (len(c.state_names) > 1) and len(parts(state)) == len(c.state_names)
    assert all(s.shape == (2, 4) and s.dtype == np.float64 and not s.numpy().any() for s in parts(state))
    assert c.hidden(state) is parts(state)[0]
    a, b = c(x, state), c.step(c.project_input(x), state)
    for u, v in zip(host_state(a), host_state(b)):
        np.testing.assert_array_equal(u, v)
    assert len(parts(a)) == len(c.state_names) and c.hidden(a) is parts(a)[0]
    xs = np.random.default_rng(2).normal(size=(5, 2, 3))
    np.testing.assert_allclose(
        c.project_input(tg.Tensor(xs)).numpy(), xs @ c.W.numpy() + c.b.numpy(), rtol=1e-14
    )


@pytest.mark.parametrize("cell", CELLS)
def test_cells_refuse_bad_input_with_clear_messages(cell):
    c = nn.CELLS[cell].cell(3, 4)
    name = type(c).__name__
    with pytest.raises(ShapeError, match=rf"{name}: x_t of shape \(2, 5\), want \(B, 3\)"):
        c(tg.randn(2, 5))
    good = parts(c.initial_state(2))
    for k, part in enumerate(c.state_names):
        bad = tuple(tg.zeros(2, 3) if j == k else s for j, s in enumerate(good))
        with pytest.raises(ShapeError, match=rf"{name}: {part}_prev of shape \(2, 3\), want \(2, 4\)"):
            c(tg.randn(2, 3), bad if len(bad) > 1 else bad[0])
    wrong = tg.zeros(2, 4) if len(good) > 1 else (tg.zeros(2, 4), tg.zeros(2, 4))
    want = r"a tuple \(h, c\), got Tensor" if len(good) > 1 else "a tensor h, got tuple"
    with pytest.raises(TypeError, match=rf"{name}: state must be {want}"):
        c(tg.randn(2, 3), wrong)


@pytest.mark.parametrize("cell", CELLS)
def test_cell_gradcheck(cell):
    rng = np.random.default_rng(3)
    c = nn.CELLS[cell].cell(3, 4, dtype=F64, rng=rng)
    x = tg.Tensor(rng.normal(size=(2, 3)), requires_grad=True, name="x")
    state = [tg.Tensor(rng.normal(size=(2, 4)), requires_grad=True, name=n) for n in c.state_names]
    for name, p in c.named_parameters():
        p.name = name

    def fn(x, *rest):
        return parts(c(x, tuple(state) if len(state) > 1 else state[0]))

    assert gradcheck(fn, [x, *state, *c.parameters()], seed=3)


# ---- chrono initialisation -------------------------------------------------------------------------------


def test_chrono_init_sets_forget_and_input_biases_of_every_cell():
    lstm = nn.LSTM(3, 8, num_layers=2, bidirectional=True, rng=np.random.default_rng(0))
    before = [(c.W.numpy().copy(), c.V.numpy().copy(), c.b.numpy().copy()) for c in lstm.cells]
    assert nn.chrono_init_(lstm, 50, rng=np.random.default_rng(1)) is lstm
    for cell, (W, V, b_old) in zip(lstm.cells, before):
        b, H = cell.b.numpy(), 8
        b_i, b_f = b[:H], b[H : 2 * H]
        assert b.dtype == np.float32 and cell.forget_bias == "chrono"
        # b_f = log u, u ~ U(1, T_max − 1): f = σ(b_f) between 1/2 and (T_max − 1)/T_max
        assert np.all(b_f >= 0) and np.all(b_f <= np.log(49) + 1e-6) and len(np.unique(b_f)) == H, b_f
        np.testing.assert_array_equal(b_i, -b_f)
        np.testing.assert_array_equal(
            b[2 * H :], b_old[2 * H :], err_msg="the g and o biases are left as they were"
        )
        np.testing.assert_array_equal(cell.W.numpy(), W)
        np.testing.assert_array_equal(cell.V.numpy(), V)
    # the same rng, the same biases; one LSTMCell works too
    again = nn.chrono_init_(
        nn.LSTM(3, 8, num_layers=2, bidirectional=True, rng=np.random.default_rng(0)),
        50,
        rng=np.random.default_rng(1),
    )
    np.testing.assert_array_equal(again.cells[3].b.numpy(), lstm.cells[3].b.numpy())
    cell = nn.chrono_init_(nn.LSTMCell(2, 4, dtype=np.float64), 2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(cell.b.numpy()[4:8], 0.0)  # T_max = 2: u = 1, f = σ(0) = 1/2
    assert cell.b.dtype == np.float64 and "forget_bias='chrono'" in repr(cell)
    with pytest.raises(TypeError, match="needs an LSTM or an LSTMCell, got GRU"):
        nn.chrono_init_(nn.GRU(2, 4), 10)
    with pytest.raises(ValueError, match=r"max_length must be an integer ≥ 2 .* got 1"):
        nn.chrono_init_(nn.LSTM(2, 4), 1)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_chrono_init_after_a_recorded_forward_makes_backward_refuse(bidirectional):
    """chrono_init_ changes the biases: a graph recorded before it must not be differentiated
    with the new values (it has to bump the versions, as a load does)."""
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
    assert np.all(1 / (1 - f) >= 2 - 1e-9) and np.all(1 / (1 - f) <= 100 + 1e-9)  # time constants 2 … T_max
