r"""Gradient flow over time: how much of ∂L/∂h_t is left at each step t = 1..T.

For the vanilla RNN h_t = tanh(x_t W + h_{t-1} V + b) the total gradient reaching the state h_t
is (row vectors, see :mod:`tinygrad_rnn.bptt.reference`)::

    dh_t = ∂L/∂h_t|direct (through the output at t) + dh_{t+1} diag(1 − h_{t+1}²) Vᵀ

dh_t is what every ‖∂L/∂h_t‖ in this package means: the total gradient, direct part included.

Every step back multiplies by diag(1 − h²) Vᵀ; when those factors are smaller than one, dh_t
shrinks geometrically with the distance T − t — the *vanishing gradient* of the chapter's
section 3. :func:`gradient_flow` reads dh_t straight off the autograd tape (the retained
gradients of the states that ``nn.RNN(..., return_states=True)`` hands out) and returns its norm
per step; :func:`~tinygrad_rnn.plotting.bptt.plot_gradient_flow` draws it on a log scale and
:func:`format_gradient_flow` prints it in the terminal.

The same works for every cell (``nn.LSTM``, ``nn.GRU``: the cell protocol's ``cell.hidden(state)``
picks h_t out of each state). For the LSTM the cell states c_t and their gradients ∂L/∂c_t are
read off the tape too: there the gradient also travels back along dc_{t−1} = dc_t ⊙ f_t, with no
Vᵀ and no tanh' — see :mod:`tinygrad_rnn.bptt.jacobian`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..nn.functional import host_lengths
from ..nn.recurrent import as_parts
from ..plotting.bptt import draw_flows, plot_gradient_flow  # noqa: F401  (where they were before)
from ..tensor import Tensor


class StateGradients(NamedTuple):
    """One forward + backward pass of a single-layer recurrent layer, as host NumPy arrays."""

    loss: float
    states: np.ndarray  # (B, T, H): h_t for t = 1..T (index t − 1)
    grads: np.ndarray  # (B, T, H): dh_t = ∂L/∂h_t, the total gradient reaching h_t
    valid: np.ndarray  # (B, T) bool: t is a true (not padded) step of sequence b
    cells: np.ndarray | None = None  # LSTM: (B, T, H) cell states c_t; else None
    cell_grads: np.ndarray | None = None  # LSTM: (B, T, H) ∂L/∂c_t (through h_t and c_{t+1}); else None


def _check_single_layer(rnn) -> None:
    if getattr(rnn, "num_layers", None) != 1 or getattr(rnn, "directions", None) != 1:
        raise ValueError(
            "gradient flow needs a single-layer, one-direction nn.RNN, nn.LSTM or nn.GRU "
            f"(got {type(rnn).__name__} with num_layers={getattr(rnn, 'num_layers', '?')}, "
            f"bidirectional={getattr(rnn, 'bidirectional', '?')})"
        )


def _as_input(rnn, x) -> Tensor:
    if isinstance(x, Tensor):
        return x
    V = rnn.cells[0].V
    return Tensor(np.asarray(x), dtype=V.dtype, device=V.device)


def state_gradients(rnn, x, lengths, loss_fn) -> StateGradients:
    """Run ``rnn`` on ``x``, backpropagate ``loss_fn(outputs, h_last)``, return every h_t and dh_t
    (and for the LSTM every c_t and ∂L/∂c_t).

    ``loss_fn`` gets exactly what ``rnn(x, lengths=lengths)`` returns — ``outputs`` (B, T, H) and
    ``h_last`` (1, B, H), for the LSTM the pair ``(h_last, c_last)`` — and returns a scalar tensor.
    The parameters' ``.grad`` are left as they were before the call (this is a measurement, not a
    training step).
    """
    _check_single_layer(rnn)
    x = _as_input(rnn, x)
    params = rnn.parameters()
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None  # backward() adds into an existing .grad in place: keep the caller's intact
    try:
        outputs, h_last, states = rnn(x, lengths=lengths, return_states=True)
        parts = [as_parts(s) for s in states[0]]  # (h_t,) or (h_t, c_t) per step
        for state in parts:
            for part in state:
                part.retain_grad()  # keep ∂L/∂h_t (∂L/∂c_t), which backward() would otherwise discard
        loss = loss_fn(outputs, h_last)
        if not isinstance(loss, Tensor) or loss.size != 1:
            raise ValueError(
                f"loss_fn must return a scalar Tensor, got {type(loss).__name__} "
                f"of shape {getattr(loss, 'shape', '?')}"
            )
        loss.backward()
        hidden = [rnn.cells[0].hidden(s) for s in states[0]]
        hs, grads = _values_and_grads(hidden)
        others = [part for part in zip(*parts) if part[0] is not hidden[0]]  # the LSTM's c_t
        cells, cell_grads = _values_and_grads(others[0]) if others else (None, None)
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    B, T = hs.shape[:2]
    steps = np.full(B, T) if lengths is None else host_lengths(lengths, B, T)
    valid = np.arange(T)[None, :] < steps[:, None]
    return StateGradients(
        loss=float(loss.item()), states=hs, grads=grads, valid=valid, cells=cells, cell_grads=cell_grads
    )


def _values_and_grads(tensors) -> tuple[np.ndarray, np.ndarray]:
    """T retained (B, H) tensors → their values and gradients (0 where none arrived), (B, T, H) each."""
    values = np.stack([t.numpy() for t in tensors], axis=1)
    grads = np.stack(
        [np.zeros(t.shape) if t.grad is None else t.backend.to_host(t.grad) for t in tensors], axis=1
    )
    return values, grads


def flow_from_grads(grads: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(T,) mean over the batch of ‖dh_t‖, counting only sequences for which t is a true step.

    A step that no sequence reaches (all padding) is ``nan``.
    """
    norms = np.linalg.norm(grads, axis=-1)  # (B, T)
    if valid is None:
        return norms.mean(axis=0)
    counts = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, (norms * valid).sum(axis=0) / counts, np.nan)


def gradient_flow(rnn, x, lengths, loss_fn) -> np.ndarray:
    """‖∂L/∂h_t‖ for t = 1..T: the norm of the total gradient reaching each state, batch mean.

    ``rnn`` is a single-layer, one-direction ``nn.RNN``, ``nn.LSTM`` or ``nn.GRU``; ``x`` its input
    (B, T, E) (a Tensor or a NumPy array); ``lengths`` as ``nn.RNN`` takes them, or None;
    ``loss_fn(outputs, h_last)`` returns the scalar loss from ``rnn``'s two outputs. Entry ``t − 1``
    is the mean over the sequences of the batch of ‖dh_t‖₂ — read from the autograd tape, so it
    includes every path from h_t to L: the output at t and all later steps. With ``lengths``, padded
    steps are left out of the mean (``nan`` where no sequence is that long).
    """
    result = state_gradients(rnn, x, lengths, loss_fn)
    return flow_from_grads(result.grads, result.valid)


def gradient_ratio(flow: np.ndarray) -> float:
    """‖∂L/∂h_1‖ / ‖∂L/∂h_T‖: how much of the gradient at the end survives back to t = 1."""
    return float(flow[0] / flow[-1]) if flow[-1] > 0 else math.inf


# ---- showing it (the figures are drawn by tinygrad_rnn.plotting.bptt) ------------------------------


def format_gradient_flow(flow, *, max_rows=25, width=40, columns=None, title=None) -> str:
    """The flow as a terminal table with a log-scale bar per step.

    Shows at most ``max_rows`` steps, evenly spaced and always including t = 1 and t = T.
    ``columns``: extra ``name -> (T,) array`` shown beside the measured norm (e.g. the spectral
    norms of the Jacobian products from :mod:`tinygrad_rnn.bptt.jacobian`).
    """
    flow = np.asarray(flow, dtype=np.float64)
    T = len(flow)
    rows = np.unique(np.linspace(0, T - 1, min(max_rows, T)).round().astype(int))
    columns = columns or {}
    finite = flow[np.isfinite(flow) & (flow > 0)]
    lo, hi = (np.log10(finite.min()), np.log10(finite.max())) if finite.size else (0.0, 0.0)
    span = hi - lo if hi > lo else 1.0
    names = ["‖∂L/∂h_t‖"] + list(columns)
    widths = [max(len(n), 9) for n in names]
    lines = []
    if title:
        lines.append(title)
    header = f"{'t':>5}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))
    lines.append(header + f"  log scale {10**lo:.1e} … {10**hi:.1e}")
    for i in rows:
        values = [flow[i]] + [np.asarray(c, dtype=np.float64)[i] for c in columns.values()]
        cells = "  ".join(f"{v:>{w}.3e}" for v, w in zip(values, widths))
        v = flow[i]
        bar = (
            ""
            if not (np.isfinite(v) and v > 0)
            else "█" * max(1, round(1 + (width - 1) * (np.log10(v) - lo) / span))
        )
        lines.append(f"{i + 1:>5}  {cells}  {bar}")
    return "\n".join(lines)
