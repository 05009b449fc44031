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
the tanh factors shrink it. That bound is a sufficient condition, not the rate: ‖V^k‖^{1/k} tends
to V's spectral radius ρ(V) (its largest |eigenvalue|), which for a random V is well below σ_max(V)
(docs/bptt.md, section 2: 0.598 against 1.049 for the seed-0 model of ``bptt flow``).

**The gated cells** (:mod:`tinygrad_rnn.nn.cells`; σ' = σ(1 − σ), blocks of V by gate)::

    GRU   ∂h_t/∂h_{t−1} = diag(z) + diag((1 − z)(1 − n²)) [diag(r) V_nᵀ + diag(a r(1 − r)) V_rᵀ]
                          + diag((h_{t−1} − n) z(1 − z)) V_zᵀ          a = h_{t−1} V_n + b_hn

    LSTM  ∂c_t/∂c_{t−1} = diag(f_t)                                     the cell-state path
          ∂c_t/∂h_{t−1} = diag(c_{t−1} f(1 − f)) V_fᵀ + diag(g i(1 − i)) V_iᵀ + diag(i(1 − g²)) V_gᵀ
          ∂h_t/∂h_{t−1} = diag(tanh(c_t) o(1 − o)) V_oᵀ + diag(o(1 − tanh²c_t)) ∂c_t/∂h_{t−1}
          ∂h_t/∂c_{t−1} = diag(o(1 − tanh²c_t) f)

The GRU's diag(z) term and the LSTM's diag(f_t) carry the gradient back *without* a factor Vᵀ or
tanh': where z ≈ 1 (f ≈ 1) it passes unchanged — the LSTM's "constant error carousel". The LSTM
state is the pair s_t = (h_t, c_t), so its step Jacobian is the 2H × 2H block matrix
[[∂h_t/∂h_{t−1}, ∂h_t/∂c_{t−1}], [∂c_t/∂h_{t−1}, ∂c_t/∂c_{t−1}]] (state order [h ; c]);
:func:`state_jacobians` gives it for every cell, and the products and back-propagation below
work on it alike.

Everything here works on host NumPy arrays of the forward states (from
:func:`tinygrad_rnn.bptt.flow.state_gradients`); no padding (every sequence has length T).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..nn import GRUCell, LSTMCell, RNNCell
from .flow import flow_from_grads, state_gradients
from .reference import gru_gates, lstm_gates


def step_jacobians(states: np.ndarray, V: np.ndarray) -> np.ndarray:
    """J_t = ∂h_t/∂h_{t−1} = diag(1 − h_t²) Vᵀ for every sequence and step.

    ``states`` (B, T, H) holds h_1..h_T, ``V`` (H, H). Returns (B, T, H, H); entry [b, t − 1]
    is J_t of sequence b (J_1 = ∂h_1/∂h_0).
    """
    states = np.asarray(states, dtype=np.float64)
    V = np.asarray(V, dtype=np.float64)
    if states.ndim != 3 or V.shape != (states.shape[2], states.shape[2]):
        raise ValueError(
            f"step_jacobians: states of shape {states.shape} (want (B, T, H)) "
            f"and V of shape {V.shape} (want (H, H)) do not fit"
        )
    return (1.0 - states**2)[..., :, None] * V.T  # row i scaled by 1 − h_t[i]²


def _host(tensor) -> np.ndarray:
    return np.asarray(tensor.numpy(), dtype=np.float64)


def _previous(values: np.ndarray) -> np.ndarray:
    """(B, T, H) values at t = 1..T → the values at t − 1 = 0..T − 1 (the zero state at t = 0)."""
    return np.concatenate([np.zeros_like(values[:, :1]), values[:, :-1]], axis=1)


def _diag(v: np.ndarray) -> np.ndarray:
    """(…, H) → (…, H, H) diagonal matrices."""
    return v[..., :, None] * np.eye(v.shape[-1])


def _rnn_jacobian(cell, xw, h, c):
    return step_jacobians(h, _host(cell.V))


def _gru_jacobian(cell, xw, h, c):
    """∂h_t/∂h_{t−1} of the GRU (module docstring), (B, T, H, H)."""
    V, H = _host(cell.V), cell.hidden_size
    h_prev = _previous(h)
    r, z, n, a = gru_gates(xw, h_prev @ V, _host(cell.b_hn))  # the forward of bptt/reference.py
    V_r, V_z, V_n = V[:, :H].T, V[:, H : 2 * H].T, V[:, 2 * H :].T
    dn = (1 - z) * (1 - n**2)
    return (
        _diag(z)
        + dn[..., None] * (r[..., None] * V_n + (a * r * (1 - r))[..., None] * V_r)
        + ((h_prev - n) * z * (1 - z))[..., None] * V_z
    )


def _lstm_jacobian(cell, xw, h, c):
    """The LSTM's 2H × 2H state Jacobian ∂(h_t, c_t)/∂(h_{t−1}, c_{t−1}) (module docstring)."""
    V, H = _host(cell.V), cell.hidden_size
    h_prev, c_prev = _previous(h), _previous(c)
    i, f, g, o = lstm_gates(xw + h_prev @ V)  # the forward of bptt/reference.py
    V_i, V_f, V_g, V_o = (V[:, k * H : (k + 1) * H].T for k in range(4))
    dc_dh = (
        (c_prev * f * (1 - f))[..., None] * V_f
        + (g * i * (1 - i))[..., None] * V_i
        + (i * (1 - g**2))[..., None] * V_g
    )
    tc = np.tanh(c)
    through_c = o * (1 - tc**2)  # ∂h_t/∂c_t, elementwise
    dh_dh = (tc * o * (1 - o))[..., None] * V_o + through_c[..., None] * dc_dh
    return np.concatenate(
        [np.concatenate([dh_dh, _diag(through_c * f)], axis=-1), np.concatenate([dc_dh, _diag(f)], axis=-1)],
        axis=-2,
    )


# One NumPy step Jacobian per cell type: (cell, xw (B, T, G·H), h (B, T, H), c or None) → (B, T, S, S).
STEP_JACOBIANS = {RNNCell: _rnn_jacobian, GRUCell: _gru_jacobian, LSTMCell: _lstm_jacobian}


def state_jacobians(cell, x, h, c=None) -> np.ndarray:
    """The step Jacobians J_t = ∂s_t/∂s_{t−1} of ``cell`` over a sequence from the zero state.

    ``x`` (B, T, E) the inputs, ``h`` (B, T, H) the states h_1..h_T the cell produced from them
    (``c`` (B, T, H) the LSTM's cell states). The state s is h (rnn, gru: S = H) or [h ; c]
    (LSTM: S = 2H). Returns (B, T, S, S); entry [b, t − 1] is J_t of sequence b.
    """
    jacobian = STEP_JACOBIANS.get(type(cell))
    if jacobian is None:
        raise TypeError(
            f"no step Jacobian for {type(cell).__name__} (known: "
            f"{', '.join(k.__name__ for k in STEP_JACOBIANS)})"
        )
    if jacobian is _lstm_jacobian and c is None:
        raise ValueError("the LSTM's Jacobian needs its cell states c (B, T, H) too")
    x = np.asarray(x, dtype=np.float64)
    xw = x @ _host(cell.W) + _host(cell.b)  # x_t W + b, every gate
    return jacobian(
        cell, xw, np.asarray(h, dtype=np.float64), None if c is None else np.asarray(c, np.float64)
    )


def jacobian_product(jacobians: np.ndarray, k: int) -> np.ndarray:
    """∂h_T/∂h_{T−k} = J_T J_{T−1} ⋯ J_{T−k+1} for every sequence: (B, H, H). k = 0 gives I."""
    B, T, H, _ = jacobians.shape
    if not 0 <= k <= T:
        raise ValueError(f"k must be in [0, {T}] for T = {T} steps, got {k}")
    product = np.broadcast_to(np.eye(H), (B, H, H)).copy()
    for t in range(T - 1, T - 1 - k, -1):  # multiply J_{t+1} on the right
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
        g = np.einsum("bi,bij->bj", g, jacobians[:, t])  # g_{t−1} = g_t J_t
    return grads


def spectral_norm(matrices: np.ndarray) -> np.ndarray:
    """‖M‖₂ = the largest singular value, over the last two axes."""
    return np.linalg.norm(matrices, ord=2, axis=(-2, -1))


class JacobianView(NamedTuple):
    """Per step t = 1..T (index t − 1), batch means, next to each other."""

    gradient: np.ndarray  # ‖∂L/∂h_t‖ measured by autograd
    product: np.ndarray  # ‖∂s_T/∂s_t‖₂, spectral norm of the product of state Jacobians
    step: np.ndarray  # ‖∂h_t/∂h_{t−1}‖₂, the hidden path (vanilla: ‖diag(1 − h_t²) Vᵀ‖₂)
    bound: np.ndarray  # ‖∂L/∂h_T‖ · ‖∂s_T/∂s_t‖₂ ≥ ‖∂L/∂h_t‖ (last-state losses)
    sigma_max_V: float  # the largest singular value of V (gated cells: of all gates' V)
    cell_step: np.ndarray | None = None  # LSTM: ‖∂c_t/∂c_{t−1}‖₂ = ‖diag(f_t)‖₂ = max_i f_t[i]
    cell_path: np.ndarray | None = None  # LSTM: ‖∂c_T/∂c_t‖₂ along the cell path alone,
    #   ‖Π_{s>t} diag(f_s)‖₂ = max_i Π_{s>t} f_s[i]
    cell_gradient: np.ndarray | None = None  # LSTM: ‖∂L/∂c_t‖ measured by autograd


def jacobian_view(rnn, x, loss_fn, max_sequences: int = 16) -> JacobianView:
    """Measured ‖∂L/∂h_t‖ beside the spectral norms of the step Jacobians and their products.

    ``rnn`` a single-layer, one-direction ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``. Uses the first
    ``max_sequences`` sequences of ``x`` (an SVD per sequence and step costs time).
    ``loss_fn(outputs, h_last)`` as in :func:`~tinygrad_rnn.bptt.flow.gradient_flow`. The bound
    column holds only when the loss reads the last state alone; losses on every output add a
    direct term at each step. For the LSTM the cell-state path diag(f_t) — the constant error
    carousel — is shown beside the hidden path.
    """
    x = x[:max_sequences]
    result = state_gradients(rnn, x, None, loss_fn)
    cell = rnn.cells[0]
    x_host = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
    J = state_jacobians(cell, x_host, result.states, result.cells)
    B, T, H = result.states.shape
    S = J.shape[-1]
    product_norms = np.zeros((B, T))
    product = np.broadcast_to(np.eye(S), (B, S, S)).copy()
    for t in range(T - 1, -1, -1):
        product_norms[:, t] = spectral_norm(product)  # ‖∂s_T/∂s_{t+1}‖ at index t
        product = product @ J[:, t]
    grad_T = np.linalg.norm(result.grads[:, -1], axis=-1)  # (B,)
    view = dict(
        gradient=flow_from_grads(result.grads),
        product=product_norms.mean(axis=0),
        step=spectral_norm(J[..., :H, :H]).mean(axis=0),
        bound=(grad_T[:, None] * product_norms).mean(axis=0),
        sigma_max_V=float(spectral_norm(cell.V.numpy().astype(np.float64))),
    )
    if result.cell_grads is not None:  # the LSTM: diag(f_t) is J's c-c block
        f = np.diagonal(J[..., H:, H:], axis1=-2, axis2=-1)  # (B, T, H)
        later = np.concatenate([np.cumprod(f[:, :0:-1], axis=1)[:, ::-1], np.ones((B, 1, H))], axis=1)
        view.update(
            cell_step=f.max(axis=-1).mean(axis=0),
            cell_path=later.max(axis=-1).mean(axis=0),
            cell_gradient=flow_from_grads(result.cell_grads),
        )
    return JacobianView(**view)
