"""What the three task models share: turning inputs into tensors, the padding-aware loss, and
the Embedding → RNN → Linear stack of the classifier and the tagger.

Inputs may be Tensors, NumPy arrays or lists: token ids ``(B, T)`` become an integer Tensor on
the model's device; ``lengths`` ``(B,)`` become a checked host array (the RNN builds its masks
from it on the host, so reading it once here saves one device→host copy per use).

Padding never counts in a loss: :func:`masked_targets` writes ``IGNORE_INDEX`` at every step
``t >= lengths[b]``, and :func:`~tinygrad_rnn.nn.functional.cross_entropy` skips those positions —
whatever id the data used to pad the targets.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..backend import DeviceError, host_rng
from ..nn import Embedding, Linear, Module, recurrent_layer
from ..nn.functional import cross_entropy, host_lengths, sequence_mask
from ..nn.recurrent import as_parts, from_parts
from ..ops import where
from ..tensor import ShapeError, Tensor, no_grad

IGNORE_INDEX = -100  # the target value cross_entropy skips (PyTorch's default)


def id_tensor(ids, backend, name: str = "tokens") -> Tensor:
    """``ids`` (B, T) as an integer Tensor on ``backend``; clear errors for shape, dtype, device."""
    if isinstance(ids, Tensor):
        if ids.backend is not backend:
            raise DeviceError(
                f"{name} are on device {ids.device!r} but the model is on "
                f"{backend.name!r}; move one of them with .to(device)"
            )
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
    keep = sequence_mask(np.asarray(lengths), T, device=backend)
    return where(keep, targets, ignore_index)


def padded_loss(logits: Tensor, targets, lengths, reduction: str = "mean") -> Tensor:
    """Cross-entropy of per-step ``logits`` (B, T, K) against ``targets`` (B, T), padding ignored.

    ``reduction="mean"`` averages over the true steps of the whole batch (each token counts once,
    so long sequences weigh more); ``"sum"`` adds them; ``"none"`` gives (B, T), 0 at padding.
    """
    B, T = logits.shape[:2]
    lengths = lengths_array(lengths, B, T, allow_zero=True)
    return cross_entropy(
        logits,
        masked_targets(targets, lengths, logits.backend),
        ignore_index=IGNORE_INDEX,
        reduction=reduction,
    )


class EmbedRNNHead(Module):
    """``embed`` → ``rnn`` → ``head``: token ids become vectors x_t, the recurrent layer runs over
    them — h_t = tanh(x_t W + h_{t-1} V + b) for ``cell="rnn"``, the LSTM or GRU step for
    ``"lstm"``/``"gru"`` (:mod:`tinygrad_rnn.nn.cells`) — and a Linear reads the (D·H)-wide
    states h_t (D = 2 directions when bidirectional). The classifier pools the states before its
    head; the tagger applies its head at every step.
    """

    def __init__(
        self,
        vocab_size,
        embed_dim,
        hidden_size,
        num_outputs,
        num_layers,
        bidirectional,
        padding_idx,
        *,
        cell="rnn",
        init,
        rng,
        dtype,
        device,
    ):
        layer_args = {"rng": rng or host_rng(), "dtype": dtype, "device": device}
        self.cell = cell
        self.embed = Embedding(vocab_size, embed_dim, padding_idx, **layer_args)
        self.rnn = recurrent_layer(
            cell, embed_dim, hidden_size, num_layers, bidirectional, init=init, **layer_args
        )
        self.head = Linear(hidden_size * self.rnn.directions, num_outputs, **layer_args)

    def run_rnn(self, tokens, lengths, *, allow_zero: bool = False):
        """``(outputs (B, T, D·H), h_last (L·D, B, H), lengths as a host array)`` for token ids
        (B, T); ``h_last`` is the h part of the final states (the LSTM's c is not read)."""
        tokens = id_tensor(tokens, self.embed.weight.backend)
        B, T = tokens.shape
        lengths = lengths_array(lengths, B, T, allow_zero=allow_zero)
        outputs, last = self.rnn(self.embed(tokens), lengths=lengths)
        return outputs, self.rnn.cells[0].hidden(last), lengths

    def extra_repr(self):
        return f"cell={self.cell!r}"


def per_layer(state) -> list:
    """A stacked state — a Tensor (L, B, H) or, for the LSTM, a tuple of them — as the list of
    its L one-layer states (each (B, H), or a tuple (h, c) of them): what the cells step from."""
    return [from_parts(layer) for layer in zip(*(part.unbind(axis=0) for part in as_parts(state)))]


@contextlib.contextmanager
def inference(model):
    """Eval mode (no dropout) and no graph for the block; every module's mode is restored after
    (not just the top one's: a submodule left in train mode on purpose stays so). Used by
    ``Seq2Seq.generate``/``score`` and :func:`tinygrad_rnn.train.evaluate`, for any model."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
