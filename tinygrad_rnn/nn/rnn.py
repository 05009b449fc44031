"""The tutorial's recurrent cell and the unroller that runs it over time.

One step (row-vector convention, x_t of shape (B, E), h of shape (B, H))::

    h_t = tanh(x_t W + h_{t-1} V + b)          W (E, H), V (H, H), b (H,)

``RNN`` applies the same cell at t = 1..T. Backpropagation through time is nothing more than
``loss.backward()`` walking this unrolled chain back from t = T to t = 1; the hand-derived
equations in :mod:`tinygrad_rnn.bptt.reference` give the same numbers (tested to 1e-10).
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import host_rng
from ..ops import addmm, concatenate, stack, where
from ..tensor import ShapeError, Tensor, mark_time_step, zeros
from .functional import host_lengths
from .layers import _check_size, host_parameter
from .module import Module

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

    Each step multiplies the backward signal by diag(1 − h_t²) Vᵀ, so V's singular values decide
    whether ∂L/∂h_t vanishes or explodes over many steps — that is why ``init`` matters.
    ``h_prev=None`` means a zero state.
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

    def forward(self, x_t: Tensor, h_prev: Tensor = None) -> Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.input_size:
            raise ShapeError(f"RNNCell: x_t of shape {x_t.shape}, want (B, {self.input_size}) "
                             f"to match W of shape {self.W.shape}")
        if h_prev is None:
            h_prev = zeros(x_t.shape[0], self.hidden_size, dtype=self.V.dtype, device=self.V.device)
        elif h_prev.shape != (x_t.shape[0], self.hidden_size):
            raise ShapeError(f"RNNCell: h_prev of shape {h_prev.shape}, want "
                             f"({x_t.shape[0]}, {self.hidden_size}) for x_t of shape {x_t.shape}")
        return (x_t @ self.W + h_prev @ self.V + self.b).tanh()

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, init={self.init!r}"


class RNN(Module):
    """A (multi-layer, optionally bidirectional) vanilla RNN over batch-first sequences.

    ``outputs, h_last = rnn(x, h0=None, lengths=None)``

    * ``x`` (B, T, input_size); ``outputs`` (B, T, hidden_size × D), D = 2 if bidirectional else 1
      (the forward and backward directions' states side by side);
    * ``h0`` and ``h_last`` (num_layers × D, B, hidden_size), ordered like ``rnn.cells``:
      layer 0 forward, layer 0 backward, layer 1 forward, …; ``h0=None`` means zeros;
    * layer l > 0 reads the outputs of layer l − 1.

    **The math** is exactly that of the cells: ``rnn.cells[k]`` runs
    ``h_t = tanh(x_t W + h_{t-1} V + b)``. For speed the input term is computed for all steps at
    once, ``X W + b`` as ONE (B·T, E) @ (E, H) matrix product, then split into steps; only the
    ``h_{t-1} V`` product has to wait for the previous step. Same math, same gradients; the cost
    of forward and backward grows linearly in T.

    **Lengths** (B,) marks the true length of each sequence; the rest is padding. At a padded
    step the state is not changed (``h_t = where(t < len, new, h_{t-1})``) and the output is 0,
    so ``h_last`` is each sequence's state at its true last step, and the backward direction
    starts at each sequence's true end (its state stays ``h0`` through the padding). Outputs and
    gradients therefore do not depend on how much padding there is.

    **Truncated BPTT**: with ``truncate=k`` the state is detached every k steps, so gradients
    flow back through at most k steps of the recurrence. ``k >= T`` is plain BPTT exactly.
    The k-step chunks are counted along each sequence from where its direction starts (its first
    token forward, its true last token backward), so truncation, too, ignores the padding.

    **Observing the states** (for BPTT tools): ``rnn(x, lengths=..., return_states=True)``
    returns a third value ``states``: one list per cell (``rnn.cells`` order) of T tensors
    (B, hidden_size), where ``states[k][t]`` is the state h_t of cell k at time t (0-based, in
    time order for both directions). These are the very tensors the recurrence continues from,
    so ``states[0][t].retain_grad()`` before ``loss.backward()`` leaves the total gradient
    ∂L/∂h_t (through the output at t and through all later steps) in ``states[0][t].grad``.
    At padded steps the state is the carried-over state (outputs there are 0).

    **Only the last state?** ``rnn(x, need_outputs=False)`` returns ``(None, h_last)``: the last
    layer's T states are not stacked into ``outputs`` (one (B, T, H) array and copy fewer per
    forward — e.g. a classifier that reads h_T only). The math and the gradients are the same.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, init="uniform",
                 truncate=None, *, rng=None, dtype=None, device=None):
        _check_size("input_size", input_size)
        _check_size("hidden_size", hidden_size)
        _check_size("num_layers", num_layers)
        if truncate is not None:
            _check_size("truncate", truncate)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.truncate = bool(bidirectional), truncate
        self.directions = 2 if bidirectional else 1
        rng = rng or host_rng()
        self.cells = [RNNCell(input_size if layer == 0 else hidden_size * self.directions, hidden_size,
                              init, rng=rng, dtype=dtype, device=device)
                      for layer in range(num_layers) for _ in range(self.directions)]

    def forward(self, x: Tensor, h0: Tensor = None, lengths=None, return_states: bool = False,
                need_outputs: bool = True):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ShapeError(f"RNN: x of shape {x.shape}, want (B, T, {self.input_size})")
        B, T, _ = x.shape
        if T == 0:
            raise ValueError("RNN: x has no time steps (T = 0)")
        n_cells, H = len(self.cells), self.hidden_size
        if h0 is not None and h0.shape != (n_cells, B, H):
            raise ShapeError(f"RNN: h0 of shape {h0.shape}, want (num_layers × directions, B, H) = "
                             f"({n_cells}, {B}, {H}) for x of shape {x.shape}")
        initial = h0.unbind(axis=0) if h0 is not None else [None] * n_cells

        mask = step_masks = None
        if lengths is not None:
            lengths = host_lengths(lengths, B, T)
            if (lengths < T).any():  # all full length: no masking needed (same values)
                mask = Tensor((np.arange(T)[None, :] < lengths[:, None])[:, :, None], device=x.backend)
                step_masks = mask.unbind(axis=1)  # T boolean (B, 1) tensors, no graph

        layer_input, finals, all_states = x, [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.directions):
                k = layer * self.directions + direction
                cuts = self._truncation_cuts(lengths, B, T, reverse=direction == 1, device=x.backend)
                states, h = self._run(self.cells[k], layer_input, initial[k], step_masks, cuts,
                                      reverse=direction == 1)
                finals.append(h)
                all_states.append(states)
                if not need_outputs and layer == self.num_layers - 1:
                    continue                                # nobody reads the last layer's outputs
                out = stack(states, axis=1)                 # (B, T, H), in time order
                if mask is not None:
                    out = where(mask, out, 0.0)             # outputs at padded steps are 0
                outs.append(out)
            layer_input = None if not outs else outs[0] if len(outs) == 1 else concatenate(outs, axis=2)
        h_last = stack(finals, axis=0)
        return (layer_input, h_last, all_states) if return_states else (layer_input, h_last)

    def _truncation_cuts(self, lengths, B: int, T: int, reverse: bool, device):
        """Where truncated BPTT detaches the state: {t: True (every row) or a (B, 1) row mask}.

        Step t is position p = t (forward) or p = len − 1 − t (backward) of its sequence; the
        state entering position p is cut when p > 0 and p is a multiple of k. Padded steps
        (p outside [0, len)) are never cut, so a carried-over state keeps its gradient path.
        """
        if self.truncate is None:
            return {}
        lens = np.full(B, T) if lengths is None else lengths
        cuts = {}
        for t in range(T):
            p = lens - 1 - t if reverse else np.full(B, t)
            rows = (p > 0) & (p < lens) & (p % self.truncate == 0)
            if rows.all():
                cuts[t] = True
            elif rows.any():
                cuts[t] = Tensor(rows[:, None], device=device)
        return cuts

    def _run(self, cell: RNNCell, x: Tensor, h: Tensor, step_masks, cuts, reverse: bool):
        """Unroll one cell over x (B, T, E) → (list of T states in time order, final state)."""
        B, T, E = x.shape
        # Input term of every step at once: one (B·T, E) @ (E, H) product, bias folded in.
        xw = addmm(cell.b, x.reshape(B * T, E), cell.W).reshape(B, T, self.hidden_size)
        xw_steps = xw.unbind(axis=1)
        if h is None:
            h = zeros(B, self.hidden_size, dtype=xw.dtype, device=xw.backend)
        states = [None] * T
        for t in range(T - 1, -1, -1) if reverse else range(T):
            mark_time_step(t + 1)                           # bptt.trace(): ops below are step t + 1
            cut = cuts.get(t)
            if cut is not None:                             # truncated BPTT: cut the chain here
                h = h.detach() if cut is True else where(cut, h.detach(), h)
            h_new = addmm(xw_steps[t], h, cell.V).tanh()   # h_t = tanh(x_t W + b + h_{t-1} V)
            h = h_new if step_masks is None else where(step_masks[t], h_new, h)
            states[t] = h
        mark_time_step(None)
        return states, h

    def extra_repr(self):
        extra = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.bidirectional:
            extra += ", bidirectional=True"
        if self.truncate is not None:
            extra += f", truncate={self.truncate}"
        return extra + f", init={self.cells[0].init!r}"
