"""The unroller: one recurrent cell applied at t = 1..T, written once for every cell type.

It follows the cell protocol of :mod:`.cells` (``nn.RNNCell``, ``nn.LSTMCell``, ``nn.GRUCell``):

* ``cell.project_input(x)``: x (..., E) → x W + b, the input term of every step at once;
* ``cell.step(xw_t, state)``: one time step from the projected input xw_t (B, G·H) and the
  previous state → the new state;
* ``cell.state_names``: the parts of a state, ``("h",)`` or ``("h", "c")``;
* ``cell.initial_state(B)``: the zero state; ``cell.hidden(state)``: the h the layer outputs.

A state is a Tensor h (vanilla, GRU) or a tuple (h, c) (LSTM). The unroller treats every state
as a tuple of tensors, so masking, truncation, ``h0`` and ``h_last`` apply to each component
alike and a new cell plugs in without touching this file. Backpropagation through time is
``loss.backward()`` walking the unrolled chain back from t = T to t = 1. The layers ``nn.RNN``,
``nn.LSTM``, ``nn.GRU`` are this unroller with a cell (:mod:`.recurrent_layers`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..backend import host_rng
from ..forward import checkpoint as recompute
from ..ops import concatenate, stack, where
from ..tensor import ShapeError, Tensor, mark_time_step
from .cells import Cell, as_parts, from_parts
from .functional import host_lengths, sequence_mask
from .layers import _check_size
from .module import Module


class Recurrent(Module):
    """A (multi-layer, optionally bidirectional) recurrent layer over batch-first sequences.

    Subclasses name their cell with ``cell_class``; ``cell_options`` go to every cell.

    ``outputs, h_last = layer(x, h0=None, lengths=None)``

    * ``x`` (B, T, input_size); ``outputs`` (B, T, hidden_size × D), D = 2 if bidirectional else 1
      (the forward and backward directions' hidden states side by side);
    * ``h0`` and ``h_last`` (num_layers × D, B, hidden_size), ordered like ``layer.cells``:
      layer 0 forward, layer 0 backward, layer 1 forward, …; ``h0=None`` means zeros. A cell
      whose state has several components (LSTM: (h, c)) takes and returns a tuple of them;
    * layer l > 0 reads the outputs of layer l − 1.

    **The math** is exactly that of the cells: ``layer.cells[k]`` runs
    ``state_t = cell.step(xw_t, state_{t-1})``. The input term ``xw = cell.project_input(x)`` is
    ONE (B·T, E) @ (E, G·H) matrix product for all steps, split into steps; only the recurrent
    part of the step has to wait for the previous step. The cost of forward and backward grows
    linearly in T.

    **Lengths** (B,) marks the true length of each sequence; the rest is padding. At a padded
    step the whole state is not changed (``state_t = where(t < len, new, state_{t-1})``) and the
    output is 0, so ``h_last`` is each sequence's state at its true last step, and the backward
    direction starts at each sequence's true end (its state stays ``h0`` through the padding).
    Outputs and gradients therefore do not depend on how much padding there is, nor on what it
    holds: x is replaced by zeros at padded steps before the cell sees it, so even nan or inf
    there never reaches a gradient.

    **Truncated BPTT**: with ``truncate=k`` the state is detached every k steps, so gradients
    flow back through at most k steps of the recurrence. ``k >= T`` is plain BPTT exactly.
    The k-step chunks are counted along each sequence from where its direction starts (its first
    token forward, its true last token backward), so truncation, too, ignores the padding.

    **Checkpointed BPTT**: with ``checkpoint=k`` only the state every k steps is kept; each
    k-step segment runs without recording and runs again, recording, in the backward
    (:func:`tinygrad_rnn.forward.checkpoint`). Memory for the recurrence drops from every step's
    activations to one state per k steps plus one segment's, for about one more forward pass;
    values and gradients are those of plain BPTT (to rounding). Works with lengths,
    bidirectional, several layers and ``truncate``; not with ``return_states`` (the states
    inside a segment are not kept).

    **Observing the states** (for BPTT tools): ``layer(x, lengths=..., return_states=True)``
    returns a third value ``states``: one list per cell (``layer.cells`` order) of T states, where
    ``states[k][t]`` is the state of cell k at time t (0-based, in time order for both
    directions): a (B, hidden_size) Tensor h_t, or the tuple (h_t, c_t) for an LSTM. These are the
    very tensors the recurrence continues from, so ``states[0][t].retain_grad()`` before
    ``loss.backward()`` leaves the total gradient ∂L/∂h_t (through the output at t and through all
    later steps) in ``states[0][t].grad``. At padded steps the state is the carried-over state
    (outputs there are 0). (One caveat for the LSTM with padding: h_t is computed from the cell's
    new c before the padding mask picks it, so a retained masked c_t receives only the gradient
    from later steps, not the one through h_t.)

    **Only the last state?** ``layer(x, need_outputs=False)`` returns ``(None, h_last)``: the last
    layer's T states are not stacked into ``outputs`` (one (B, T, H) array and copy fewer per
    forward — e.g. a classifier that reads h_T only). The math and the gradients are the same.
    """

    cell_class: ClassVar[type[Cell]]  # set by each subclass: nn.RNN → RNNCell, nn.LSTM → LSTMCell, …

    def __init__(
        self,
        input_size,
        hidden_size,
        num_layers=1,
        bidirectional=False,
        truncate=None,
        *,
        checkpoint=None,
        rng=None,
        dtype=None,
        device=None,
        **cell_options,
    ):
        _check_size("input_size", input_size)
        _check_size("hidden_size", hidden_size)
        _check_size("num_layers", num_layers)
        if truncate is not None:
            _check_size("truncate", truncate)
        if checkpoint is not None:
            _check_size("checkpoint", checkpoint)
        self.checkpoint = checkpoint
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.truncate = bool(bidirectional), truncate
        self.directions = 2 if bidirectional else 1
        rng = rng or host_rng()
        self.cells = [
            self.cell_class(
                input_size if layer == 0 else hidden_size * self.directions,
                hidden_size,
                **cell_options,
                rng=rng,
                dtype=dtype,
                device=device,
            )
            for layer in range(num_layers)
            for _ in range(self.directions)
        ]

    def forward(
        self, x: Tensor, h0=None, lengths=None, return_states: bool = False, need_outputs: bool = True
    ):
        name = type(self).__name__
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ShapeError(f"{name}: x of shape {x.shape}, want (B, T, {self.input_size})")
        B, T, _ = x.shape
        if T == 0:
            raise ValueError(f"{name}: x has no time steps (T = 0)")
        initial = self._initial_states(h0, x)
        if self.checkpoint is not None and return_states:
            raise ValueError(
                f"{name}: return_states=True needs every state kept; checkpoint="
                f"{self.checkpoint} keeps one per segment (build the layer without checkpoint)"
            )

        mask = step_masks = None
        if lengths is not None:
            lengths = host_lengths(lengths, B, T)
            if (lengths < T).any():  # all full length: no masking needed (same values)
                mask = sequence_mask(lengths, T, device=x.backend).reshape(B, T, 1)
                step_masks = mask.unbind(axis=1)  # T boolean (B, 1) tensors, no graph
                # Padded steps still run the cell (the mask then keeps the old state), and the
                # backward of that choice sends them a zero gradient; but 0 · nan is nan, so a
                # nan or inf there (or an x W that overflows) would reach every gradient. So the
                # cell sees zeros at padded steps: finite values whose zero gradient stays zero.
                x = where(mask, x, 0.0)

        layer_input, finals, all_states = x, [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(self.directions):
                k = layer * self.directions + direction
                reverse = direction == 1
                cuts = self._truncation_cuts(lengths, B, T, reverse, device=x.backend)
                cell = self.cells[k]
                keep = need_outputs or layer < self.num_layers - 1  # else nobody reads the outputs
                if self.checkpoint is not None:  # segments recomputed in the backward
                    out, final = self._unroll_checkpointed(
                        cell, layer_input, initial[k], step_masks, cuts, reverse, keep
                    )
                else:
                    states = self._unroll(cell, layer_input, initial[k], step_masks, cuts, reverse)
                    final = as_parts(states[0 if reverse else T - 1])
                    all_states.append(states)
                    out = _hidden_outputs(cell, states) if keep else None
                finals.append(final)
                if out is not None:
                    outs.append(out if mask is None else where(mask, out, 0.0))  # 0 at padded steps
            if outs:  # none from a last layer nobody reads
                layer_input = outs[0] if len(outs) == 1 else concatenate(outs, axis=2)
        outputs = layer_input if need_outputs else None
        # h_last per state component: (num_layers × D, B, H) each, in cells order
        last = from_parts(tuple(stack(list(part), axis=0) for part in zip(*finals)))
        return (outputs, last, all_states) if return_states else (outputs, last)

    def _initial_states(self, h0, x: Tensor) -> list:
        """``h0`` split into one state per cell (None: the cell's zero state), shapes checked."""
        n_cells, B, H = len(self.cells), x.shape[0], self.hidden_size
        if h0 is None:
            return [self.cells[k].initial_state(B) for k in range(n_cells)]
        parts, names = as_parts(h0), self.cells[0].state_names
        name = type(self).__name__
        if len(parts) != len(names):
            want = (
                "a tensor h0"
                if len(names) == 1
                else f"a tuple of {len(names)} tensors ({', '.join(n + '0' for n in names)})"
            )
            raise ShapeError(f"{name}: h0 must be {want}, got {type(h0).__name__} of {len(parts)}")
        for part in parts:
            if part.shape != (n_cells, B, H):
                raise ShapeError(
                    f"{name}: h0 of shape {part.shape}, want (num_layers × directions, B, H) = "
                    f"({n_cells}, {B}, {H}) for x of shape {x.shape}"
                )
        per_part = [part.unbind(axis=0) for part in parts]
        return [from_parts(tuple(p[k] for p in per_part)) for k in range(n_cells)]

    def _truncation_cuts(self, lengths, B: int, T: int, reverse: bool, device):
        """Where truncated BPTT detaches the state: {t: True (every row) or a (B, 1) row mask}.

        Step t is position p = t (forward) or p = len − 1 − t (backward) of its sequence; the
        state entering position p is cut when p > 0 and p is a multiple of k. Padded steps
        (p outside [0, len)) are never cut, so a carried-over state keeps its gradient path.
        """
        if self.truncate is None:
            return {}
        lens = np.full(B, T) if lengths is None else lengths
        cuts: dict[int, bool | Tensor] = {}
        for t in range(T):
            p = lens - 1 - t if reverse else np.full(B, t)
            rows = (p > 0) & (p < lens) & (p % self.truncate == 0)
            if rows.all():
                cuts[t] = True
            elif rows.any():
                cuts[t] = Tensor(rows[:, None], device=device)
        return cuts

    @staticmethod
    def _unroll(cell, x: Tensor, state, step_masks, cuts, reverse: bool, first_step: int = 0) -> list:
        """Run one cell over x (B, T, E) from ``state`` → the list of its T states in time order.
        ``first_step``: where x starts in the whole sequence (a checkpointed segment's offset)."""
        B, T, _ = x.shape
        xw_steps = cell.project_input(x).unbind(axis=1)  # x_t W + b for every t: one matmul
        states = [None] * T
        for t in range(T - 1, -1, -1) if reverse else range(T):
            mark_time_step(first_step + t + 1)  # bptt.trace(): ops below are this time step
            cut = cuts.get(t)
            if cut is not None:  # truncated BPTT: cut the chain here
                state = from_parts(
                    tuple(s.detach() if cut is True else where(cut, s.detach(), s) for s in as_parts(state))
                )
            new = cell.step(xw_steps[t], state)
            if step_masks is not None:  # padded rows carry the whole state over
                new = from_parts(
                    tuple(where(step_masks[t], n, s) for n, s in zip(as_parts(new), as_parts(state)))
                )
            state = states[t] = new
        mark_time_step(None)
        return states

    def _unroll_checkpointed(
        self, cell, x: Tensor, state, step_masks, cuts, reverse: bool, keep_outputs: bool
    ):
        """:meth:`_unroll` in segments of ``self.checkpoint`` steps, each one checkpointed: the
        forward keeps each segment's input slice, entering state and outputs; the backward
        reruns the segment (projection and steps) recording, and walks it back.

        Returns ``(outputs, final)``: the (B, T, H) outputs in time order (None unless
        ``keep_outputs``) and the parts of the state after the last step in the direction.
        """
        T, k = x.shape[1], self.checkpoint
        bounds = [(a, min(a + k, T)) for a in range(0, T, k)]
        x_segments = x.split([b - a for a, b in bounds], axis=1)  # views; one backward for all
        pieces, parts = [None] * len(bounds), as_parts(state)
        for j in reversed(range(len(bounds))) if reverse else range(len(bounds)):
            a, b = bounds[j]
            masks = None if step_masks is None else step_masks[a:b]
            seg_cuts = {t - a: cut for t, cut in cuts.items() if a <= t < b}

            def segment(x_seg, *parts, masks=masks, seg_cuts=seg_cuts, a=a):
                states = self._unroll(cell, x_seg, from_parts(parts), masks, seg_cuts, reverse, a)
                final = as_parts(states[0 if reverse else -1])
                hidden = (_hidden_outputs(cell, states),) if keep_outputs else ()
                return hidden + final

            result = recompute(segment, x_segments[j], *parts)
            parts = result[len(result) - len(parts) :]
            if keep_outputs:
                pieces[j] = result[0]
        if not keep_outputs:
            return None, parts
        return (pieces[0] if len(pieces) == 1 else concatenate(pieces, axis=1)), parts

    def extra_repr(self):
        extra = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.bidirectional:
            extra += ", bidirectional=True"
        if self.truncate is not None:
            extra += f", truncate={self.truncate}"
        if self.checkpoint is not None:
            extra += f", checkpoint={self.checkpoint}"
        return extra


def _hidden_outputs(cell, states) -> Tensor:
    """The h of every state, stacked in time order: the layer's outputs (B, T, H)."""
    return stack([cell.hidden(s) for s in states], axis=1)
