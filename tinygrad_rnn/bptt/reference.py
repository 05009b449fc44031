r"""Backpropagation through time by hand, in plain NumPy — the yardstick for the autograd tape.

Three cells: the chapter's vanilla RNN (docs/chapter.md) (:func:`rnn_bptt`), then the gated cells of
``nn.LSTM`` (:func:`lstm_bptt`) and ``nn.GRU`` (:func:`gru_bptt`), each also in a vectorised
form for the benchmark (``*_forward_vectorised``, ``*_bptt_vectorised``) that the tests hold
against the step-by-step one.

The vanilla RNN of the chapter, row-vector convention (x_t is (B, E), h_t is (B, H))::

    a_t = x_t W + h_{t-1} V + b            W (E, H), V (H, H), b (H,)
    h_t = tanh(a_t)                         t = 1..T, h_0 given (zeros by default)

The loss L depends on the outputs h_1..h_T (and maybe on h_T again as "the last state"). Two
gradients reach h_t, and the notation keeps them apart (as docs/bptt.md and the tools do):

* ∂L/∂h_t|direct — through the loss's own reading of h_t only (``d_outputs[:, t]``; plus
  ``d_h_last`` at t = T);
* dh_t = ∂L/∂h_t — the *total* gradient, the one autograd leaves on h_t and the one
  ``bptt flow`` measures: the direct part plus everything that flows back from the later steps.

δ_t is ∂L/∂a_t. Because h_t feeds both the loss and the next step, a_{t+1} = … + h_t V + …::

    dh_t = ∂L/∂h_t|direct + δ_{t+1} Vᵀ      (δ_{T+1} = 0)
    δ_t  = dh_t ⊙ (1 − h_t²)                 (tanh'(a) = 1 − tanh(a)²)

    dW  = Σ_t x_tᵀ δ_t       dV = Σ_t h_{t−1}ᵀ δ_t       db = Σ_t Σ_batch δ_t
    dx_t = δ_t Wᵀ            dh_0 = δ_1 Vᵀ

That is the whole of BPTT: one backward sweep t = T, …, 1 carrying δ_{t+1} Vᵀ to the step before.

**Lengths** (padding, as ``nn.RNN`` treats it): with m_t = 1 where t ≤ len_b and 0 after,
h_t = m_t ⊙ tanh(a_t) + (1 − m_t) ⊙ h_{t−1} (padded steps carry the state) and the output is
m_t ⊙ h_t. Then, with g_t the gradient carried into h_t from the steps after it::

    dh_t = g_t + m_t ⊙ ∂L/∂h_t|direct
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


def _d_outputs(d_outputs, B: int, T: int, H: int) -> np.ndarray:
    """∂L/∂outputs as float64, checked to be (B, T, H)."""
    d_outputs = np.asarray(d_outputs, dtype=np.float64)
    if d_outputs.shape != (B, T, H):
        raise ValueError(f"d_outputs of shape {d_outputs.shape}, want {(B, T, H)}")
    return d_outputs


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
    d_outputs = _d_outputs(d_outputs, B, T, H)
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
        dh_t = g + m[t] * d_outputs[:, t]                 # dh_t = ∂L/∂h_t|direct + δ_{t+1} Vᵀ
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


# ==== the gated cells: LSTM and GRU ===================================================================
#
# Notation of nn/cells.py. The total gradient reaching the state at t is written dh_t (and dc_t
# for the LSTM's cell state); δ_t = ∂L/∂a_t for the pre-activations a_t, gate by gate. With
# padding, m_t = 1 at true steps: the new state is taken where m_t = 1, the old one carried over
# where m_t = 0, so the carried part of the gradient skips the step, exactly as for the vanilla
# cell above. The weight gradients are again sums over time of (input)ᵀ δ_t.

def _sigmoid(a):
    """σ(a) = (1 + tanh(a / 2)) / 2: the same function as 1 / (1 + e^{−a}), without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class LSTMGradients(NamedTuple):
    """Gradients of L from :func:`lstm_bptt`; all NumPy float64 arrays."""
    dW: np.ndarray   # (E, 4H)
    dV: np.ndarray   # (H, 4H)
    db: np.ndarray   # (4H,)
    dh0: np.ndarray  # (B, H)
    dc0: np.ndarray  # (B, H)
    dx: np.ndarray   # (B, T, E)
    dh: np.ndarray   # (B, T, H): dh_t, the total gradient reaching h_t
    dc: np.ndarray   # (B, T, H): dc_t, the total gradient reaching c_t (through h_t and later steps)


def lstm_bptt(x, W, V, b, d_outputs, h0=None, c0=None, lengths=None, d_h_last=None, d_c_last=None):
    r"""The LSTM forward, then BPTT by hand, one step at a time. Returns :class:`LSTMGradients`.

    Forward (blocks i, f, g, o of a_t = x_t W + h_{t−1} V + b)::

        i = σ(a^i), f = σ(a^f), g = tanh(a^g), o = σ(a^o)
        c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

    Backward, t = T, …, 1, with dh_t = ∂L/∂h_t|direct + (carried from t + 1), the total gradient
    reaching h_t, and dc_t carried from t + 1
    (d_h_last and d_c_last at t = T)::

        dc_t += dh_t ⊙ o ⊙ (1 − tanh²(c_t))          h_t = o ⊙ tanh(c_t) also depends on c_t
        δ^o = dh_t ⊙ tanh(c_t) ⊙ o (1 − o)
        δ^i = dc_t ⊙ g ⊙ i (1 − i)       δ^f = dc_t ⊙ c_{t−1} ⊙ f (1 − f)
        δ^g = dc_t ⊙ i ⊙ (1 − g²)        δ_t = [δ^i δ^f δ^g δ^o]   (B, 4H)
        dW += x_tᵀ δ_t    dV += h_{t−1}ᵀ δ_t    db += Σ_batch δ_t    dx_t = δ_t Wᵀ
        dh_{t−1} = δ_t Vᵀ (+ ∂L/∂h_{t−1}|direct)    dc_{t−1} = dc_t ⊙ f  (∂c_t/∂c_{t−1} = diag(f))
    """
    x, W, V, b = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b))
    B, T, E = x.shape
    H = V.shape[0]
    d_outputs = _d_outputs(d_outputs, B, T, H)
    m = _step_masks(lengths, B, T)

    hs, cs = np.zeros((T + 1, B, H)), np.zeros((T + 1, B, H))   # hs[t] = h_t, hs[0] = h_0
    if h0 is not None:
        hs[0] = h0
    if c0 is not None:
        cs[0] = c0
    gates, tanh_c = [], []                                      # i, f, g, o and tanh(c̃_t) per step
    for t in range(T):
        a = x[:, t] @ W + hs[t] @ V + b
        i, f, g, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sigmoid(a[:, 3 * H:])
        c_new = f * cs[t] + i * g
        gates.append((i, f, g, o))
        tanh_c.append(np.tanh(c_new))
        hs[t + 1] = m[t] * (o * tanh_c[t]) + (1 - m[t]) * hs[t]
        cs[t + 1] = m[t] * c_new + (1 - m[t]) * cs[t]

    dW, dV, db = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b)
    dx, dh, dc = np.zeros_like(x), np.zeros((B, T, H)), np.zeros((B, T, H))
    gh = np.zeros((B, H)) if d_h_last is None else np.asarray(d_h_last, dtype=np.float64).copy()
    gc = np.zeros((B, H)) if d_c_last is None else np.asarray(d_c_last, dtype=np.float64).copy()
    for t in range(T - 1, -1, -1):
        i, f, g, o = gates[t]
        dh_t = gh + m[t] * d_outputs[:, t]
        dh_new = m[t] * dh_t                                    # through the new state only
        dc_new = m[t] * gc + dh_new * o * (1 - tanh_c[t] ** 2)
        dh[:, t], dc[:, t] = dh_t, dc_new + (1 - m[t]) * gc
        delta = np.concatenate([dc_new * g * i * (1 - i),       # δ^i
                                dc_new * cs[t] * f * (1 - f),   # δ^f
                                dc_new * i * (1 - g ** 2),      # δ^g
                                dh_new * tanh_c[t] * o * (1 - o)], axis=1)   # δ^o
        dW += x[:, t].T @ delta
        dV += hs[t].T @ delta
        db += delta.sum(axis=0)
        dx[:, t] = delta @ W.T
        gh = delta @ V.T + (1 - m[t]) * dh_t
        gc = dc_new * f + (1 - m[t]) * gc
    return LSTMGradients(dW=dW, dV=dV, db=db, dh0=gh, dc0=gc, dx=dx, dh=dh, dc=dc)


class GRUGradients(NamedTuple):
    """Gradients of L from :func:`gru_bptt`; all NumPy float64 arrays."""
    dW: np.ndarray    # (E, 3H)
    dV: np.ndarray    # (H, 3H)
    db: np.ndarray    # (3H,)
    db_hn: np.ndarray  # (H,)
    dh0: np.ndarray   # (B, H)
    dx: np.ndarray    # (B, T, E)
    dh: np.ndarray    # (B, T, H): dh_t, the total gradient reaching h_t


def gru_bptt(x, W, V, b, b_hn, d_outputs, h0=None, lengths=None, d_h_last=None) -> GRUGradients:
    r"""The GRU forward, then BPTT by hand, one step at a time. Returns :class:`GRUGradients`.

    Forward (blocks r, z, n of xw_t = x_t W + b and of hv_t = h_{t−1} V)::

        r = σ(xw^r + hv^r),  z = σ(xw^z + hv^z),  n = tanh(xw^n + r ⊙ (hv^n + b_hn))
        h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

    Backward, t = T, …, 1, with dh_t the total gradient reaching h_t::

        δ^n = dh_t ⊙ (1 − z) ⊙ (1 − n²)                    (∂L/∂xw^n)
        δ^r = δ^n ⊙ (hv^n + b_hn) ⊙ r (1 − r)     δ^z = dh_t ⊙ (h_{t−1} − n) ⊙ z (1 − z)
        δx_t = [δ^r δ^z δ^n]         dW += x_tᵀ δx_t       db += Σ_batch δx_t    dx_t = δx_t Wᵀ
        δh_t = [δ^r δ^z δ^n ⊙ r]     dV += h_{t−1}ᵀ δh_t   db_hn += Σ_batch δ^n ⊙ r
        dh_{t−1} = δh_t Vᵀ + dh_t ⊙ z (+ ∂L/∂h_{t−1}|direct)     (the carry path z ⊙ h_{t−1})
    """
    x, W, V, b, b_hn = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b, b_hn))
    B, T, E = x.shape
    H = V.shape[0]
    d_outputs = _d_outputs(d_outputs, B, T, H)
    m = _step_masks(lengths, B, T)

    hs = np.zeros((T + 1, B, H))
    if h0 is not None:
        hs[0] = h0
    saved = []                                                  # r, z, n, hv^n + b_hn per step
    for t in range(T):
        xw, hv = x[:, t] @ W + b, hs[t] @ V
        r = _sigmoid(xw[:, :H] + hv[:, :H])
        z = _sigmoid(xw[:, H:2 * H] + hv[:, H:2 * H])
        hn = hv[:, 2 * H:] + b_hn
        n = np.tanh(xw[:, 2 * H:] + r * hn)
        saved.append((r, z, n, hn))
        hs[t + 1] = m[t] * ((1 - z) * n + z * hs[t]) + (1 - m[t]) * hs[t]

    dW, dV, db, db_hn = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b), np.zeros_like(b_hn)
    dx, dh = np.zeros_like(x), np.zeros((B, T, H))
    gh = np.zeros((B, H)) if d_h_last is None else np.asarray(d_h_last, dtype=np.float64).copy()
    for t in range(T - 1, -1, -1):
        r, z, n, hn = saved[t]
        dh_t = gh + m[t] * d_outputs[:, t]
        dh[:, t] = dh_t
        dh_new = m[t] * dh_t
        d_n = dh_new * (1 - z) * (1 - n ** 2)                   # δ^n
        d_r = d_n * hn * r * (1 - r)                            # δ^r
        d_z = dh_new * (hs[t] - n) * z * (1 - z)                # δ^z
        delta_x = np.concatenate([d_r, d_z, d_n], axis=1)
        delta_h = np.concatenate([d_r, d_z, d_n * r], axis=1)
        dW += x[:, t].T @ delta_x
        db += delta_x.sum(axis=0)
        dx[:, t] = delta_x @ W.T
        dV += hs[t].T @ delta_h
        db_hn += (d_n * r).sum(axis=0)
        gh = delta_h @ V.T + dh_new * z + (1 - m[t]) * dh_t
    return GRUGradients(dW=dW, dV=dV, db=db, db_hn=db_hn, dh0=gh, dx=dx, dh=dh)


# ---- the gated cells, vectorised: a loss on the last state, weight gradients one product each -------

def _sigmoid_(xp, a):
    """σ(a) in place, as (1 + tanh(a / 2)) / 2."""
    a *= 0.5
    xp.tanh(a, out=a)
    a += 1
    a *= 0.5


def lstm_forward_vectorised(xp, x, W, V, b):
    """The LSTM from zero state over all T steps → (hs, cs, gates, tanh_c), time-major:
    hs, cs (T + 1, B, H) with hs[t] = h_t; gates (T, B, 4H) = [i f g o]; tanh_c (T, B, H)."""
    B, T, _ = x.shape
    H = V.shape[0]
    A = x @ W                                      # (B, T, 4H): every step's input term at once
    A += b
    hs, cs = xp.zeros((T + 1, B, H), dtype=x.dtype), xp.zeros((T + 1, B, H), dtype=x.dtype)
    gates = xp.empty((T, B, 4 * H), dtype=x.dtype)
    tanh_c = xp.empty((T, B, H), dtype=x.dtype)
    for t in range(T):
        a = gates[t]
        xp.matmul(hs[t], V, out=a)
        a += A[:, t]
        _sigmoid_(xp, a[:, :2 * H])                # i, f
        xp.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])   # g
        _sigmoid_(xp, a[:, 3 * H:])                # o
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = cs[t + 1]
        xp.multiply(f, cs[t], out=c)               # c_t = f ⊙ c_{t−1} + i ⊙ g
        c += i * g
        xp.tanh(c, out=tanh_c[t])
        xp.multiply(o, tanh_c[t], out=hs[t + 1])   # h_t = o ⊙ tanh(c_t)
    return hs, cs, gates, tanh_c


def lstm_bptt_vectorised(xp, x, V, hs, cs, gates, tanh_c, d_h_last):
    """dW, dV, db, dh0, dc0 for a loss on h_T only: :func:`lstm_bptt`'s sweep keeping every δ_t
    in Δ (T, B, 4H), then dW = Xᵀ Δ, dV = H_prevᵀ Δ, db = Σ Δ, one product (or sum) each."""
    B, T, E = x.shape
    H = V.shape[0]
    delta = xp.empty((T, B, 4 * H), dtype=x.dtype)
    VT = xp.ascontiguousarray(V.T)
    dh, dc = d_h_last, xp.zeros_like(d_h_last)
    for t in range(T - 1, -1, -1):
        a, tc = gates[t], tanh_c[t]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        dc = dc + dh * o * (1 - tc * tc)
        d = delta[t]
        xp.multiply(dc * g, i * (1 - i), out=d[:, :H])                  # δ^i
        xp.multiply(dc * cs[t], f * (1 - f), out=d[:, H:2 * H])         # δ^f
        xp.multiply(dc * i, 1 - g * g, out=d[:, 2 * H:3 * H])           # δ^g
        xp.multiply(dh * tc, o * (1 - o), out=d[:, 3 * H:])             # δ^o
        dh = d @ VT
        dc = dc * f
    flat = delta.reshape(T * B, 4 * H)
    dW = x.transpose(1, 0, 2).reshape(T * B, E).T @ flat
    dV = hs[:T].reshape(T * B, H).T @ flat
    return dW, dV, flat.sum(axis=0), dh, dc


def gru_forward_vectorised(xp, x, W, V, b, b_hn):
    """The GRU from zero state over all T steps → (hs, gates, hn), time-major: hs (T + 1, B, H);
    gates (T, B, 3H) = [r z n]; hn (T, B, H) = h_{t−1} V_n + b_hn."""
    B, T, _ = x.shape
    H = V.shape[0]
    A = x @ W
    A += b
    hs = xp.zeros((T + 1, B, H), dtype=x.dtype)
    gates = xp.empty((T, B, 3 * H), dtype=x.dtype)
    hn = xp.empty((T, B, H), dtype=x.dtype)
    for t in range(T):
        hv = hs[t] @ V
        a = gates[t]
        xp.add(A[:, t, :2 * H], hv[:, :2 * H], out=a[:, :2 * H])
        _sigmoid_(xp, a[:, :2 * H])                                     # r, z
        xp.add(hv[:, 2 * H:], b_hn, out=hn[t])
        n = a[:, 2 * H:]
        xp.multiply(a[:, :H], hn[t], out=n)                             # n = tanh(xw^n + r ⊙ hn)
        n += A[:, t, 2 * H:]
        xp.tanh(n, out=n)
        z = a[:, H:2 * H]
        h = hs[t + 1]
        xp.subtract(hs[t], n, out=h)                                    # h_t = n + z ⊙ (h_{t−1} − n)
        h *= z
        h += n
    return hs, gates, hn


def gru_bptt_vectorised(xp, x, V, hs, gates, hn, d_h_last):
    """dW, dV, db, db_hn, dh0 for a loss on h_T only: :func:`gru_bptt`'s sweep keeping δx_t and
    δh_t in (T, B, 3H) buffers, then dW = Xᵀ Δx, dV = H_prevᵀ Δh, one product each."""
    B, T, E = x.shape
    H = V.shape[0]
    dxw = xp.empty((T, B, 3 * H), dtype=x.dtype)
    dhv = xp.empty((T, B, 3 * H), dtype=x.dtype)
    VT = xp.ascontiguousarray(V.T)
    dh = d_h_last
    for t in range(T - 1, -1, -1):
        a = gates[t]
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        dx_t, dh_t = dxw[t], dhv[t]
        xp.multiply(dh * (1 - z), 1 - n * n, out=dx_t[:, 2 * H:])              # δ^n
        xp.multiply(dx_t[:, 2 * H:] * hn[t], r * (1 - r), out=dx_t[:, :H])      # δ^r
        xp.multiply(dh * (hs[t] - n), z * (1 - z), out=dx_t[:, H:2 * H])       # δ^z
        dh_t[:, :2 * H] = dx_t[:, :2 * H]
        xp.multiply(dx_t[:, 2 * H:], r, out=dh_t[:, 2 * H:])                    # δ^n ⊙ r
        dh = dh_t @ VT + dh * z
    flat_x, flat_h = dxw.reshape(T * B, 3 * H), dhv.reshape(T * B, 3 * H)
    dW = x.transpose(1, 0, 2).reshape(T * B, E).T @ flat_x
    dV = hs[:T].reshape(T * B, H).T @ flat_h
    return dW, dV, flat_x.sum(axis=0), flat_h[:, 2 * H:].sum(axis=0), dh
