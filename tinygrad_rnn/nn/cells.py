r"""The recurrent cells: the vanilla cell of the chapter we follow (docs/chapter.md), the LSTM and the GRU.

Row-vector convention (x_t of shape (B, E), h of shape (B, H)); σ is the logistic sigmoid, ⊙ the
elementwise product. A cell has G gate blocks of width H, whose weights sit side by side in one
matrix — W (E, G·H), V (H, G·H), b (G·H,) — so the input term of every gate and every step is one
product, and the recurrent term of every gate one product per step. The vanilla cell is the case
G = 1.

**RNN** (G = 1) — W (E, H), V (H, H), b (H,)::

    h_t = tanh(x_t W + h_{t−1} V + b)

**LSTM** (G = 4) — blocks i, f, g, o::

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

**GRU** (G = 3) — blocks r, z, n, and b_hn (H,) (PyTorch's variant, so weights carry over both
ways)::

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

**The cell protocol**, which the unroller (:mod:`.recurrent`) follows:

* ``cell.project_input(x)``: x (..., E) → x W + b (..., G·H), the input term of every step at once;
* ``cell.step(xw_t, state)``: one time step from the projected input xw_t and the previous state;
* ``cell.state_names``: what a state is made of, ``("h",)`` or ``("h", "c")``. A one-part state
  is the Tensor h itself, a longer one the tuple of its parts in that order;
* ``cell.initial_state(B)``: the zero state; ``cell.hidden(state)``: its h, what a layer outputs.

``cell(x_t, state)`` is ``cell.step(cell.project_input(x_t), state)``, with shapes checked.
The unroller and the task models (:mod:`tinygrad_rnn.models`) ask a cell these questions and
never which kind of cell it is; only tools of :mod:`tinygrad_rnn.bptt` that hold one hand
derivation per cell go by its kind.

Backpropagation through time is nothing more than ``loss.backward()`` walking the unrolled chain
back from t = T to t = 1; the hand-derived equations of every cell in
:mod:`tinygrad_rnn.bptt.reference` give the same numbers (tested to 1e-10 in float64).
"""

from __future__ import annotations

import math
import numbers
from typing import ClassVar

import numpy as np

from ..backend import host_rng
from ..ops import addmm
from ..tensor import ShapeError, Tensor, zeros
from .layers import _check_size, host_parameter
from .module import Module

INITS = ("uniform", "orthogonal", "identity")  # the vanilla cell's choices of V


def as_parts(state) -> tuple:
    """A cell's state as a tuple of tensors: h → (h,), (h, c) → (h, c)."""
    return state if isinstance(state, tuple) else (state,)


def from_parts(parts: tuple):
    """The inverse of :func:`as_parts`: a one-tensor state is the tensor itself."""
    return parts if len(parts) > 1 else parts[0]


class Cell(Module):
    """What the three cells share: ``gates`` blocks of width H in W (E, G·H), V (H, G·H) and
    b (G·H,), drawn U(−1/√H, 1/√H) as in PyTorch (in that order, from ``rng``); the shape checks
    of one step; the zero state. A subclass sets ``gates`` and ``state_names`` and writes ``step``.
    """

    gates: ClassVar[int] = 1  # G: column blocks in W, V and b
    state_names: ClassVar[tuple[str, ...]] = ("h",)  # the parts of a state, in order

    def __init__(self, input_size, hidden_size, *, rng=None, dtype=None, device=None):
        _check_size("input_size", input_size)
        _check_size("hidden_size", hidden_size)
        self.input_size, self.hidden_size = input_size, hidden_size
        rng = rng or host_rng()
        G, H, k = self.gates, hidden_size, 1.0 / math.sqrt(hidden_size)
        self.W = host_parameter(rng.uniform(-k, k, (input_size, G * H)), dtype, device)
        self.V = host_parameter(self._initial_V(rng, k), dtype, device)
        self.b = host_parameter(self._initial_b(rng, k), dtype, device)

    def _initial_V(self, rng: np.random.Generator, k: float) -> np.ndarray:
        return rng.uniform(-k, k, (self.hidden_size, self.gates * self.hidden_size))

    def _initial_b(self, rng: np.random.Generator, k: float) -> np.ndarray:
        return rng.uniform(-k, k, self.gates * self.hidden_size)

    def project_input(self, x: Tensor) -> Tensor:
        """xw = x W + b for x (..., E) → (..., G·H): every gate's input term in one product."""
        if x.ndim == 2:  # one step: (B, E) → (B, G·H)
            return addmm(self.b, x, self.W)
        lead = x.shape[:-1]
        flat = x.reshape(math.prod(lead), self.input_size)
        return addmm(self.b, flat, self.W).reshape(*lead, self.gates * self.hidden_size)

    def initial_state(self, batch: int):
        """The zero state: one (batch, H) tensor of zeros per name in ``state_names``."""
        return from_parts(
            tuple(
                zeros(batch, self.hidden_size, dtype=self.V.dtype, device=self.V.device)
                for _ in self.state_names
            )
        )

    def hidden(self, state) -> Tensor:
        """The h of a state (its first part; a one-part state is h itself)."""
        return as_parts(state)[0]

    def forward(self, x_t: Tensor, state=None):
        """One step from x_t (B, E) and the previous state (None: the zero state) → the new state."""
        name = type(self).__name__
        if x_t.ndim != 2 or x_t.shape[1] != self.input_size:
            raise ShapeError(
                f"{name}: x_t of shape {x_t.shape}, want (B, {self.input_size}) "
                f"to match W of shape {self.W.shape}"
            )
        B = x_t.shape[0]
        if state is None:
            return self.step(self.project_input(x_t), self.initial_state(B))
        n = len(self.state_names)
        if isinstance(state, tuple) != (n > 1) or len(as_parts(state)) != n:
            want = "a tensor h" if n == 1 else f"a tuple ({', '.join(self.state_names)})"
            raise TypeError(f"{name}: state must be {want}, got {type(state).__name__}")
        for part, tensor in zip(self.state_names, as_parts(state)):
            if tensor.shape != (B, self.hidden_size):
                raise ShapeError(
                    f"{name}: {part}_prev of shape {tensor.shape}, want "
                    f"({B}, {self.hidden_size}) for a batch of {B}"
                )
        return self.step(self.project_input(x_t), state)

    def step(self, xw_t: Tensor, state):
        """The new state from the projected input xw_t = x_t W + b (B, G·H) and the previous
        state (a Tensor h, or the tuple of the parts in ``state_names``). Each cell writes its own."""
        raise NotImplementedError(f"{type(self).__name__} must define step(xw_t, state)")

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(Cell):
    """One step of the vanilla RNN: ``h_t = cell(x_t, h_{t−1}) = tanh(x_t W + h_{t−1} V + b)``.

    Parameters ``W`` (input_size, hidden_size), ``V`` (hidden_size, hidden_size), ``b``
    (hidden_size,). ``W`` and ``b`` start U(−1/√H, 1/√H) as in PyTorch; ``init`` picks V:

    * ``"uniform"``    U(−1/√H, 1/√H), PyTorch's default;
    * ``"orthogonal"`` a random orthogonal matrix (all singular values 1);
    * ``"identity"``   the identity matrix (Le et al., 2015: the state is copied forward).

    Each step multiplies the backward signal by diag(1 − h_t²) Vᵀ, so V decides whether ∂L/∂h_t
    vanishes or explodes over many steps — that is why ``init`` matters. σ_max(V) < 1 guarantees
    vanishing, but the rate is V's spectral radius ρ(V) (‖V^k‖^{1/k} → ρ(V)), which can be far
    smaller: the uniform init's V of H = 32 (seed 0) has σ_max ≈ 1.05 and ρ ≈ 0.6 (docs/bptt.md).
    ``state=None`` means a zero state. The state is the Tensor h itself.
    """

    gates, state_names = 1, ("h",)

    def __init__(self, input_size, hidden_size, *, init="uniform", rng=None, dtype=None, device=None):
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
        self.init = init
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype, device=device)

    def _initial_V(self, rng, k):
        """U(−k, k), a random orthogonal matrix, or the identity."""
        H = self.hidden_size
        if self.init == "orthogonal":
            # QR of a Gaussian matrix; fixing the signs of R's diagonal makes Q uniformly distributed.
            q, r = np.linalg.qr(rng.standard_normal((H, H)))
            return q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
        return np.eye(H) if self.init == "identity" else super()._initial_V(rng, k)

    def step(self, xw_t: Tensor, h_prev: Tensor) -> Tensor:
        """h_t = tanh(xw_t + h_{t−1} V), from the projected input xw_t = x_t W + b."""
        return addmm(xw_t, h_prev, self.V).tanh()

    def extra_repr(self):
        return super().extra_repr() + f", init={self.init!r}"


class LSTMCell(Cell):
    """One LSTM step: ``(h_t, c_t) = cell(x_t, (h_{t−1}, c_{t−1}))`` (equations in the module doc).

    Parameters ``W`` (input_size, 4H), ``V`` (H, 4H), ``b`` (4H,), blocks i, f, g, o, all
    U(−1/√H, 1/√H) as in PyTorch — except the forget gate's bias b_f, which starts at
    ``forget_bias`` (1.0 by default: f ≈ σ(1) ≈ 0.73, so the cell state is carried from the
    start; Jozefowicz et al., 2015). ``forget_bias=None`` draws it like the other biases.
    ``state=None`` means zeros.
    """

    gates, state_names = 4, ("h", "c")

    def __init__(self, input_size, hidden_size, *, forget_bias=1.0, rng=None, dtype=None, device=None):
        if forget_bias is not None and (
            isinstance(forget_bias, bool)
            or not isinstance(forget_bias, numbers.Real)
            or not math.isfinite(forget_bias)
        ):
            raise ValueError(f"forget_bias must be a finite number or None, got {forget_bias!r}")
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype, device=device)

    def _initial_b(self, rng, k):
        b = super()._initial_b(rng, k)
        if self.forget_bias is not None:
            b[self.hidden_size : 2 * self.hidden_size] = self.forget_bias  # the f block
        return b

    def step(self, xw_t: Tensor, state: tuple) -> tuple:
        """(h_t, c_t) from xw_t = x_t W + b (B, 4H) and (h_{t−1}, c_{t−1})."""
        h_prev, c_prev = state
        i, f, g, o = addmm(xw_t, h_prev, self.V).split(4, axis=1)  # x_t W + b + h_{t−1} V, by gate
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c_prev + i * g  # c_t = f ⊙ c_{t−1} + i ⊙ g
        return o * c.tanh(), c  # h_t = o ⊙ tanh(c_t)

    def extra_repr(self):
        return super().extra_repr() + f", forget_bias={self.forget_bias!r}"


class GRUCell(Cell):
    """One GRU step: ``h_t = cell(x_t, h_{t−1})`` (equations in the module doc).

    Parameters ``W`` (input_size, 3H), ``V`` (H, 3H), ``b`` (3H,), blocks r, z, n, and ``b_hn``
    (H,), the bias inside the reset product r ⊙ (h V_n + b_hn); all U(−1/√H, 1/√H) as in
    PyTorch. ``state=None`` means zeros. The state is the Tensor h.
    """

    gates, state_names = 3, ("h",)

    def __init__(self, input_size, hidden_size, *, rng=None, dtype=None, device=None):
        rng = rng or host_rng()
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype, device=device)
        k = 1.0 / math.sqrt(hidden_size)
        self.b_hn = host_parameter(rng.uniform(-k, k, hidden_size), dtype, device)

    def step(self, xw_t: Tensor, h_prev: Tensor) -> Tensor:
        """h_t from xw_t = x_t W + b (B, 3H) and h_{t−1}."""
        x_r, x_z, x_n = xw_t.split(3, axis=1)
        h_r, h_z, h_n = (h_prev @ self.V).split(3, axis=1)  # h_{t−1} V, by gate
        r = (x_r + h_r).sigmoid()
        z = (x_z + h_z).sigmoid()
        n = (x_n + r * (h_n + self.b_hn)).tanh()
        return n + z * (h_prev - n)  # (1 − z) ⊙ n + z ⊙ h_{t−1}


def chrono_init_(lstm, max_length: int, *, rng=None):
    """Chrono initialisation (Tallec & Ollivier, 2018) of the gate biases of every cell of ``lstm``
    (an ``nn.LSTM`` or one :class:`LSTMCell`), in place; returns ``lstm``.

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
        raise ValueError(
            f"max_length must be an integer ≥ 2 (the longest dependency, in steps), got {max_length!r}"
        )
    rng = rng or host_rng()
    for cell in cells:
        H = cell.hidden_size
        b = cell.b.numpy().astype(np.float64)
        b_f = np.log(rng.uniform(1.0, max_length - 1.0, H))
        b[H : 2 * H], b[:H] = b_f, -b_f
        cell.b.data = b.astype(cell.b.dtype)
        cell.forget_bias = "chrono"
    return lstm
