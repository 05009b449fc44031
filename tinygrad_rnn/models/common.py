"""What the three task models share: turning inputs into tensors, and the padding-aware loss.

Inputs may be Tensors, NumPy arrays or lists: token ids ``(B, T)`` become an integer Tensor on
the model's device; ``lengths`` ``(B,)`` become a checked host array (the RNN builds its masks
from it on the host, so reading it once here saves one device→host copy per use).

Padding never counts in a loss: :func:`masked_targets` writes ``IGNORE_INDEX`` at every step
``t >= lengths[b]``, and :func:`~tinygrad_rnn.nn.functional.cross_entropy` skips those positions —
whatever id the data used to pad the targets.
"""

from __future__ import annotations

import numpy as np

from ..backend import DeviceError
from ..nn.functional import cross_entropy, host_lengths
from ..ops import where
from ..tensor import ShapeError, Tensor

IGNORE_INDEX = -100  # the target value cross_entropy skips (PyTorch's default)


def id_tensor(ids, backend, name: str = "tokens") -> Tensor:
    """``ids`` (B, T) as an integer Tensor on ``backend``; clear errors for shape, dtype, device."""
    if isinstance(ids, Tensor):
        if ids.backend is not backend:
            raise DeviceError(f"{name} are on device {ids.device!r} but the model is on "
                              f"{backend.name!r}; move one of them with .to(device)")
    else:
        ids = Tensor(ids if hasattr(ids, "shape") else np.asarray(ids), device=backend)
    if ids.ndim != 2:
        raise ShapeError(f"{name} must be a (batch, time) array of token ids, got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer token ids, got dtype {ids.dtype}")
    if ids.shape[1] == 0:
        raise ValueError(f"{name} have no time steps (shape {ids.shape})")
    return ids


def lengths_array(lengths, batch: int, steps: int, *, allow_zero: bool = False) -> np.ndarray:
    """``lengths`` as a checked host int64 array (B,); ``None`` means every sequence is full length."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    return host_lengths(lengths, batch, steps, allow_zero=allow_zero)


def masked_targets(targets, lengths: np.ndarray, backend, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """``targets`` (B, T) with ``ignore_index`` at every padded step ``t >= lengths[b]``."""
    targets = id_tensor(targets, backend, name="targets")
    B, T = targets.shape
    if len(lengths) != B:
        raise ShapeError(f"targets of shape {targets.shape} but {len(lengths)} lengths")
    keep = Tensor(np.arange(T)[None, :] < np.asarray(lengths)[:, None], device=backend)
    return where(keep, targets, ignore_index)


def padded_loss(logits: Tensor, targets, lengths, reduction: str = "mean") -> Tensor:
    """Cross-entropy of per-step ``logits`` (B, T, K) against ``targets`` (B, T), padding ignored.

    ``reduction="mean"`` averages over the true steps of the whole batch (each token counts once,
    so long sequences weigh more); ``"sum"`` adds them; ``"none"`` gives (B, T), 0 at padding.
    """
    B, T = logits.shape[:2]
    lengths = lengths_array(lengths, B, T, allow_zero=True)
    return cross_entropy(logits, masked_targets(targets, lengths, logits.backend),
                         ignore_index=IGNORE_INDEX, reduction=reduction)
