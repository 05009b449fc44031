"""Reading a text one token at a time: a classifier's P(class) after every prefix.

The chapter's section 3 example is a long restaurant review that praises the food first and
complains for the rest. Where does the classifier change its mind — and does it still remember
the praise by the end? :func:`prefix_probabilities` answers with the probabilities the classifier
gives to each prefix x_1 … x_t, for t = 1..T.

A one-direction cell never looks ahead, so the state h_t after reading the prefix x_1 … x_t is
the h_t of reading the whole text. ONE forward pass over the text therefore gives every
prefix's summary s_t, and the head turns all of them into logits at once:

* ``pooling="last"``: s_t = h_t (the top layer's state after token t);
* ``pooling="mean"``: s_t = (1/t) Σ_{τ=1..t} h_τ, the running mean of the states (a running sum,
  one addition per step, so the cost stays linear in T).

A bidirectional classifier's backward direction starts at the end of each prefix (←h_1 of the
prefix x_1 … x_t has read x_t … x_1, which is not what it read of the whole text), so there every
prefix is a sequence of its own: one forward pass over the batch of all T prefixes, padded, with
lengths 1..T — T times the work, and the same probabilities as T separate ``predict`` calls.

:mod:`tinygrad_rnn.plotting.prefixes` draws them: as text under the tokens (a terminal), or as
a PNG with matplotlib, one line per curve (e.g. per cell).
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from ..ops import stack
from ..tensor import no_grad

# The chapter's section 3 example (docs/chapter.md): 114 characters, four clauses of praise, then
# seven of complaint from 但是 ("but") on. `make run`, notebook 04 and docs/review_prefixes.py read it.
CHAPTER_REVIEW = (
    "我觉得这家餐馆的菜品很不错，烤鸭非常正宗，包子也不错，酱牛肉很有嚼劲，但是服务员态度太恶劣了，"
    "我们在门口等了50分钟都没有能成功进去，好不容易进去了，桌子也半天没人打扫，整个环境非常吵闹，"
    "我的孩子都被吓哭了，我下次不会带朋友来。"
)


def clause_ends(text: str, marks: str = "，。！？；") -> list[int]:
    """The prefix lengths t at which a clause of ``text`` ends (just after each punctuation mark
    in ``marks``, and at the end): where to read P(class) clause by clause."""
    ends = [i + 1 for i, ch in enumerate(text) if ch in marks]
    return ends if ends and ends[-1] == len(text) else ends + [len(text)]


def prefix_probabilities(model, ids) -> np.ndarray:
    """(T, C) NumPy array: row t − 1 is softmax(logits) of ``model`` on the prefix ``ids[:t]``.

    ``model`` is a :class:`~tinygrad_rnn.models.SequenceClassifier` (any cell, either pooling,
    one or more layers, either direction); ``ids`` the T ≥ 1 token ids of one text (a list or
    1-D array). No graph is built. See the module docstring for how one pass gives every prefix.
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(
            f"ids must be the token ids of one text, a non-empty 1-D sequence; got shape {ids.shape}"
        )
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}")
    T = ids.size
    with no_grad():
        if model.rnn.bidirectional:
            prefixes = np.where(np.arange(T)[None, :] <= np.arange(T)[:, None], ids[None, :], 0)
            logits = model(prefixes, np.arange(1, T + 1))  # (T, C)
        else:
            outputs, _, _ = model.run_rnn(ids[None, :], None)  # (1, T, H)
            states = outputs.reshape(T, outputs.shape[2])  # h_1 … h_T of the top layer
            if model.pooling == "mean":  # running sums: linear in T
                sums = list(accumulate(states.unbind(axis=0)))  # Σ_{τ≤t} h_τ for t = 1..T
                states = stack([total / t for t, total in enumerate(sums, 1)], axis=0)
            logits = model.head(states)  # (T, C)
        return logits.log_softmax(axis=-1).exp().numpy()
