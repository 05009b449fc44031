r"""The gated cells, LSTM and GRU, and their layers — from Tensor ops only, run by the same unroller.

Row-vector convention as for the vanilla cell (x_t (B, E), h (B, H)); σ is the logistic sigmoid,
⊙ the elementwise product. The weights of all gates sit side by side in one matrix, so the input
term of every gate and every step is one product (``project_input``) and the recurrent term of
every gate one product per step.

**LSTM** — W (E, 4H), V (H, 4H), b (4H,), column blocks i, f, g, o::

    i = σ(x_t W_i + h_{t−1} V_i + b_i)      input gate
    f = σ(x_t W_f + h_{t−1} V_f + b_f)      forget gate
    g = tanh(x_t W_g + h_{t−1} V_g + b_g)   candidate
    o = σ(x_t W_o + h_{t−1} V_o + b_o)      output gate
    c_t = f ⊙ c_{t−1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

The state is the pair (h, c). Backward, ∂c_t/∂c_{t−1} = diag(f): where f ≈ 1 the cell-state path
passes the gradient back unchanged, with no Vᵀ and no tanh' to shrink it at every step as in the
vanilla cell. The forget gate is Gers, Schmidhuber & Cummins' (2000): the 1997 LSTM of Hochreiter &
Schmidhuber had none, its c_t = c_{t−1} + i ⊙ g being a "constant error carousel" of factor exactly
1. No peephole connections.

**GRU** — W (E, 3H), V (H, 3H), b (3H,), b_hn (H,), blocks r, z, n (PyTorch's variant, so weights
carry over both ways)::

    r = σ(x_t W_r + h_{t−1} V_r + b_r)                  reset gate
    z = σ(x_t W_z + h_{t−1} V_z + b_z)                  update gate
    n = tanh(x_t W_n + b_n + r ⊙ (h_{t−1} V_n + b_hn))  candidate
    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

The reset gate scales the product h_{t−1} V_n (plus its bias b_hn), as in PyTorch and cuDNN, so
one product h_{t−1} V serves all three gates. Cho et al. (2014) reset the state before the product
instead, n = tanh(x_t W_n + (r ⊙ h_{t−1}) V_n): a different function of the same weights unless
V_n is diagonal. z weighs the old state in both.

Backward, h_{t−1} reaches h_t directly through z ⊙ h_{t−1}: where z ≈ 1 the gradient passes.

**Chrono initialisation** (:func:`chrono_init_`) sets b_f = log u, u ~ U(1, T_max − 1), and
b_i = −b_f, so that each unit starts as a leaky average of its inputs whose memory
Σ_k f^k = 1 / (1 − f) = 1 + u is spread over 2 … T_max steps.

The hand-derived BPTT of both cells is in :mod:`tinygrad_rnn.bptt.reference` (tested against
autograd through these layers to 1e-10 in float64).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import host_rng
from ..ops import addmm
from ..tensor import ShapeError, Tensor, zeros
from .layers import _check_size, host_parameter
from .module import Module
from .recurrent import Recurrent


class _GatedCell(Module):
    """What LSTMCell and GRUCell share: G gate blocks of width H, U(−1/√H, 1/√H) weights."""

    gates = 1  # G: column blocks in W, V and b

    def __init__(self, input_size, hidden_size, *, rng, dtype=None, device=None):
        _check_size("input_size", input_size)
        _check_size("hidden_size", hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        G, H, k = self.gates, hidden_size, 1.0 / math.sqrt(hidden_size)
        self.W = host_parameter(rng.uniform(-k, k, (input_size, G * H)), dtype, device)
        self.V = host_parameter(rng.uniform(-k, k, (H, G * H)), dtype, device)

    def project_input(self, x: Tensor) -> Tensor:
        """xw = x W + b for x (..., E) → (..., G·H): every gate's input term in one product."""
        if x.ndim == 2:                                   # one step: (B, E) → (B, G·H)
            return addmm(self.b, x, self.W)
        lead = x.shape[:-1]
        flat = x.reshape(math.prod(lead), self.input_size)
        return addmm(self.b, flat, self.W).reshape(*lead, self.gates * self.hidden_size)

    def _check_input(self, x_t: Tensor) -> None:
        if x_t.ndim != 2 or x_t.shape[1] != self.input_size:
            raise ShapeError(f"{type(self).__name__}: x_t of shape {x_t.shape}, want "
                             f"(B, {self.input_size}) to match W of shape {self.W.shape}")

    def _check_state(self, name: str, t: Tensor, B: int) -> None:
        if t.shape != (B, self.hidden_size):
            raise ShapeError(f"{type(self).__name__}: {name} of shape {t.shape}, want "
                             f"({B}, {self.hidden_size}) for a batch of {B}")

    def _zeros(self, batch: int) -> Tensor:
        return zeros(batch, self.hidden_size, dtype=self.V.dtype, device=self.V.device)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


class LSTMCell(_GatedCell):
    """One LSTM step: ``(h_t, c_t) = cell(x_t, (h_{t−1}, c_{t−1}))`` (equations in the module doc).

    Parameters ``W`` (input_size, 4H), ``V`` (H, 4H), ``b`` (4H,), blocks i, f, g, o, all
    U(−1/√H, 1/√H) as in PyTorch — except the forget gate's bias b_f, which starts at
    ``forget_bias`` (1.0 by default: f ≈ σ(1) ≈ 0.73, so the cell state is carried from the
    start; Jozefowicz et al., 2015). ``forget_bias=None`` draws it like the other biases.
    ``state=None`` means zeros.
    """

    gates = 4

    def __init__(self, input_size, hidden_size, forget_bias=1.0, *, rng=None, dtype=None, device=None):
        rng = rng or host_rng()
        if forget_bias is not None and (isinstance(forget_bias, bool) or not isinstance(forget_bias, numbers.Real)
                                        or not math.isfinite(forget_bias)):
            raise ValueError(f"forget_bias must be a finite number or None, got {forget_bias!r}")
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype, device=device)
        self.forget_bias = forget_bias
        k = 1.0 / math.sqrt(hidden_size)
        b = rng.uniform(-k, k, 4 * hidden_size)
        if forget_bias is not None:
            b[hidden_size:2 * hidden_size] = forget_bias
        self.b = host_parameter(b, dtype, device)

    def step(self, xw_t: Tensor, state: tuple) -> tuple:
        """(h_t, c_t) from xw_t = x_t W + b (B, 4H) and (h_{t−1}, c_{t−1})."""
        h_prev, c_prev = state
        i, f, g, o = addmm(xw_t, h_prev, self.V).split(4, axis=1)   # x_t W + b + h_{t−1} V, by gate
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c_prev + i * g                                          # c_t = f ⊙ c_{t−1} + i ⊙ g
        return o * c.tanh(), c                                          # h_t = o ⊙ tanh(c_t)

    def initial_state(self, batch: int) -> tuple:
        """The zero state (h_0, c_0), each (batch, H)."""
        return self._zeros(batch), self._zeros(batch)

    def hidden(self, state: tuple) -> Tensor:
        """The h of a state (h, c)."""
        return state[0]

    def forward(self, x_t: Tensor, state: tuple = None) -> tuple:
        self._check_input(x_t)
        B = x_t.shape[0]
        if state is None:
            state = self.initial_state(B)
        elif not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"LSTMCell: state must be a tuple (h, c), got {type(state).__name__}")
        else:
            self._check_state("h", state[0], B)
            self._check_state("c", state[1], B)
        return self.step(self.project_input(x_t), state)

    def extra_repr(self):
        return super().extra_repr() + f", forget_bias={self.forget_bias!r}"


class GRUCell(_GatedCell):
    """One GRU step: ``h_t = cell(x_t, h_{t−1})`` (equations in the module doc).

    Parameters ``W`` (input_size, 3H), ``V`` (H, 3H), ``b`` (3H,), blocks r, z, n, and ``b_hn``
    (H,), the bias inside the reset product r ⊙ (h V_n + b_hn); all U(−1/√H, 1/√H) as in
    PyTorch. ``h_prev=None`` means zeros. The state is the Tensor h.
    """

    gates = 3

    def __init__(self, input_size, hidden_size, *, rng=None, dtype=None, device=None):
        rng = rng or host_rng()
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype, device=device)
        k = 1.0 / math.sqrt(hidden_size)
        self.b = host_parameter(rng.uniform(-k, k, 3 * hidden_size), dtype, device)
        self.b_hn = host_parameter(rng.uniform(-k, k, hidden_size), dtype, device)

    def step(self, xw_t: Tensor, h_prev: Tensor) -> Tensor:
        """h_t from xw_t = x_t W + b (B, 3H) and h_{t−1}."""
        x_r, x_z, x_n = xw_t.split(3, axis=1)
        h_r, h_z, h_n = (h_prev @ self.V).split(3, axis=1)               # h_{t−1} V, by gate
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * (h_n + self.b_hn)).tanh()
        return n + z * (h_prev - n)                                     # (1 − z) ⊙ n + z ⊙ h_{t−1}

    def initial_state(self, batch: int) -> Tensor:
        """The zero state h_0, (batch, H)."""
        return self._zeros(batch)

    def hidden(self, state: Tensor) -> Tensor:
        """The h of a state (the GRU state is h itself)."""
        return state

    def forward(self, x_t: Tensor, h_prev: Tensor = None) -> Tensor:
        self._check_input(x_t)
        if h_prev is None:
            h_prev = self.initial_state(x_t.shape[0])
        else:
            self._check_state("h_prev", h_prev, x_t.shape[0])
        return self.step(self.project_input(x_t), h_prev)


class LSTM(Recurrent):
    """A (multi-layer, optionally bidirectional) LSTM over batch-first sequences.

    ``outputs, (h_last, c_last) = lstm(x, h0=None, lengths=None)``; ``h0`` is None or a pair
    ``(h0, c0)``, each (num_layers × D, B, H) like ``h_last`` and ``c_last``. ``lstm.cells[k]`` is
    an :class:`LSTMCell`. Everything else — lengths and padding (the whole state (h, c) carries
    over at a padded step), truncation, ``return_states`` (each state the pair (h_t, c_t)),
    ``need_outputs`` — is the shared unroller's, :class:`~tinygrad_rnn.nn.recurrent.Recurrent`.
    """

    cell_class = LSTMCell

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, truncate=None, *,
                 forget_bias=1.0, checkpoint=None, rng=None, dtype=None, device=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, truncate, checkpoint=checkpoint,
                         rng=rng, dtype=dtype, device=device, forget_bias=forget_bias)

    def extra_repr(self):
        return super().extra_repr() + f", forget_bias={self.cells[0].forget_bias!r}"


def chrono_init_(lstm, max_length: int, *, rng=None):
    """Chrono initialisation (Tallec & Ollivier, 2018) of the gate biases of every cell of ``lstm``
    (an :class:`LSTM` or one :class:`LSTMCell`), in place; returns ``lstm``.

    For each unit, u ~ U(1, T_max − 1) with T_max = ``max_length`` (the longest dependency the
    model should carry), and::

        b_f = log u,   b_i = −b_f

    so f = σ(b_f) = u / (1 + u) ∈ [1/2, (T_max − 1)/T_max]: with x_t and h_{t−1} near 0, the cell
    state decays as f^k — to 1/e after 1 / ln(1 + 1/u) ≈ u + ½ steps; its memory in total is
    Σ_k f^k = 1 / (1 − f) = 1 + u steps — and i = σ(−b_f) = 1 − f lets in as much as f forgets:
    c_t ≈ f c_{t−1} + (1 − f) g. The memories 1 + u spread over 2 … T_max, so some units carry
    their state across the whole sequence from the start, and the
    gradient ∂c_t/∂c_{t−k} = f^k reaches back as far. The g and o biases and all weights are left
    as they are. Apply it before making the optimizer (it replaces the values, as a load does).
    """
    cells = [lstm] if isinstance(lstm, LSTMCell) else getattr(lstm, "cells", None)
    if not cells or not all(isinstance(cell, LSTMCell) for cell in cells):
        raise TypeError(f"chrono_init_ needs an LSTM or an LSTMCell, got {type(lstm).__name__}")
    _check_size("max_length", max_length)
    if max_length < 2:
        raise ValueError(f"max_length must be an integer ≥ 2 (the longest dependency, in steps), got {max_length!r}")
    rng = rng or host_rng()
    for cell in cells:
        H = cell.hidden_size
        b = cell.b.numpy().astype(np.float64)
        b_f = np.log(rng.uniform(1.0, max_length - 1.0, H))
        b[H:2 * H], b[:H] = b_f, -b_f
        cell.b.data = b.astype(cell.b.dtype)
        cell.forget_bias = "chrono"
    return lstm


class GRU(Recurrent):
    """A (multi-layer, optionally bidirectional) GRU over batch-first sequences.

    ``outputs, h_last = gru(x, h0=None, lengths=None)``, shapes as for ``nn.RNN``;
    ``gru.cells[k]`` is a :class:`GRUCell`. Lengths, truncation, ``return_states`` and
    ``need_outputs`` are the shared unroller's, :class:`~tinygrad_rnn.nn.recurrent.Recurrent`.
    """

    cell_class = GRUCell

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, truncate=None, *,
                 checkpoint=None, rng=None, dtype=None, device=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, truncate, checkpoint=checkpoint,
                         rng=rng, dtype=dtype, device=device)
