"""bptt.jacobian: J_t = diag(1 − h_t²) Vᵀ, products of J over k steps, and the autograd identity (float64)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt.flow import state_gradients
from tinygrad_rnn.bptt.jacobian import (
    backpropagate_last,
    jacobian_product,
    jacobian_view,
    spectral_norm,
    step_jacobians,
)
from tinygrad_rnn.testing import examples

F64 = "float64"


def test_step_jacobian_matches_finite_differences_of_one_step():
    rng = np.random.default_rng(0)
    E, H = 3, 4
    W, V, b = rng.normal(size=(E, H)), rng.normal(size=(H, H)) * 0.5, rng.normal(size=H)
    x_t, h_prev = rng.normal(size=E), rng.normal(size=H)
    step = lambda h: np.tanh(x_t @ W + h @ V + b)  # noqa: E731  (row-vector convention)
    h_t = step(h_prev)
    eps = 1e-6
    numeric = np.stack(
        [(step(h_prev + eps * e) - step(h_prev - eps * e)) / (2 * eps) for e in np.eye(H)], axis=1
    )
    J = step_jacobians(h_t.reshape(1, 1, H), V)[0, 0]
    np.testing.assert_allclose(
        J,
        numeric,
        rtol=1e-7,
        atol=1e-9,
        err_msg="J[i, j] must be ∂h_t[i]/∂h_{t-1}[j] = (1 − h_t[i]²) V[j, i]",
    )
    np.testing.assert_allclose(J, np.diag(1 - h_t**2) @ V.T, rtol=1e-14)


@settings(max_examples=examples(10), deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 8),
    H=st.integers(1, 5),
    init=st.sampled_from(["uniform", "orthogonal", "identity"]),
    seed=st.integers(0, 2**16),
)
def test_product_of_jacobians_carries_the_last_gradient_back(B, T, H, init, seed):
    """Loss on the last state only: ∂L/∂h_{T−k} = ∂L/∂h_T · J_T ⋯ J_{T−k+1} for every k."""
    rng = np.random.default_rng(seed)
    rnn = nn.RNN(2, H, init=init, dtype=F64, rng=rng)
    x = rng.normal(size=(B, T, 2))
    R = tg.Tensor(rng.normal(size=(B, H)))
    result = state_gradients(rnn, x, None, lambda outputs, h_last: ((h_last[0] * R).tanh()).sum())
    J = step_jacobians(result.states, rnn.cells[0].V.numpy())
    g_T = result.grads[:, -1]
    scale = np.abs(result.grads).max()
    for k in range(T):
        carried = np.einsum("bi,bij->bj", g_T, jacobian_product(J, k))
        np.testing.assert_allclose(
            carried,
            result.grads[:, T - 1 - k],
            rtol=1e-9,
            atol=1e-12 * scale,
            err_msg=f"k = {k}: J-product · ∂L/∂h_T vs autograd ∂L/∂h_(T-k), T = {T}",
        )
    np.testing.assert_allclose(backpropagate_last(J, g_T), result.grads, rtol=1e-9, atol=1e-12 * scale)


def test_product_edge_cases_and_bad_shapes():
    J = step_jacobians(np.zeros((2, 3, 4)), np.eye(4))
    np.testing.assert_array_equal(jacobian_product(J, 0), np.broadcast_to(np.eye(4), (2, 4, 4)))
    with pytest.raises(ValueError, match=r"k must be in \[0, 3\]"):
        jacobian_product(J, 4)
    with pytest.raises(ValueError, match=r"states of shape \(2, 3, 4\).*V of shape \(3, 3\)"):
        step_jacobians(np.zeros((2, 3, 4)), np.eye(3))


def test_view_norms_bound_the_measured_gradient():
    rng = np.random.default_rng(5)
    rnn = nn.RNN(2, 6, dtype=F64, rng=rng)
    x = rng.normal(size=(4, 12, 2))
    view = jacobian_view(rnn, x, lambda outputs, h_last: (h_last**2).sum())
    assert view.product[-1] == pytest.approx(1.0)  # ∂h_T/∂h_T = I
    assert (view.gradient <= view.bound * (1 + 1e-12)).all(), (view.gradient, view.bound)
    assert (view.step <= view.sigma_max_V * (1 + 1e-12)).all()
    assert view.sigma_max_V == pytest.approx(np.linalg.svd(rnn.cells[0].V.numpy(), compute_uv=False)[0])
    # the products shrink, roughly, as the product of the step norms allows
    assert view.product[0] <= np.prod(view.step[1:]) * (1 + 1e-9)


def test_orthogonal_v_has_unit_singular_values():
    V = nn.RNNCell(1, 8, init="orthogonal", dtype=F64).V.numpy()
    assert spectral_norm(V) == pytest.approx(1.0)
    J = step_jacobians(np.zeros((1, 1, 8)), V)  # h = 0: tanh' = 1, so J = Vᵀ exactly
    assert spectral_norm(J)[0, 0] == pytest.approx(1.0)
