"""The three ways to use an RNN of the chapter we follow (docs/chapter.md, section 4), as task models
built from ``nn`` modules.

* :class:`SequenceClassifier` — sequence → class, pooling the last state or the mean of all states;
* :class:`SequenceTagger` — synchronous sequence → sequence, one label per token;
* :class:`Seq2Seq` — asynchronous encoder–decoder with teacher forcing; its greedy and beam
  decoding are :mod:`.decoding`.

All take token ids ``(B, T)`` and true ``lengths`` ``(B,)`` (Tensors, NumPy arrays or lists) and
give results that do not depend on how much padding a batch carries. Each has a ``loss`` helper
that ignores padding; nothing here has a hand-written backward.
"""

from .classifier import POOLINGS, SequenceClassifier
from .common import IGNORE_INDEX, masked_targets, padded_loss
from .seq2seq import Seq2Seq, decoder_io
from .tagger import SequenceTagger

__all__ = [
    "SequenceClassifier",
    "SequenceTagger",
    "Seq2Seq",
    "decoder_io",
    "padded_loss",
    "masked_targets",
    "IGNORE_INDEX",
    "POOLINGS",
]
