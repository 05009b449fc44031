"""The BPTT tools for every cell (issue 12 item 4): gradient_flow, the Jacobian view (for the LSTM
the cell-state path ∂c_t/∂c_{t−1} = diag(f_t) beside the hidden path), trace and graph, and their
``tinygrad-rnn bptt … --cell`` commands. Jacobians are held against central differences of the
cells' own ``step`` and against the gate equations, in float64."""

import re

import numpy as np
import pytest
from cli_helpers import run

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt import trace, unrolled_graph
from tinygrad_rnn.bptt.flow import gradient_flow, state_gradients
from tinygrad_rnn.bptt.jacobian import backpropagate_last, jacobian_product, jacobian_view, state_jacobians
from tinygrad_rnn.nn.recurrent import as_parts, from_parts

B, T, E, H = 3, 5, 3, 4
CELLS = ("rnn", "lstm", "gru")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def setup(cell, seed=0):
    """A single-layer float64 layer of ``cell``, inputs x (B, T, E) and a last-state loss."""
    rng = np.random.default_rng(seed)
    layer = nn.recurrent_layer(cell, E, H, rng=rng, dtype=np.float64)
    x = rng.standard_normal((B, T, E))
    u = tg.Tensor(rng.standard_normal((B, H)))  # a random upstream gradient on h_T

    def loss_fn(outputs, last):
        return (layer.cells[0].hidden(last)[0] * u).sum()

    return layer, x, loss_fn


def full_states(result):
    """s_t for t = 1..T: h_t, or the LSTM's [h_t ; c_t], (B, T, S)."""
    return result.states if result.cells is None else np.concatenate([result.states, result.cells], axis=-1)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_state_jacobians_match_central_differences_of_the_cell_step(cell, seed):
    layer, x, loss_fn = setup(cell, seed)
    result = state_gradients(layer, x, None, loss_fn)
    J = state_jacobians(layer.cells[0], x, result.states, result.cells)
    S = J.shape[-1]
    assert J.shape == (B, T, S, S) and S == (2 * H if cell == "lstm" else H)
    step_cell, eps = layer.cells[0], 1e-6

    def step(t, s):  # s_{t−1} (B, S) → s_t (B, S)
        state = from_parts(tuple(tg.Tensor(p) for p in np.split(s, S // H, axis=1)))
        new = step_cell.step(step_cell.project_input(tg.Tensor(x[:, t])), state)
        return np.concatenate([p.numpy() for p in as_parts(new)], axis=1)

    states = full_states(result)
    previous = np.concatenate([np.zeros((B, 1, S)), states[:, :-1]], axis=1)
    for t in range(T):
        np.testing.assert_allclose(
            step(t, previous[:, t]),
            states[:, t],
            rtol=0,
            atol=1e-13,
            err_msg=f"{cell}: the states do not replay at t = {t + 1}",
        )
        for j in range(S):
            d = np.zeros(S)
            d[j] = eps
            numeric = (step(t, previous[:, t] + d) - step(t, previous[:, t] - d)) / (2 * eps)
            np.testing.assert_allclose(
                J[:, t, :, j],
                numeric,
                rtol=1e-6,
                atol=1e-8,
                err_msg=f"{cell}, seed {seed}: column {j} of J_{t + 1} (analytic vs central differences)",
            )


def test_lstm_cell_path_is_diag_of_the_forget_gate():
    """∂c_t/∂c_{t−1} = diag(f_t), f_t = σ(x_t W_f + h_{t−1} V_f + b_f) from the equations, and
    ∂h_t/∂c_{t−1} = diag(o (1 − tanh² c_t) f): the carousel's blocks are diagonal."""
    layer, x, loss_fn = setup("lstm")
    result = state_gradients(layer, x, None, loss_fn)
    J = state_jacobians(layer.cells[0], x, result.states, result.cells)
    cell = layer.cells[0]
    W, V, b = cell.W.numpy(), cell.V.numpy(), cell.b.numpy()
    h_prev = np.concatenate([np.zeros((B, 1, H)), result.states[:, :-1]], axis=1)
    gates = x @ W + h_prev @ V + b
    f, o = sigmoid(gates[..., H : 2 * H]), sigmoid(gates[..., 3 * H :])
    for t in range(T):
        for row in range(B):
            np.testing.assert_allclose(
                J[row, t, H:, H:],
                np.diag(f[row, t]),
                rtol=1e-12,
                atol=1e-15,
                err_msg=f"∂c_t/∂c_(t−1) at b = {row}, t = {t + 1}",
            )
            through = o[row, t] * (1 - np.tanh(result.cells[row, t]) ** 2) * f[row, t]
            np.testing.assert_allclose(
                J[row, t, :H, H:],
                np.diag(through),
                rtol=1e-12,
                atol=1e-15,
                err_msg=f"∂h_t/∂c_(t−1) at b = {row}, t = {t + 1}",
            )


@pytest.mark.parametrize("cell", CELLS)
def test_backpropagating_through_the_jacobians_gives_autograds_state_gradients(cell):
    """g_{t−1} = g_t J_t from g_T = (∂L/∂h_T, 0) is autograd's ∂L/∂h_t; for the LSTM autograd's
    ∂L/∂c_t (which also counts the path through h_t = o ⊙ tanh(c_t)) is g_c + g_h ⊙ o(1 − tanh² c_t)."""
    layer, x, loss_fn = setup(cell)
    result = state_gradients(layer, x, None, loss_fn)
    J = state_jacobians(layer.cells[0], x, result.states, result.cells)
    g_T = np.concatenate([result.grads[:, -1], np.zeros((B, J.shape[-1] - H))], axis=1)
    g = backpropagate_last(J, g_T)
    np.testing.assert_allclose(
        g[..., :H],
        result.grads,
        rtol=1e-10,
        atol=1e-14,
        err_msg=f"{cell}: Jacobian back-propagation vs autograd's ∂L/∂h_t",
    )
    np.testing.assert_allclose(
        np.linalg.norm(result.grads, axis=-1).mean(axis=0), gradient_flow(layer, x, None, loss_fn), rtol=1e-12
    )
    if cell == "lstm":
        cell_ = layer.cells[0]
        h_prev = np.concatenate([np.zeros((B, 1, H)), result.states[:, :-1]], axis=1)
        o = sigmoid((x @ cell_.W.numpy() + h_prev @ cell_.V.numpy() + cell_.b.numpy())[..., 3 * H :])
        total = g[..., H:] + g[..., :H] * o * (1 - np.tanh(result.cells) ** 2)
        np.testing.assert_allclose(
            result.cell_grads,
            total,
            rtol=1e-10,
            atol=1e-14,
            err_msg="LSTM: autograd's ∂L/∂c_t vs the Jacobians",
        )
    else:
        assert result.cells is None and result.cell_grads is None


@pytest.mark.parametrize("cell", CELLS)
def test_jacobian_view_for_every_cell(cell):
    layer, x, loss_fn = setup(cell)
    view = jacobian_view(layer, x, loss_fn)
    result = state_gradients(layer, x, None, loss_fn)
    J = state_jacobians(layer.cells[0], x, result.states, result.cells)
    for k in range(T):  # product at step T − k: ‖∂s_T/∂s_{T−k}‖₂
        norms = np.linalg.norm(jacobian_product(J, k), ord=2, axis=(-2, -1))
        np.testing.assert_allclose(view.product[T - 1 - k], norms.mean(), rtol=1e-12)
    np.testing.assert_allclose(
        view.step, np.linalg.norm(J[..., :H, :H], ord=2, axis=(-2, -1)).mean(axis=0), rtol=1e-12
    )
    assert np.all(view.gradient <= view.bound * (1 + 1e-10)), "‖∂L/∂h_t‖ ≤ ‖∂L/∂h_T‖ ‖∂s_T/∂s_t‖₂"
    if cell != "lstm":
        assert view.cell_step is None and view.cell_path is None and view.cell_gradient is None
        return
    f = np.diagonal(J[..., H:, H:], axis1=-2, axis2=-1)  # (B, T, H), checked = σ(…) above
    np.testing.assert_allclose(view.cell_step, f.max(axis=-1).mean(axis=0), rtol=1e-12)
    for t in range(T):  # Π_{s > t} f_s, elementwise
        along = np.prod(f[:, t + 1 :], axis=1) if t < T - 1 else np.ones((B, H))
        np.testing.assert_allclose(view.cell_path[t], along.max(axis=-1).mean(), rtol=1e-12)
    np.testing.assert_allclose(view.cell_gradient, np.linalg.norm(result.cell_grads, axis=-1).mean(axis=0))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_trace_of_a_gated_layer(cell):
    """Every step runs the same ops (the gates' sigmoids among them), forward t = 1..T and
    backward t = T..1; the recurrent weights V receive their gradient step by step."""
    layer, x, loss_fn = setup(cell)
    with trace(params=layer) as tr:
        _, last = layer(tg.Tensor(x))
        loss = loss_fn(None, last)
        loss.backward()
    assert tr.step_order("forward") == list(range(1, T + 1))
    assert tr.step_order("backward") == list(range(T, 0, -1))
    ops = [sorted(r.op for r in tr.forward if r.step == t) for t in range(1, T + 1)]
    assert all(o == ops[0] for o in ops) and ops[0].count("sigmoid") == (3 if cell == "lstm" else 2), ops[0]
    backward_V = [r.step for r in tr.backward if "cells.0.V" in r.params]
    assert backward_V == list(range(T, 0, -1)), backward_V


@pytest.mark.parametrize(
    "cell, leaves",
    [
        ("lstm", ["cell.W", "cell.V", "cell.b", "h_0", "c_0"]),
        ("gru", ["cell.W", "cell.V", "cell.b", "cell.b_hn", "h_0"]),
    ],
)
def test_graph_of_a_gated_cell(cell, leaves):
    dot = unrolled_graph(3, cell=cell)
    assert all(f'label="t = {t}"' in dot for t in (1, 2, 3))
    for leaf in leaves:
        assert re.search(rf'label="{re.escape(leaf)}\\n', dot), leaf
    assert nn.CELLS[cell].equation in dot and "sigmoid" in dot
    layer_dot = unrolled_graph(2, cell=cell, use_rnn=True)
    assert f"nn.{nn.CELLS[cell].layer.__name__} unrolled" in layer_dot and "rnn.cells.0.V" in layer_dot
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru"):
        unrolled_graph(2, cell="tanh")


# ---- the command line ---------------------------------------------------------------------------


def test_bptt_commands_take_a_cell(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "bptt", "trace", "--cell", "gru", "--steps", "3", "--hidden", "2")
    assert code == 0 and "nn.GRU(2, 2)" in out and "sigmoid" in out
    assert "forward visits t = [1, 2, 3]; backward (BPTT) visits t = [3, 2, 1]" in out
    code, out, _ = run(capsys, "bptt", "graph", "--cell", "lstm", "--steps", "2")
    assert code == 0 and out.startswith("digraph") and "c_0" in out
    code, out, _ = run(
        capsys,
        "bptt",
        "flow",
        "--cell",
        "lstm",
        "--length",
        "12",
        "--batch",
        "4",
        "--rows",
        "12",
        "--no-plot",
    )
    assert code == 0 and "‖diag(f_t)‖₂" in out and "constant error carousel" in out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+\s+\d\.\d{3}e", line)]
    assert len(rows) == 12 and all(0 < float(r[5]) < 1 for r in rows), rows  # max f_t in (0, 1)
    assert float(rows[-1][6]) == 1.0  # ‖∂c_T/∂c_T‖ = 1
    code, out, _ = run(capsys, "bptt", "flow", "--cell", "gru", "--length", "8", "--batch", "4", "--no-plot")
    assert code == 0 and "gru" in out and "diag(f_t)" not in out
    code, _, err = run(capsys, "bptt", "flow", "--cell", "gru", "--init", "identity", "--no-plot")
    assert code == 2 and "picks the vanilla cell's V" in err and len(err.strip().splitlines()) == 1
