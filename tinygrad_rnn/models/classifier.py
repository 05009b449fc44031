"""Sequence → class: the first RNN mode of the chapter we follow (docs/chapter.md, section 4).

::

    tokens (B, T) ──Embedding──▶ x (B, T, E) ──RNN──▶ h_1 … h_T (B, T, D·H) ──pool──▶ s (B, D·H)
                                                                    ──Linear──▶ logits (B, C)

with ``h_t = tanh(x_t W + h_{t-1} V + b)`` (``cell="rnn"``; ``"lstm"`` and ``"gru"`` put their
gated step in its place and pool their hidden states h_t the same way) and D = 2 for a
bidirectional RNN, else 1. Two ways to
summarise a sequence of n = ``lengths[b]`` true tokens:

* ``pooling="last"`` (figure 3): ``s = h_n``, the state after reading the whole sequence. For a
  bidirectional RNN each direction contributes the state it ends in after reading the whole
  sequence: the forward direction's ``→h_n`` (at the last true token) and the backward
  direction's ``←h_1`` (at the first token, which it reads last): ``s = [→h_n ; ←h_1]``. That
  is the top layer of the RNN's ``h_last``. (It is *not* the output at step n, whose backward
  half has read only token n.)
* ``pooling="mean"`` (figure 4): ``s = (1/n) Σ_{t=1..n} h_t``, every state counts equally, so
  the gradient reaches early tokens without passing through n − t recurrent steps.

Padding (steps t > n) never enters: the RNN keeps its state through padded steps and the mean
runs over true steps only, so the logits do not depend on how much padding a batch has.
"""

from __future__ import annotations

from ..nn.functional import cross_entropy, masked_mean
from ..ops import concatenate
from ..tensor import no_grad
from .common import EmbedRNNHead

POOLINGS = ("last", "mean")


class SequenceClassifier(EmbedRNNHead):
    """Embedding → (multi-layer, optionally bidirectional) RNN → pooling → Linear.

    ``model(tokens, lengths) -> logits (B, num_classes)``; ``tokens`` (B, T) integer ids (Tensor,
    NumPy array or nested list), ``lengths`` (B,) true lengths ≥ 1 (``None``: all full length).
    Train with ``model.loss(tokens, lengths, labels)`` (mean cross-entropy over the batch).

    Keyword-only: ``cell`` ("rnn", "lstm" or "gru": which recurrent layer reads the tokens;
    for the LSTM, the pooled h_t are its hidden states, never the cell states c_t), ``init``
    (the vanilla RNN's recurrent-matrix init: "uniform", "orthogonal", "identity"), ``rng`` (a
    ``numpy.random.Generator``; default the seeded ``host_rng()``), ``dtype`` (float32 by default;
    float64 for gradient checks), ``device``.
    """

    def __init__(
        self,
        vocab_size,
        embed_dim,
        hidden_size,
        num_classes,
        pooling="mean",
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
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        self.pooling = pooling
        super().__init__(
            vocab_size,
            embed_dim,
            hidden_size,
            num_classes,
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
    def num_classes(self) -> int:
        return self.head.out_features

    def features(self, tokens, lengths=None):
        """The pooled summary ``s`` (B, D·H) that the head classifies."""
        outputs, h_last, lengths = self.run_rnn(tokens, lengths)
        if self.pooling == "mean":
            return masked_mean(outputs, lengths)
        # "last": the top layer's final state of each direction, [→h_n ; ←h_1] (see module doc).
        D = self.rnn.directions
        finals = h_last.unbind(axis=0)[-D:]
        return finals[0] if D == 1 else concatenate(finals, axis=1)

    def forward(self, tokens, lengths=None):
        return self.head(self.features(tokens, lengths))

    def loss(self, tokens, lengths, labels, reduction: str = "mean"):
        """Cross-entropy of the logits against ``labels`` (B,) class ids."""
        return self.loss_from_logits(self(tokens, lengths), labels, lengths, reduction)

    def predict(self, tokens, lengths=None):
        """(class ids (B,), probabilities (B, C)) as NumPy arrays, without building a graph."""
        with no_grad():
            return self.predict_from_logits(self(tokens, lengths), lengths)

    @staticmethod
    def loss_from_logits(logits, labels, lengths=None, reduction: str = "mean"):
        """The loss of :meth:`loss` from logits already computed (one forward pass for loss and
        prediction when scoring); ``lengths`` is unused (one label per sequence)."""
        return cross_entropy(logits, labels, reduction=reduction)

    @staticmethod
    def predict_from_logits(logits, lengths=None):
        """The predictions of :meth:`predict` from logits already computed."""
        probs = logits.log_softmax(axis=-1).exp().numpy()
        return probs.argmax(axis=1), probs

    def extra_repr(self):
        return f"{super().extra_repr()}, pooling={self.pooling!r}"
