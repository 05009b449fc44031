"""The benchmark's hand-derived BPTT: the fast form of ``tinygrad_rnn.bptt.reference``'s sweeps.

The reference (``rnn_bptt``, ``lstm_bptt``, ``gru_bptt``) accumulates dW, dV, db inside its loop,
one step at a time, as the equations read. The same sweep done fast, for the "numpy BPTT" row of
``bench.py`` — the floor for any NumPy autograd: only δ_{t+1} Vᵀ has to run in a loop over t;
every δ_t is kept, and each weight gradient is ONE matrix product over all (t, batch) rows —
dW = Xᵀ Δ, dV = H_prevᵀ Δ with X, H_prev, Δ the (T·B, ·) stacks of x_t, h_{t−1}, δ_t. The input
term of every step is one product too, and each step writes into preallocated buffers (``out=``),
so no step makes temporaries. ``xp`` is NumPy or CuPy; no padding; the loss reads h_T only.

tests/test_bptt_reference.py holds every function here against the step-by-step reference.
"""

from __future__ import annotations

from tinygrad_rnn.bptt.reference import sigmoid

# ---- the vanilla cell --------------------------------------------------------------------------------


def rnn_forward_vectorised(xp, x, W, V, b, h0=None):
    """h_t = tanh(x_t W + h_{t-1} V + b) for all t, with ``xp`` (NumPy or CuPy) and no masking.

    Returns the states time-major, ``hs`` (T + 1, B, H) with ``hs[0] = h_0`` and ``hs[t] = h_t``:
    each h_t is one contiguous block. The input term of every step is one (B, T, E) @ (E, H)
    product; each step writes into the preallocated ``hs`` (no temporaries).
    """
    B, T, _ = x.shape
    H = V.shape[0]
    A = x @ W  # (B, T, H): all input projections, one matmul
    A += b
    hs = xp.empty((T + 1, B, H), dtype=x.dtype)
    hs[0] = 0 if h0 is None else h0
    for t in range(T):
        h = hs[t + 1]
        xp.matmul(hs[t], V, out=h)  # a_t = h_{t-1} V + (x_t W + b)
        h += A[:, t]
        xp.tanh(h, out=h)  # h_t = tanh(a_t)
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
    VT = xp.ascontiguousarray(V.T)  # OpenBLAS: 15–25% faster than through the V.T view
    dh = d_h_last
    for t in range(T - 1, -1, -1):
        h, d = hs[t + 1], delta[t]
        xp.multiply(h, h, out=d)  # δ_t = (1 − h_t²) ⊙ dh_t, without temporaries
        xp.subtract(1, d, out=d)
        d *= dh
        dh = d @ VT  # dh_{t−1} = δ_t Vᵀ
    flat = delta.reshape(T * B, H)
    dW = x.transpose(1, 0, 2).reshape(T * B, E).T @ flat
    dV = hs[:T].reshape(T * B, H).T @ flat
    db = flat.sum(axis=0)
    return dW, dV, db, dh


# ---- the gated cells: a loss on the last state ----------------------------------------------------------


def lstm_forward_vectorised(xp, x, W, V, b):
    """The LSTM from zero state over all T steps → (hs, cs, gates, tanh_c), time-major:
    hs, cs (T + 1, B, H) with hs[t] = h_t; gates (T, B, 4H) = [i f g o]; tanh_c (T, B, H)."""
    B, T, _ = x.shape
    H = V.shape[0]
    A = x @ W  # (B, T, 4H): every step's input term at once
    A += b
    hs, cs = xp.zeros((T + 1, B, H), dtype=x.dtype), xp.zeros((T + 1, B, H), dtype=x.dtype)
    gates = xp.empty((T, B, 4 * H), dtype=x.dtype)
    tanh_c = xp.empty((T, B, H), dtype=x.dtype)
    for t in range(T):
        a = gates[t]
        xp.matmul(hs[t], V, out=a)
        a += A[:, t]
        sigmoid(a[:, : 2 * H], out=a[:, : 2 * H], xp=xp)  # i, f
        xp.tanh(a[:, 2 * H : 3 * H], out=a[:, 2 * H : 3 * H])  # g
        sigmoid(a[:, 3 * H :], out=a[:, 3 * H :], xp=xp)  # o
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        c = cs[t + 1]
        xp.multiply(f, cs[t], out=c)  # c_t = f ⊙ c_{t−1} + i ⊙ g
        c += i * g
        xp.tanh(c, out=tanh_c[t])
        xp.multiply(o, tanh_c[t], out=hs[t + 1])  # h_t = o ⊙ tanh(c_t)
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
        i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
        dc = dc + dh * o * (1 - tc * tc)
        d = delta[t]
        xp.multiply(dc * g, i * (1 - i), out=d[:, :H])  # δ^i
        xp.multiply(dc * cs[t], f * (1 - f), out=d[:, H : 2 * H])  # δ^f
        xp.multiply(dc * i, 1 - g * g, out=d[:, 2 * H : 3 * H])  # δ^g
        xp.multiply(dh * tc, o * (1 - o), out=d[:, 3 * H :])  # δ^o
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
        xp.add(A[:, t, : 2 * H], hv[:, : 2 * H], out=a[:, : 2 * H])
        sigmoid(a[:, : 2 * H], out=a[:, : 2 * H], xp=xp)  # r, z
        xp.add(hv[:, 2 * H :], b_hn, out=hn[t])
        n = a[:, 2 * H :]
        xp.multiply(a[:, :H], hn[t], out=n)  # n = tanh(xw^n + r ⊙ hn)
        n += A[:, t, 2 * H :]
        xp.tanh(n, out=n)
        z = a[:, H : 2 * H]
        h = hs[t + 1]
        xp.subtract(hs[t], n, out=h)  # h_t = n + z ⊙ (h_{t−1} − n)
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
        r, z, n = a[:, :H], a[:, H : 2 * H], a[:, 2 * H :]
        dx_t, dh_t = dxw[t], dhv[t]
        xp.multiply(dh * (1 - z), 1 - n * n, out=dx_t[:, 2 * H :])  # δ^n
        xp.multiply(dx_t[:, 2 * H :] * hn[t], r * (1 - r), out=dx_t[:, :H])  # δ^r
        xp.multiply(dh * (hs[t] - n), z * (1 - z), out=dx_t[:, H : 2 * H])  # δ^z
        dh_t[:, : 2 * H] = dx_t[:, : 2 * H]
        xp.multiply(dx_t[:, 2 * H :], r, out=dh_t[:, 2 * H :])  # δ^n ⊙ r
        dh = dh_t @ VT + dh * z
    flat_x, flat_h = dxw.reshape(T * B, 3 * H), dhv.reshape(T * B, 3 * H)
    dW = x.transpose(1, 0, 2).reshape(T * B, E).T @ flat_x
    dV = hs[:T].reshape(T * B, H).T @ flat_h
    return dW, dV, flat_x.sum(axis=0), flat_h[:, 2 * H :].sum(axis=0), dh
