"""Synchronous sequence → sequence: one label per token (the chapter's section 4, docs/chapter.md),
e.g. part-of-speech tags.

::

    tokens (B, T) ──Embedding──▶ x (B, T, E) ──RNN──▶ h_1 … h_T (B, T, D·H) ──Linear──▶ logits (B, T, K)

Every step gets its own prediction ``y_t = softmax(h_t U + c)`` from the state ``h_t``. With a
bidirectional RNN, ``h_t = [→h_t ; ←h_t]`` has read the words on both sides of token t — which
is why tagging gains from it while a left-to-right reader must guess from the left context only.

The loss is the cross-entropy of every *true* step (t < ``lengths[b]``), averaged over all true
tokens of the batch; padded steps count nothing, whatever id pads the targets.
"""

from __future__ import annotations

from ..tensor import no_grad
from .common import EmbedRNNHead, lengths_array, padded_loss


class SequenceTagger(EmbedRNNHead):
    """Embedding → (multi-layer, optionally bidirectional) RNN → Linear at every step.

    ``model(tokens, lengths) -> logits (B, T, num_tags)``; ``tokens`` (B, T) integer ids,
    ``lengths`` (B,) (``None``: all full length). Logits at padded steps are meaningless (the
    RNN's output there is 0) and are ignored by ``model.loss(tokens, lengths, tags)``.
    Keyword-only ``cell`` ("rnn", "lstm", "gru"), ``init``, ``rng``, ``dtype``, ``device`` as for
    :class:`SequenceClassifier`.
    """

    def __init__(
        self,
        vocab_size,
        embed_dim,
        hidden_size,
        num_tags,
        num_layers=1,
        bidirectional=False,
        padding_idx=0,
        *,
        cell="rnn",
        init="uniform",
        rng=None,
        dtype=None,
        device=None,
    ):
        super().__init__(
            vocab_size,
            embed_dim,
            hidden_size,
            num_tags,
            num_layers,
            bidirectional,
            padding_idx,
            cell=cell,
            init=init,
            rng=rng,
            dtype=dtype,
            device=device,
        )

    @property
    def num_tags(self) -> int:
        return self.head.out_features

    def forward(self, tokens, lengths=None):
        outputs, _, _ = self.run_rnn(tokens, lengths, allow_zero=True)  # length 0: an empty sentence
        return self.head(outputs)

    def loss(self, tokens, lengths, tags, reduction: str = "mean"):
        """Cross-entropy over the true steps only; ``tags`` (B, T) padded with any id.

        ``reduction``: "mean" over the batch's true tokens, "sum", or "none" → (B, T) (0 at padding).
        """
        return self.loss_from_logits(self(tokens, lengths), tags, lengths, reduction)

    def predict(self, tokens, lengths=None) -> list:
        """The most likely tag of every true token: a list of B lists of ints (one host copy)."""
        with no_grad():
            return self.predict_from_logits(self(tokens, lengths), lengths)

    @staticmethod
    def loss_from_logits(logits, tags, lengths, reduction: str = "mean"):
        """The loss of :meth:`loss` from logits (B, T, K) already computed: steps ``t >= lengths[b]``
        are masked out by length (:func:`~tinygrad_rnn.models.common.padded_loss`)."""
        return padded_loss(logits, tags, lengths, reduction)

    @staticmethod
    def predict_from_logits(logits, lengths=None) -> list:
        """The predictions of :meth:`predict` from logits already computed."""
        ids = logits.argmax(axis=-1).numpy()
        B, T = ids.shape
        lengths = lengths_array(lengths, B, T, allow_zero=True)
        return [ids[b, : lengths[b]].tolist() for b in range(B)]
