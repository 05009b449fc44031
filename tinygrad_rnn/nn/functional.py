"""Losses and sequence helpers, composed from Tensor ops (no hand-written backward here).

Sequences are batch first: ``x`` is (B, T, …) and ``lengths`` (B,) holds each sequence's true
length; steps ``t >= lengths[b]`` are padding. ``sequence_mask(lengths, T)[b, t]`` is
``t < lengths[b]``.
"""

from __future__ import annotations

import math

import numpy as np

from ..backend import DeviceError
from ..ops import GetItem, where
from ..tensor import ShapeError, Tensor


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """log softmax(x) = x − max(x) − log Σ exp(x − max(x)) along ``axis`` (stable for huge logits)."""
    return x.log_softmax(axis=axis)


def host_lengths(lengths, batch: int, steps: int, *, allow_zero: bool = True) -> np.ndarray:
    """``lengths`` (list, NumPy/CuPy array or Tensor) as a checked host int64 array of shape (B,)."""
    if isinstance(lengths, Tensor):
        lengths = lengths.numpy()
    elif hasattr(lengths, "shape") and not isinstance(lengths, np.ndarray):
        from ..backend import backend_of_array  # a device array: one copy to the host

        backend = backend_of_array(lengths)
        if backend is not None:  # another library's array: np.asarray below
            lengths = backend.to_host(lengths)
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ShapeError(
            f"lengths of shape {lengths.shape} for a batch of {batch} sequences (want ({batch},))"
        )
    low = 0 if allow_zero else 1
    bad = np.flatnonzero((lengths < low) | (lengths > steps))
    if bad.size:
        b = int(bad[0])
        raise ValueError(
            f"lengths[{b}] = {int(lengths[b])} is outside [{low}, {steps}] "
            f"(the sequences have {steps} time steps)"
        )
    return lengths.astype(np.int64)


def sequence_mask(lengths, steps: int, device=None) -> Tensor:
    """Boolean (B, T) tensor: True at true steps ``t < lengths[b]``, False at padding."""
    lengths = host_lengths(lengths, len(lengths), steps)
    return Tensor(np.arange(steps)[None, :] < lengths[:, None], device=device)


def masked_mean(x: Tensor, lengths) -> Tensor:
    """Mean of ``x`` (B, T, …) over each sequence's true steps → (B, …). Padding is ignored.

    mean_b = Σ_{t < len_b} x[b, t] / len_b (every length must be at least 1).
    """
    if x.ndim < 2:
        raise ShapeError(f"masked_mean needs x of shape (B, T, ...), got {x.shape}")
    B, T = x.shape[:2]
    lengths = host_lengths(lengths, B, T, allow_zero=False)
    mask = Tensor(
        (np.arange(T)[None, :] < lengths[:, None]).reshape((B, T) + (1,) * (x.ndim - 2)), device=x.backend
    )
    counts = Tensor(lengths.reshape((B,) + (1,) * (x.ndim - 2)), device=x.backend, dtype=x.dtype)
    return where(mask, x, 0.0).sum(axis=1) / counts


def last_state(outputs: Tensor, lengths) -> Tensor:
    """Each sequence's output at its true last step: ``outputs[b, lengths[b] − 1]`` → (B, H).

    With padding, ``outputs[:, -1]`` would be a padded (zero) step for every shorter sequence.
    """
    if outputs.ndim < 2:
        raise ShapeError(f"last_state needs outputs of shape (B, T, ...), got {outputs.shape}")
    B, T = outputs.shape[:2]
    lengths = host_lengths(lengths, B, T, allow_zero=False)
    rows = outputs.backend.asarray(np.arange(B))
    steps = outputs.backend.asarray(lengths - 1)
    # valid by construction: rows < B, and host_lengths checked 1 <= lengths[b] <= T on the host
    return GetItem.apply(outputs, index=(rows, steps), checked=False)


def mse(prediction: Tensor, targets: Tensor) -> Tensor:
    """The mean squared error mean((prediction − targets)²), over every element.

    Both of one shape (a regression head's (B, 1) and its targets): broadcasting a (B,) against a
    (B, 1) would silently average B² differences instead of B.
    """
    if prediction.shape != targets.shape:
        raise ShapeError(
            f"mse: prediction of shape {prediction.shape} and targets of shape "
            f"{targets.shape} differ (want one shape)"
        )
    return ((prediction - targets) ** 2).mean()


def cross_entropy(logits: Tensor, targets, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of the target classes under softmax(logits).

    ``logits`` (B, C) with ``targets`` (B,), or (B, T, C) with (B, T) — a loss per time step.
    loss_i = −log softmax(logits_i)[targets_i]; positions whose target is ``ignore_index``
    (e.g. padding) contribute nothing and get zero gradient. ``reduction``: "mean" (over the
    positions not ignored, as in PyTorch), "sum", or "none" (shape of ``targets``, 0 where
    ignored). Stable for logits of any size (log_softmax subtracts the max first).
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if logits.ndim not in (2, 3):
        raise ShapeError(f"cross_entropy needs logits of shape (B, C) or (B, T, C), got {logits.shape}")
    if not isinstance(targets, Tensor):
        targets = Tensor(targets, device=logits.backend)  # lists and arrays: an explicit copy here
    if targets.backend is not logits.backend:
        raise DeviceError(
            f"cross_entropy: logits on {logits.device}, targets on {targets.device}; "
            "move them to one device with .to(device)"
        )
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class ids, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ShapeError(
            f"cross_entropy: targets of shape {targets.shape} do not fit logits of shape "
            f"{logits.shape} (want targets of shape {logits.shape[:-1]})"
        )
    C = logits.shape[-1]
    N = math.prod(targets.shape)
    backend = logits.backend
    flat = targets._data.reshape(N)
    keep = flat != ignore_index
    out_of_range = keep & ((flat < 0) | (flat >= C))
    if bool(out_of_range.any()):  # one device→host read, for the whole batch
        bad = int(backend.to_host(flat[out_of_range][:1])[0])
        raise IndexError(
            f"target {bad} is out of range for {C} classes (valid: 0..{C - 1}, "
            f"or ignore_index={ignore_index})"
        )
    # Ignored positions pick class 0 (any valid class) and are masked out below; every picked
    # index is then in range by construction (checked just above), so the pick is not re-checked.
    safe_targets = backend.xp.where(keep, flat, 0)
    logp = logits.reshape(N, C).log_softmax(axis=-1)
    picked = GetItem.apply(logp, index=(backend.asarray(np.arange(N)), safe_targets), checked=False)
    keep = Tensor(keep, device=backend)
    losses = where(keep, -picked, 0.0)
    if reduction == "none":
        return losses.reshape(targets.shape)
    if reduction == "sum":
        return losses.sum()
    # mean over kept positions; the count stays on the device (0 kept → nan, as in PyTorch)
    count = keep.astype(logits.dtype).sum()
    return losses.sum() / count
