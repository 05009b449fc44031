"""The numbers and statements docs/bptt.md, docs/attention.md and the nn docstrings make about the
mathematics, recomputed from the code, so that CI fails when one stops holding.

The fresh models are built exactly as ``tinygrad-rnn bptt flow`` builds them (seed 0: the layer,
then the head, from one generator; sequences from seed 20,000,000), so the values are the ones
the command prints.
"""

import math

import numpy as np
import pytest

from tinygrad_rnn import nn
from tinygrad_rnn.bptt.flow import gradient_flow, gradient_ratio, state_gradients
from tinygrad_rnn.bptt.jacobian import state_jacobians
from tinygrad_rnn.data.adding import adding_problem
from tinygrad_rnn.nn.functional import mse
from tinygrad_rnn.tensor import Tensor


def fresh_flow_model(cell: str, length: int, batch: int = 128, hidden: int = 32, seed: int = 0):
    """(layer, loss_fn, x) of ``tinygrad-rnn bptt flow --cell CELL --length LENGTH`` (defaults)."""
    rng = np.random.default_rng(seed)
    rnn = nn.recurrent_layer(cell, 2, hidden, init="uniform", rng=rng, dtype=np.float64)
    head = nn.Linear(hidden, 1, rng=rng, dtype=np.float64)
    x, y = adding_problem(batch, length, seed=20_000_000 + seed)
    targets = Tensor(y)

    def loss_fn(outputs, last):
        return mse(head(rnn.cells[0].hidden(last)[0]), targets)

    return rnn, loss_fn, x


def per_step(value: float, steps: int) -> float:
    return value ** (1.0 / steps)


def assert_close(name, value, documented, rel):
    assert abs(value - documented) <= rel * abs(documented), (
        f"{name}: computed {value:.4g}, the docs say {documented:.4g} (allowed relative error {rel})"
    )


# ---- section 2: the rate is the spectral radius, not the largest singular value ----------------


def test_the_vanilla_rate_is_the_spectral_radius_not_sigma_max():
    rnn, loss_fn, x = fresh_flow_model("rnn", 100)
    V = rnn.cells[0].V.numpy()
    sigma_max = np.linalg.norm(V, 2)
    rho = np.abs(np.linalg.eigvals(V)).max()
    v99 = np.linalg.norm(np.linalg.matrix_power(V, 99), 2)
    assert_close("σ_max(V)", sigma_max, 1.049, 5e-4)
    assert_close("ρ(V)", rho, 0.598, 1e-3)
    assert_close("‖V⁹⁹‖₂", v99, 1.6e-22, 0.04)
    assert_close("‖V⁹⁹‖₂^(1/99)", per_step(v99, 99), 0.602, 1e-3)
    # Gelfand: ‖V^k‖^(1/k) approaches ρ(V) from above and is far below σ_max(V)
    roots = [per_step(np.linalg.norm(np.linalg.matrix_power(V, k), 2), k) for k in (10, 50, 99)]
    assert roots[0] > roots[1] > roots[2] > rho and roots[2] - rho < 0.01, (roots, rho)

    flow = gradient_flow(rnn, x, None, loss_fn)
    ratio = gradient_ratio(flow)
    assert_close("‖∂L/∂h_1‖/‖∂L/∂h_100‖", ratio, 2.94e-25, 0.01)
    assert_close("measured decay per step", per_step(ratio, 99), 0.565, 2e-3)
    states = state_gradients(rnn, x, None, loss_fn).states
    tanh_prime = float((1 - states**2).mean())
    assert_close("mean tanh′", tanh_prime, 0.97, 0.006)
    assert_close("ρ(V) × mean tanh′", rho * tanh_prime, 0.58, 0.01)
    # the measured rate sits near ρ(V) × tanh′, and far below the bound's σ_max(V)
    assert abs(per_step(ratio, 99) - rho * tanh_prime) < 0.03
    assert per_step(ratio, 99) < 0.6 * sigma_max


# ---- section 3 and 7: the fresh LSTM's gradient travels mostly along the mixed paths ------------


def lstm_paths(length: int):
    """For ``bptt flow --cell lstm --length LENGTH``, at t = 1 (batch means, as the command prints):
    ‖∂L/∂h_1‖/‖∂L/∂h_T‖, ‖∂s_T/∂s_1‖₂ over all paths, and ‖Π f‖ along the cell state alone."""
    rnn, loss_fn, x = fresh_flow_model("lstm", length)
    H = rnn.cells[0].hidden_size
    result = state_gradients(rnn, x, None, loss_fn)
    ratio = gradient_ratio(np.linalg.norm(result.grads, axis=-1).mean(axis=0))
    products, c_paths = [], []
    for rows in np.array_split(np.arange(len(x)), 8):  # 16 sequences' Jacobians at a time
        J = state_jacobians(rnn.cells[0], x[rows], result.states[rows], result.cells[rows])
        product = np.broadcast_to(np.eye(2 * H), (len(rows), 2 * H, 2 * H)).copy()
        for t in range(length - 1, 0, -1):  # J_T ⋯ J_2 = ∂s_T/∂s_1
            product = product @ J[:, t]
        products += list(np.linalg.norm(product, 2, axis=(-2, -1)))
        f = np.diagonal(J[:, 1:, H:, H:], axis1=-2, axis2=-1)  # f_2 … f_T
        c_paths += list(np.prod(f, axis=1).max(axis=-1))
    return ratio, float(np.mean(products)), float(np.mean(c_paths))


@pytest.mark.parametrize("cell, documented", [("rnn", 4.5e-13), ("gru", 4.6e-10)])
def test_the_fresh_cells_at_t50_match_the_table(cell, documented):
    rnn, loss_fn, x = fresh_flow_model(cell, 50)
    assert_close(
        f"{cell} T = 50 ratio", gradient_ratio(gradient_flow(rnn, x, None, loss_fn)), documented, 0.02
    )


def test_the_fresh_lstm_at_t50_matches_the_table():
    ratio, product, c_path = lstm_paths(50)
    assert_close("LSTM T = 50 ratio", ratio, 3.2e-5, 0.02)
    assert_close("LSTM T = 50 ‖Π f‖ at t = 1", c_path, 1.4e-6, 0.03)
    assert_close("LSTM T = 50 ‖∂s_50/∂s_1‖₂", product, 1.0e-3, 0.05)
    assert_close("ratio over the c path alone", ratio / c_path, 24, 0.05)


def test_the_fresh_lstm_at_t200_c_path_against_all_paths():
    ratio, product, c_path = lstm_paths(200)
    assert_close("LSTM T = 200 ‖Π f‖", c_path, 1.8e-24, 0.03)
    assert_close("LSTM T = 200 ‖∂s_T/∂s_1‖₂", product, 7.6e-14, 0.03)
    assert_close("LSTM T = 200 ratio", ratio, 2.2e-15, 0.03)
    assert round(per_step(c_path, 199), 2) == 0.76
    assert round(per_step(product, 199), 2) == 0.86
    assert round(per_step(ratio, 199), 2) == 0.84
    assert ratio > 1e8 * c_path  # c alone carries a vanishing share


def test_the_per_step_rates_quoted_for_the_experiment_models():
    # docs/bptt.md, section 7: 2.0e-8 at T = 100 and 5.2e-14 at T = 200, "0.84 and 0.86 per step"
    assert round(per_step(2.0e-8, 99), 2) == 0.84
    assert round(per_step(5.2e-14, 199), 2) == 0.86


# ---- section 5: truncation and the adding problem -----------------------------------------------


@pytest.mark.parametrize("T", [10, 11])
def test_every_truncation_shorter_than_the_sequence_cuts_off_the_first_half(T):
    """The first marker lies in the first half; no k < T lets the loss at T reach it."""
    x = np.random.default_rng(1).uniform(size=(3, T, 2))
    for k in range(1, T + 1):
        rnn = nn.RNN(2, 8, truncate=k, rng=np.random.default_rng(0), dtype=np.float64)
        inputs = Tensor(x, requires_grad=True)
        _, h_last = rnn(inputs)
        (h_last[0] ** 2).sum().backward()
        reached = np.abs(inputs.grad).sum(axis=(0, 2)) > 0  # per position
        if k < T:
            assert not reached[: T // 2].any(), (
                f"T = {T}, k = {k}: the gradient reaches {np.flatnonzero(reached)}"
            )
        else:
            assert reached.all(), f"T = {T}, k = {k} (no cut): the gradient misses {np.flatnonzero(~reached)}"


def test_the_adding_problem_is_le_et_al_s_variant():
    T = 20
    x, y = adding_problem(500, T, seed=3)
    marked = [np.flatnonzero(row) for row in x[..., 1]]
    assert all(len(m) == 2 and m[0] < T // 2 <= m[1] for m in marked)  # one marker per half
    assert 0.0 <= x[..., 0].min() and x[..., 0].max() <= 1.0  # values in [0, 1]
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * x[..., 1]).sum(axis=1))  # the plain sum


# ---- section 7 and nn/cells.py: the GRU is PyTorch's variant; chrono's time scales --------------


def test_the_gru_resets_after_the_product_not_before():
    H, E, B = 4, 3, 5
    cell = nn.GRUCell(E, H, rng=np.random.default_rng(0), dtype=np.float64)
    rng = np.random.default_rng(1)
    x, h = rng.normal(size=(B, E)), rng.normal(size=(B, H))
    W, V, b, b_hn = (p.numpy() for p in (cell.W, cell.V, cell.b, cell.b_hn))

    def sigmoid(a):
        return 1 / (1 + np.exp(-a))

    xw = x @ W + b
    r = sigmoid(xw[:, :H] + h @ V[:, :H])
    z = sigmoid(xw[:, H : 2 * H] + h @ V[:, H : 2 * H])
    after = np.tanh(xw[:, 2 * H :] + r * (h @ V[:, 2 * H :] + b_hn))  # PyTorch: r ⊙ (h V_n + b_hn)
    before = np.tanh(xw[:, 2 * H :] + (r * h) @ V[:, 2 * H :] + b_hn)  # Cho et al.: (r ⊙ h) V_n
    ours = cell(Tensor(x), Tensor(h)).numpy()
    np.testing.assert_allclose(ours, (1 - z) * after + z * h, rtol=0, atol=1e-12)
    assert np.abs(ours - ((1 - z) * before + z * h)).max() > 1e-3  # a different function


def test_chrono_memory_and_one_over_e_time():
    f1 = 1 / (1 + math.exp(-1.0))  # σ(1), a forget bias of 1
    assert round(1 / (1 - f1), 1) == 3.7 and round(-1 / math.log(f1), 1) == 3.2
    for u in (1.0, 2.0, 10.0, 99.0, 399.0):
        f = u / (1 + u)  # σ(log u)
        assert math.isclose(sum(f**k for k in range(20_000)), 1 + u, rel_tol=1e-9)  # Σ f^k
        one_over_e = -1 / math.log(f)
        assert math.isclose(f**one_over_e, math.exp(-1))
        assert abs(one_over_e - (u + 0.5)) < 1 / (12 * u) + 1e-9  # ≈ u + ½
