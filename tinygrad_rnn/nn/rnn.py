"""The recurrent cell of the chapter we follow (docs/chapter.md), and ``nn.RNN``: that cell run by the unroller of :mod:`.recurrent`.

One step (row-vector convention, x_t of shape (B, E), h of shape (B, H))::

    h_t = tanh(x_t W + h_{t-1} V + b)          W (E, H), V (H, H), b (H,)

split in two named parts: ``project_input`` computes xw_t = x_t W + b (for all t at once in a
layer), ``step`` computes h_t = tanh(xw_t + h_{t-1} V). ``RNNCell.forward`` and ``nn.RNN`` run
the same ``step``. Backpropagation through time is nothing more than ``loss.backward()`` walking
the unrolled chain back from t = T to t = 1; the hand-derived equations in
:mod:`tinygrad_rnn.bptt.reference` give the same numbers (tested to 1e-10).
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import host_rng
from ..ops import addmm
from ..tensor import ShapeError, Tensor, zeros
from .layers import _check_size, host_parameter
from .module import Module
from .recurrent import Recurrent

INITS = ("uniform", "orthogonal", "identity")


def _recurrent_matrix(init: str, H: int, k: float, rng: np.random.Generator) -> np.ndarray:
    """The initial V: U(−k, k), a random orthogonal matrix, or the identity."""
    if init == "uniform":
        return rng.uniform(-k, k, (H, H))
    if init == "orthogonal":
        # QR of a Gaussian matrix; fixing the signs of R's diagonal makes Q uniformly distributed.
        q, r = np.linalg.qr(rng.standard_normal((H, H)))
        return q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
    return np.eye(H)


class RNNCell(Module):
    """One step of the vanilla RNN: ``cell(x_t, h_prev) = tanh(x_t @ W + h_prev @ V + b)``.

    Parameters ``W`` (input_size, hidden_size), ``V`` (hidden_size, hidden_size), ``b``
    (hidden_size,). ``W`` and ``b`` start U(−1/√H, 1/√H) as in PyTorch; ``init`` picks V:

    * ``"uniform"``    U(−1/√H, 1/√H), PyTorch's default;
    * ``"orthogonal"`` a random orthogonal matrix (all singular values 1);
    * ``"identity"``   the identity matrix (Le et al., 2015: the state is copied forward).

    Each step multiplies the backward signal by diag(1 − h_t²) Vᵀ, so V decides whether ∂L/∂h_t
    vanishes or explodes over many steps — that is why ``init`` matters. σ_max(V) < 1 guarantees
    vanishing, but the rate is V's spectral radius ρ(V) (‖V^k‖^{1/k} → ρ(V)), which can be far
    smaller: the uniform init's V of H = 32 (seed 0) has σ_max ≈ 1.05 and ρ ≈ 0.6 (docs/bptt.md).
    ``h_prev=None`` means a zero state. The state is the Tensor h itself.
    """

    def __init__(self, input_size, hidden_size, init="uniform", *, rng=None, dtype=None, device=None):
        _check_size("input_size", input_size)
        _check_size("hidden_size", hidden_size)
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
        self.input_size, self.hidden_size, self.init = input_size, hidden_size, init
        rng = rng or host_rng()
        k = 1.0 / math.sqrt(hidden_size)
        self.W = host_parameter(rng.uniform(-k, k, (input_size, hidden_size)), dtype, device)
        self.V = host_parameter(_recurrent_matrix(init, hidden_size, k, rng), dtype, device)
        self.b = host_parameter(rng.uniform(-k, k, (hidden_size,)), dtype, device)

    def project_input(self, x: Tensor) -> Tensor:
        """xw = x W + b for x (..., E) → (..., H): every time step's input term in one product."""
        if x.ndim == 2:                                   # one step: (B, E) → (B, H)
            return addmm(self.b, x, self.W)
        lead = x.shape[:-1]
        return addmm(self.b, x.reshape(math.prod(lead), self.input_size), self.W).reshape(*lead, self.hidden_size)

    def step(self, xw_t: Tensor, h_prev: Tensor) -> Tensor:
        """h_t = tanh(xw_t + h_{t−1} V): one step from the projected input xw_t = x_t W + b."""
        return addmm(xw_t, h_prev, self.V).tanh()

    def initial_state(self, batch: int) -> Tensor:
        """The zero state h_0, (batch, H)."""
        return zeros(batch, self.hidden_size, dtype=self.V.dtype, device=self.V.device)

    def hidden(self, state: Tensor) -> Tensor:
        """The h of a state (the vanilla state is h itself)."""
        return state

    def forward(self, x_t: Tensor, h_prev: Tensor = None) -> Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.input_size:
            raise ShapeError(f"RNNCell: x_t of shape {x_t.shape}, want (B, {self.input_size}) "
                             f"to match W of shape {self.W.shape}")
        if h_prev is None:
            h_prev = self.initial_state(x_t.shape[0])
        elif h_prev.shape != (x_t.shape[0], self.hidden_size):
            raise ShapeError(f"RNNCell: h_prev of shape {h_prev.shape}, want "
                             f"({x_t.shape[0]}, {self.hidden_size}) for x_t of shape {x_t.shape}")
        return self.step(self.project_input(x_t), h_prev)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, init={self.init!r}"


class RNN(Recurrent):
    """A (multi-layer, optionally bidirectional) vanilla RNN over batch-first sequences.

    ``outputs, h_last = rnn(x, h0=None, lengths=None)``; ``rnn.cells[k]`` is an :class:`RNNCell`
    running h_t = tanh(x_t W + h_{t-1} V + b). Shapes, lengths and padding, truncation,
    ``return_states`` and ``need_outputs`` are those of the shared unroller,
    :class:`~tinygrad_rnn.nn.recurrent.Recurrent` (read its docstring); ``init`` picks V.
    """

    cell_class = RNNCell

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, init="uniform",
                 truncate=None, *, rng=None, dtype=None, device=None):
        super().__init__(input_size, hidden_size, num_layers, bidirectional, truncate,
                         rng=rng, dtype=dtype, device=device, init=init)

    def extra_repr(self):
        return super().extra_repr() + f", init={self.cells[0].init!r}"
