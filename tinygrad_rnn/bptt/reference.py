r"""Backpropagation through time by hand, in plain NumPy — the yardstick for the autograd tape.

Three cells: the chapter's vanilla RNN (docs/chapter.md) (:func:`rnn_bptt`), then the gated cells of
``nn.LSTM`` (:func:`lstm_bptt`) and ``nn.GRU`` (:func:`gru_bptt`), each with its forward pass
(:func:`rnn_forward`, :func:`lstm_forward`, :func:`gru_forward`).

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

**One forward per cell.** Each cell's step is written once here — :func:`rnn_step`,
:func:`lstm_gates` and :func:`gru_gates` — and the forward passes of the sweeps call them, as
do the step Jacobians of :mod:`tinygrad_rnn.bptt.jacobian`; :func:`sigmoid` is the one NumPy σ of
the package. The
sweeps are step by step, accumulating dW, dV, db inside the loop exactly as the equations read.
The benchmark's fast form of the same sweep (every δ_t kept, each weight gradient ONE product
over all (t, batch) rows) is ``benchmarks/numpy_bptt.py``; the tests hold it against these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class BPTTGradients(NamedTuple):
    """Gradients of L from :func:`rnn_bptt`; all NumPy float64 arrays."""

    dW: np.ndarray  # (E, H)
    dV: np.ndarray  # (H, H)
    db: np.ndarray  # (H,)
    dh0: np.ndarray  # (B, H)
    dx: np.ndarray  # (B, T, E)
    dh: np.ndarray  # (B, T, H): dh_t, the total gradient reaching state h_t


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


def sigmoid(a, *, out=None, xp=np):
    """σ(a) = (1 + tanh(a / 2)) / 2: the same function as 1 / (1 + e^{−a}), without overflow.

    ``out``: the array to write into (``out=a`` works in place, as the benchmark's sweeps do);
    ``xp``: NumPy or CuPy.
    """
    out = xp.multiply(a, 0.5, out=out)
    xp.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def rnn_step(x_t, h_prev, W, V, b):
    """One step of the vanilla cell: h_t = tanh(a_t), a_t = x_t W + h_{t−1} V + b."""
    return np.tanh(x_t @ W + h_prev @ V + b)


def _rnn_states(x, W, V, b, h0, m):
    """hs (T + 1, B, H) with hs[0] = h_0, and tanh(a_t) (T, B, H), padded steps carrying the state."""
    B, T, _ = x.shape
    hs = np.zeros((T + 1, B, W.shape[1]))
    tanh_a = np.zeros((T, B, W.shape[1]))  # tanh(a_t): equals h_t at true steps
    if h0 is not None:
        hs[0] = h0
    for t in range(T):
        tanh_a[t] = rnn_step(x[:, t], hs[t], W, V, b)
        hs[t + 1] = m[t] * tanh_a[t] + (1 - m[t]) * hs[t]
    return hs, tanh_a


def rnn_forward(x, W, V, b, h0=None, lengths=None):
    """Run h_t = tanh(x_t W + h_{t-1} V + b) for t = 1..T.

    Returns ``(outputs, h_last)``: outputs (B, T, H) with zeros at padded steps, h_last (B, H)
    each sequence's state at its true last step.
    """
    x, W, V, b = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b))
    B, T, _ = x.shape
    m = _step_masks(lengths, B, T)
    hs, _ = _rnn_states(x, W, V, b, None if h0 is None else np.asarray(h0, dtype=np.float64), m)
    return (m * hs[1:]).transpose(1, 0, 2), hs[T]


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

    hs, tanh_a = _rnn_states(x, W, V, b, h0, m)  # hs[t] is h_t for t = 0..T (hs[0] = h_0)

    # backward through time: t = T, ..., 1
    dW, dV, db = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b)
    dx, dh = np.zeros_like(x), np.zeros((B, T, H))
    g = np.zeros((B, H)) if d_h_last is None else np.asarray(d_h_last, dtype=np.float64).copy()
    for t in range(T - 1, -1, -1):
        dh_t = g + m[t] * d_outputs[:, t]  # dh_t = ∂L/∂h_t|direct + δ_{t+1} Vᵀ
        dh[:, t] = dh_t
        delta = m[t] * dh_t * (1 - tanh_a[t] ** 2)  # δ_t = dh_t ⊙ (1 − h_t²)
        dW += x[:, t].T @ delta  # dW += x_tᵀ δ_t
        dV += hs[t].T @ delta  # dV += h_{t−1}ᵀ δ_t
        db += delta.sum(axis=0)  # db += Σ δ_t
        dx[:, t] = delta @ W.T  # dx_t = δ_t Wᵀ
        g = delta @ V.T + (1 - m[t]) * dh_t  # carried to h_{t−1}
    return BPTTGradients(dW=dW, dV=dV, db=db, dh0=g, dx=dx, dh=dh)


# ==== the gated cells: LSTM and GRU ===================================================================
#
# Notation of nn/cells.py. The total gradient reaching the state at t is written dh_t (and dc_t
# for the LSTM's cell state); δ_t = ∂L/∂a_t for the pre-activations a_t, gate by gate. With
# padding, m_t = 1 at true steps: the new state is taken where m_t = 1, the old one carried over
# where m_t = 0, so the carried part of the gradient skips the step, exactly as for the vanilla
# cell above. The weight gradients are again sums over time of (input)ᵀ δ_t.


def lstm_gates(a):
    """The LSTM's gates from its pre-activations a = x_t W + h_{t−1} V + b (…, 4H), blocks i, f, g, o:
    i = σ(a^i), f = σ(a^f), g = tanh(a^g), o = σ(a^o). Any leading axes ((B,) or (B, T))."""
    i, f, g, o = np.split(a, 4, axis=-1)
    return sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)


def gru_gates(xw, hv, b_hn):
    """The GRU's gates from xw = x_t W + b and hv = h_{t−1} V (…, 3H), blocks r, z, n:
    r = σ(xw^r + hv^r), z = σ(xw^z + hv^z), n = tanh(xw^n + r ⊙ hn) with hn = hv^n + b_hn.
    Returns (r, z, n, hn). Any leading axes ((B,) or (B, T))."""
    x_r, x_z, x_n = np.split(xw, 3, axis=-1)
    h_r, h_z, h_n = np.split(hv, 3, axis=-1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    hn = h_n + b_hn
    return r, z, np.tanh(x_n + r * hn), hn


class LSTMGradients(NamedTuple):
    """Gradients of L from :func:`lstm_bptt`; all NumPy float64 arrays."""

    dW: np.ndarray  # (E, 4H)
    dV: np.ndarray  # (H, 4H)
    db: np.ndarray  # (4H,)
    dh0: np.ndarray  # (B, H)
    dc0: np.ndarray  # (B, H)
    dx: np.ndarray  # (B, T, E)
    dh: np.ndarray  # (B, T, H): dh_t, the total gradient reaching h_t
    dc: np.ndarray  # (B, T, H): dc_t, the total gradient reaching c_t (through h_t and later steps)


def _lstm_states(x, W, V, b, h0, c0, m):
    """The LSTM forward (:func:`lstm_bptt`'s docstring) keeping what the backward sweep reads:
    hs, cs (T + 1, B, H) with hs[t] = h_t, hs[0] = h_0; per step the gates (i, f, g, o) and tanh(c̃_t)."""
    B, T, _ = x.shape
    H = V.shape[0]
    hs, cs = np.zeros((T + 1, B, H)), np.zeros((T + 1, B, H))  # hs[t] = h_t, hs[0] = h_0
    if h0 is not None:
        hs[0] = h0
    if c0 is not None:
        cs[0] = c0
    gates, tanh_c = [], []  # i, f, g, o and tanh(c̃_t) per step
    for t in range(T):
        i, f, g, o = lstm_gates(x[:, t] @ W + hs[t] @ V + b)
        c_new = f * cs[t] + i * g
        gates.append((i, f, g, o))
        tanh_c.append(np.tanh(c_new))
        hs[t + 1] = m[t] * (o * tanh_c[t]) + (1 - m[t]) * hs[t]
        cs[t + 1] = m[t] * c_new + (1 - m[t]) * cs[t]
    return hs, cs, gates, tanh_c


def lstm_forward(x, W, V, b, h0=None, c0=None, lengths=None):
    """The LSTM over t = 1..T → (hs, cs), (T + 1, B, H) each: hs[t] = h_t, cs[t] = c_t, hs[0] = h_0."""
    x, W, V, b = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b))
    hs, cs, _, _ = _lstm_states(x, W, V, b, h0, c0, _step_masks(lengths, *x.shape[:2]))
    return hs, cs


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

    hs, cs, gates, tanh_c = _lstm_states(x, W, V, b, h0, c0, m)
    dW, dV, db = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b)
    dx, dh, dc = np.zeros_like(x), np.zeros((B, T, H)), np.zeros((B, T, H))
    gh = np.zeros((B, H)) if d_h_last is None else np.asarray(d_h_last, dtype=np.float64).copy()
    gc = np.zeros((B, H)) if d_c_last is None else np.asarray(d_c_last, dtype=np.float64).copy()
    for t in range(T - 1, -1, -1):
        i, f, g, o = gates[t]
        dh_t = gh + m[t] * d_outputs[:, t]
        dh_new = m[t] * dh_t  # through the new state only
        dc_new = m[t] * gc + dh_new * o * (1 - tanh_c[t] ** 2)
        dh[:, t], dc[:, t] = dh_t, dc_new + (1 - m[t]) * gc
        delta = np.concatenate(
            [
                dc_new * g * i * (1 - i),  # δ^i
                dc_new * cs[t] * f * (1 - f),  # δ^f
                dc_new * i * (1 - g**2),  # δ^g
                dh_new * tanh_c[t] * o * (1 - o),
            ],
            axis=1,
        )  # δ^o
        dW += x[:, t].T @ delta
        dV += hs[t].T @ delta
        db += delta.sum(axis=0)
        dx[:, t] = delta @ W.T
        gh = delta @ V.T + (1 - m[t]) * dh_t
        gc = dc_new * f + (1 - m[t]) * gc
    return LSTMGradients(dW=dW, dV=dV, db=db, dh0=gh, dc0=gc, dx=dx, dh=dh, dc=dc)


class GRUGradients(NamedTuple):
    """Gradients of L from :func:`gru_bptt`; all NumPy float64 arrays."""

    dW: np.ndarray  # (E, 3H)
    dV: np.ndarray  # (H, 3H)
    db: np.ndarray  # (3H,)
    db_hn: np.ndarray  # (H,)
    dh0: np.ndarray  # (B, H)
    dx: np.ndarray  # (B, T, E)
    dh: np.ndarray  # (B, T, H): dh_t, the total gradient reaching h_t


def _gru_states(x, W, V, b, b_hn, h0, m):
    """The GRU forward (:func:`gru_bptt`'s docstring) → hs (T + 1, B, H), hs[0] = h_0, and per step
    (r, z, n, hv^n + b_hn), what the backward sweep reads."""
    B, T, _ = x.shape
    H = V.shape[0]
    hs = np.zeros((T + 1, B, H))
    if h0 is not None:
        hs[0] = h0
    saved = []  # r, z, n, hv^n + b_hn per step
    for t in range(T):
        r, z, n, hn = gru_gates(x[:, t] @ W + b, hs[t] @ V, b_hn)
        saved.append((r, z, n, hn))
        hs[t + 1] = m[t] * ((1 - z) * n + z * hs[t]) + (1 - m[t]) * hs[t]

    return hs, saved


def gru_forward(x, W, V, b, b_hn, h0=None, lengths=None):
    """The GRU over t = 1..T → hs (T + 1, B, H): hs[t] = h_t, hs[0] = h_0."""
    x, W, V, b, b_hn = (np.asarray(a, dtype=np.float64) for a in (x, W, V, b, b_hn))
    return _gru_states(x, W, V, b, b_hn, h0, _step_masks(lengths, *x.shape[:2]))[0]


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

    hs, saved = _gru_states(x, W, V, b, b_hn, h0, m)
    dW, dV, db, db_hn = np.zeros_like(W), np.zeros_like(V), np.zeros_like(b), np.zeros_like(b_hn)
    dx, dh = np.zeros_like(x), np.zeros((B, T, H))
    gh = np.zeros((B, H)) if d_h_last is None else np.asarray(d_h_last, dtype=np.float64).copy()
    for t in range(T - 1, -1, -1):
        r, z, n, hn = saved[t]
        dh_t = gh + m[t] * d_outputs[:, t]
        dh[:, t] = dh_t
        dh_new = m[t] * dh_t
        d_n = dh_new * (1 - z) * (1 - n**2)  # δ^n
        d_r = d_n * hn * r * (1 - r)  # δ^r
        d_z = dh_new * (hs[t] - n) * z * (1 - z)  # δ^z
        delta_x = np.concatenate([d_r, d_z, d_n], axis=1)
        delta_h = np.concatenate([d_r, d_z, d_n * r], axis=1)
        dW += x[:, t].T @ delta_x
        db += delta_x.sum(axis=0)
        dx[:, t] = delta_x @ W.T
        dV += hs[t].T @ delta_h
        db_hn += (d_n * r).sum(axis=0)
        gh = delta_h @ V.T + dh_new * z + (1 - m[t]) * dh_t
    return GRUGradients(dW=dW, dV=dV, db=db, db_hn=db_hn, dh0=gh, dx=dx, dh=dh)
