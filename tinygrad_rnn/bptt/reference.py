r"""Backpropagation through time by hand, in plain NumPy — the yardstick for the autograd tape.

The vanilla RNN of the tutorial, row-vector convention (x_t is (B, E), h_t is (B, H))::

    a_t = x_t W + h_{t-1} V + b            W (E, H), V (H, H), b (H,)
    h_t = tanh(a_t)                         t = 1..T, h_0 given (zeros by default)

The loss L depends on the outputs h_1..h_T (and maybe on h_T again as "the last state"). Write
∂L/∂h_t for the *direct* gradient (``d_outputs[:, t]``; plus ``d_h_last`` at t = T) and δ_t for
∂L/∂a_t. Because h_t feeds both the loss and the next step, the total gradient reaching h_t is
the direct part plus what flows back from a_{t+1} = … + h_t V + …::

    dh_t = ∂L/∂h_t + δ_{t+1} Vᵀ             (δ_{T+1} = 0)
    δ_t  = dh_t ⊙ (1 − h_t²)                 (tanh'(a) = 1 − tanh(a)²)

    dW  = Σ_t x_tᵀ δ_t       dV = Σ_t h_{t−1}ᵀ δ_t       db = Σ_t Σ_batch δ_t
    dx_t = δ_t Wᵀ            dh_0 = δ_1 Vᵀ

That is the whole of BPTT: one backward sweep t = T, …, 1 carrying δ_{t+1} Vᵀ to the step before.

**Lengths** (padding, as ``nn.RNN`` treats it): with m_t = 1 where t ≤ len_b and 0 after,
h_t = m_t ⊙ tanh(a_t) + (1 − m_t) ⊙ h_{t−1} (padded steps carry the state) and the output is
m_t ⊙ h_t. Then, with g_t the gradient carried into h_t from the steps after it::

    dh_t = g_t + m_t ⊙ ∂L/∂h_t
    δ_t  = m_t ⊙ dh_t ⊙ (1 − tanh(a_t)²)
    g_{t−1} = δ_t Vᵀ + (1 − m_t) ⊙ dh_t      (g_T = ∂L/∂h_last),  dh_0 = g_0

which reduces to the equations above when every m_t = 1.

**Two forms of the same sweep.** :func:`rnn_bptt` is the step-by-step form: it accumulates
dW, dV, db inside the loop, one step at a time, exactly as the equations read. Its sibling
:func:`rnn_bptt_vectorised` (after :func:`rnn_forward_vectorised`) is the fast form the benchmark
times: only δ_{t+1} Vᵀ has to run in a loop over t; every δ_t is kept, and each weight
gradient is ONE matrix product over all (t, batch) rows — dW = Xᵀ Δ, dV = H_prevᵀ Δ with X, H_prev,
Δ the (T·B, ·) stacks of x_t, h_{t−1}, δ_t. The tests hold one against the other.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class BPTTGradients(NamedTuple):
    """Gradients of L from :func:`rnn_bptt`; all NumPy float64 arrays."""
    dW: np.ndarray   # (E, H)
    dV: np.ndarray   # (H, H)
    db: np.ndarray   # (H,)
    dh0: np.ndarray  # (B, H)
    dx: np.ndarray   # (B, T, E)
    dh: np.ndarray   # (B, T, H): dh_t, the total gradient reaching state h_t


def _step_masks(lengths, B: int, T: int) -> np.ndarray:
    """(T, B, 1) array: m_t = 1 at true steps, 0 at padding."""
    if lengths is None:
        return np.ones((T, B, 1))
    lengths = np.asarray(lengths)
    if lengths.shape != (B,) or (lengths < 0).any() or (lengths > T).any():
        raise ValueError(f"lengths must have shape ({B},) with values in [0, {T}], got {lengths!r}")
    return (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)[:, :, None]


def rnn_forward(x, W, V, b, h0=None, lengths=None):
    """Run h_t = tanh(x_t W + h_{t-1} V + b) for t = 1..T.

    Returns ``(outputs, h_last)``: outputs (B, T, H) with zeros at padded steps, h_last (B, H)
    each sequence's state at its true last step.
    """
    x, W, V, b = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b))
    B, T, _ = x.shape
    h = np.zeros((B, W.shape[1])) if h0 is None else np.asarray(h0, dtype=np.float64)
    m = _step_masks(lengths, B, T)
    outputs = np.zeros((B, T, W.shape[1]))
    for t in range(T):
        h = m[t] * np.tanh(x[:, t] @ W + h @ V + b) + (1 - m[t]) * h
        outputs[:, t] = m[t] * h
    return outputs, h


def rnn_bptt(x, W, V, b, d_outputs, h0=None, lengths=None, d_h_last=None) -> BPTTGradients:
    """Forward, then backpropagate through time by hand (see the module docstring).

    ``d_outputs`` (B, T, H) is ∂L/∂outputs, ``d_h_last`` (B, H) optionally ∂L/∂h_last.
    Returns :class:`BPTTGradients` (dW, dV, db, dh0, dx, dh).
    """
    x, W, V, b = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b))
    B, T, E = x.shape
    H = W.shape[1]
    d_outputs = np.asarray(d_outputs, dtype=np.float64)
    if d_outputs.shape != (B, T, H):
        raise ValueError(f"d_outputs of shape {d_outputs.shape}, want {(B, T, H)}")
    m = _step_masks(lengths, B, T)

    # forward, keeping every state: hs[t] is h_t for t = 0..T (hs[0] = h_0)
    hs = np.zeros((T + 1, B, H))
    tanh_a = np.zeros((T, B, H))  # tanh(a_t): equals h_t at true steps
    if h0 is not None:
        hs[0] = h0
    for t in range(T):
        tanh_a[t] = np.tanh(x[:, t] @ W + hs[t] @ V + b)
        hs[t + 1] = m[t] * tanh_a[t] + (1 - m[t]) * hs[t]

    # backward through time: t = T, ..., 1
    dW, dV, db = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b)
    dx, dh = np.zeros_like(x), np.zeros((B, T, H))
    g = np.zeros((B, H)) if d_h_last is None else np.asarray(d_h_last, dtype=np.float64).copy()
    for t in range(T - 1, -1, -1):
        dh_t = g + m[t] * d_outputs[:, t]                 # dh_t = ∂L/∂h_t + δ_{t+1} Vᵀ
        dh[:, t] = dh_t
        delta = m[t] * dh_t * (1 - tanh_a[t] ** 2)        # δ_t = dh_t ⊙ (1 − h_t²)
        dW += x[:, t].T @ delta                           # dW += x_tᵀ δ_t
        dV += hs[t].T @ delta                             # dV += h_{t−1}ᵀ δ_t
        db += delta.sum(axis=0)                           # db += Σ δ_t
        dx[:, t] = delta @ W.T                            # dx_t = δ_t Wᵀ
        g = delta @ V.T + (1 - m[t]) * dh_t               # carried to h_{t−1}
    return BPTTGradients(dW=dW, dV=dV, db=db, dh0=g, dx=dx, dh=dh)


# ---- the vectorised form: the same sweep, weight gradients as one product each ----------------------

def rnn_forward_vectorised(xp, x, W, V, b, h0=None):
    """h_t = tanh(x_t W + h_{t-1} V + b) for all t, with ``xp`` (NumPy or CuPy) and no masking.

    Returns the states time-major, ``hs`` (T + 1, B, H) with ``hs[0] = h_0`` and ``hs[t] = h_t``:
    each h_t is one contiguous block. The input term of every step is one (B, T, E) @ (E, H)
    product; each step writes into the preallocated ``hs`` (no temporaries).
    """
    B, T, _ = x.shape
    H = V.shape[0]
    A = x @ W                                      # (B, T, H): all input projections, one matmul
    A += b
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = 0 if h0 is None else h0
    for t in range(T):
        h = hs[t + 1]
        xp.matmul(hs[t], V, out=h)                 # a_t = h_{t-1} V + (x_t W + b)
        h += A[:, t]
        xp.tanh(h, out=h)                          # h_t = tanh(a_t)
    return hs


def rnn_bptt_vectorised(xp, x, V, hs, d_h_last):
    """dW, dV, db, dh0 for a loss that reads the last state only (``d_h_last`` = ∂L/∂h_T).

    ``hs`` from :func:`rnn_forward_vectorised`. The loop carries δ_t back through time::

        δ_T = ∂L/∂h_T ⊙ (1 − h_T²),   δ_t = (δ_{t+1} Vᵀ) ⊙ (1 − h_t²)

    and keeps every δ_t in Δ (T, B, H); then dW = Σ_t x_tᵀ δ_t, dV = Σ_t h_{t−1}ᵀ δ_t and
    db = Σ_t Σ_batch δ_t are each ONE product (or sum) over all T·B rows, dh0 = δ_1 Vᵀ.
    """
    B, T, E = x.shape
    H = V.shape[0]
    delta = xp.empty((T, B, H), dtype=x.dtype)
    VT = xp.ascontiguousarray(V.T)                 # OpenBLAS: 15–25% faster than through the V.T view
    dh = d_h_last
    for t in range(T - 1, -1, -1):
        h, d = hs[t + 1], delta[t]
        xp.multiply(h, h, out=d)                   # δ_t = (1 − h_t²) ⊙ dh_t, without temporaries
        xp.subtract(1, d, out=d)
        d *= dh
        dh = d @ VT                                # dh_{t−1} = δ_t Vᵀ
    flat = delta.reshape(T * B, H)
    dW = x.transpose(1, 0, 2).reshape(T * B, E).T @ flat
    dV = hs[:T].reshape(T * B, H).T @ flat
    db = flat.sum(axis=0)
    return dW, dV, db, dh
