r"""The Jacobian view of BPTT: why ∂L/∂h_t vanishes (or explodes), one matrix per step.

With h_t = tanh(x_t W + h_{t-1} V + b) in row-vector form, element i of h_t is
tanh(Σ_j h_{t-1}[j] V[j, i] + …), so the step Jacobian — the matrix that maps a small change of
h_{t-1} (a column vector) to the change of h_t — is::

    J_t = ∂h_t/∂h_{t-1} = diag(1 − h_t²) Vᵀ                 J_t[i, j] = (1 − h_t[i]²) V[j, i]

Over k steps the chain rule multiplies them::

    ∂h_T/∂h_{T−k} = J_T J_{T−1} ⋯ J_{T−k+1}                  (k = 0: the identity)

and a gradient (a row vector, like our states) travels back as
``∂L/∂h_{T−k} = ∂L/∂h_T · ∂h_T/∂h_{T−k}`` when the loss reads only the last state. Hence
‖∂L/∂h_{T−k}‖ ≤ ‖∂L/∂h_T‖ · ‖∂h_T/∂h_{T−k}‖₂ ≤ ‖∂L/∂h_T‖ · Π ‖J_t‖₂, and ‖J_t‖₂ ≤ σ_max(V)
because every 1 − h² ≤ 1. If the largest singular value of V is below 1, the gradient must
vanish geometrically (Pascanu et al., 2013); orthogonal or identity V start at σ = 1, so only
the tanh factors shrink it.

Everything here works on host NumPy arrays of the forward states (from
:func:`tinygrad_rnn.bptt.flow.state_gradients`); no padding (every sequence has length T).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .flow import flow_from_grads, state_gradients


def step_jacobians(states: np.ndarray, V: np.ndarray) -> np.ndarray:
    """J_t = ∂h_t/∂h_{t−1} = diag(1 − h_t²) Vᵀ for every sequence and step.

    ``states`` (B, T, H) holds h_1..h_T, ``V`` (H, H). Returns (B, T, H, H); entry [b, t − 1]
    is J_t of sequence b (J_1 = ∂h_1/∂h_0).
    """
    states = np.asarray(states, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    if states.ndim != 3 or V.shape != (states.shape[2], states.shape[2]):
        raise ValueError(f"step_jacobians: states of shape {states.shape} (want (B, T, H)) "
                         f"and V of shape {V.shape} (want (H, H)) do not fit")
    return (1.0 - states ** 2)[..., :, None] * V.T            # row i scaled by 1 − h_t[i]²


def jacobian_product(jacobians: np.ndarray, k: int) -> np.ndarray:
    """∂h_T/∂h_{T−k} = J_T J_{T−1} ⋯ J_{T−k+1} for every sequence: (B, H, H). k = 0 gives I."""
    B, T, H, _ = jacobians.shape
    if not 0 <= k <= T:
        raise ValueError(f"k must be in [0, {T}] for T = {T} steps, got {k}")
    product = np.broadcast_to(np.eye(H), (B, H, H)).copy()
    for t in range(T - 1, T - 1 - k, -1):                     # multiply J_{t+1} on the right
        product = product @ jacobians[:, t]
    return product


def backpropagate_last(jacobians: np.ndarray, grad_last: np.ndarray) -> np.ndarray:
    """∂L/∂h_t for t = 1..T from ∂L/∂h_T alone, by the Jacobians: (B, T, H).

    g_T = ``grad_last`` (B, H); g_{t−1} = g_t J_t (a row vector times the Jacobian). Equal to
    autograd's state gradients when the loss depends on the last state only.
    """
    B, T, H, _ = jacobians.shape
    grads = np.zeros((B, T, H))
    g = np.asarray(grad_last, dtype=np.float64)
    for t in range(T - 1, -1, -1):
        grads[:, t] = g
        g = np.einsum("bi,bij->bj", g, jacobians[:, t])     # g_{t−1} = g_t J_t
    return grads


def spectral_norm(matrices: np.ndarray) -> np.ndarray:
    """‖M‖₂ = the largest singular value, over the last two axes."""
    return np.linalg.norm(matrices, ord=2, axis=(-2, -1))


class JacobianView(NamedTuple):
    """Per step t = 1..T (index t − 1), batch means, next to each other."""
    gradient: np.ndarray        # ‖∂L/∂h_t‖ measured by autograd
    product: np.ndarray         # ‖∂h_T/∂h_t‖₂, spectral norm of the product of Jacobians
    step: np.ndarray            # ‖J_t‖₂ = ‖diag(1 − h_t²) Vᵀ‖₂
    bound: np.ndarray           # ‖∂L/∂h_T‖ · ‖∂h_T/∂h_t‖₂ ≥ ‖∂L/∂h_t‖ (last-state losses)
    sigma_max_V: float          # the largest singular value of V


def jacobian_view(rnn, x, loss_fn, max_sequences: int = 16) -> JacobianView:
    """Measured ‖∂L/∂h_t‖ beside the spectral norms of the step Jacobians and their products.

    Uses the first ``max_sequences`` sequences of ``x`` (an SVD per sequence and step costs
    time). ``loss_fn(outputs, h_last)`` as in :func:`~tinygrad_rnn.bptt.flow.gradient_flow`.
    The bound column holds only when the loss reads the last state alone; losses on every
    output add a direct term at each step.
    """
    x = x[:max_sequences]
    result = state_gradients(rnn, x, None, loss_fn)
    V = rnn.cells[0].V.numpy()
    J = step_jacobians(result.states, V)
    B, T, H = result.states.shape
    product_norms = np.zeros((B, T))
    product = np.broadcast_to(np.eye(H), (B, H, H)).copy()
    for t in range(T - 1, -1, -1):
        product_norms[:, t] = spectral_norm(product)         # ‖∂h_T/∂h_{t+1}‖ at index t
        product = product @ J[:, t]
    grad_T = np.linalg.norm(result.grads[:, -1], axis=-1)    # (B,)
    return JacobianView(
        gradient=flow_from_grads(result.grads),
        product=product_norms.mean(axis=0),
        step=spectral_norm(J).mean(axis=0),
        bound=(grad_T[:, None] * product_norms).mean(axis=0),
        sigma_max_V=float(spectral_norm(V.astype(np.float64))),
    )
