"""Decoding: how a trained :class:`~tinygrad_rnn.models.Seq2Seq` writes an output by feeding back
its own predictions — greedy decoding and beam search, batched on the device.

Both run the model's one decoding step (``model._step``: embed the previous tokens, run the
decoder's cells once, log-softmax over the target vocabulary) for all B (× beam) hypotheses at
once; the choice of the next tokens (argmax, or the beam's top-k) is made on the device, and the
tokens come back to the host in ONE copy at the end (no per-step ``.item()``). The price: every
batch runs ``max_len`` steps even when all its sequences have already ended.

**Scores.** A hypothesis's score is the sum of the log-probabilities of its tokens, ``<eos>``
included: ``log p(y_1 … y_n, <eos> | x)``; one that has not ended after ``max_len`` tokens is
scored without ``<eos>``. No length normalisation: the beam maximises exactly what greedy
decoding approximates, and :func:`decode` returns the better of the two per sequence (plain beam
search can prune the greedy path and end lower).
"""

from __future__ import annotations

import numpy as np

from ..nn.recurrent import as_parts
from ..ops import gather_rows
from .common import per_layer


def top_k(xp, values, k: int):
    """The k largest entries of each row of ``values`` (B, M), best first: (indices, values).

    k passes of argmax, each hiding the entry it found — on the device, and with argmax's
    deterministic tie-break (lowest index) on NumPy and CuPy alike.
    """
    values = values.copy()
    rows = xp.arange(values.shape[0])
    indices, best = [], []
    for _ in range(k):
        j = xp.argmax(values, axis=1)
        indices.append(j)
        best.append(values[rows, j])
        values[rows, j] = -xp.inf
    return xp.stack(indices, axis=1), xp.stack(best, axis=1)


def until_eos(row: list, eos_id: int) -> list:
    return row[: row.index(eos_id)] if eos_id in row else row


# The widest beam ``generate`` searches: each step scores beam_size × V candidates per sequence,
# so a beam of thousands runs for minutes; on our data sets beam 5 already matches beam 20.
MAX_BEAM_SIZE = 100


def rows_of(value, index):
    """``value`` restricted to the rows ``index`` (a device int array): a Tensor, a state tuple,
    the attention memory, or None — how the beam copies a hypothesis's state and source."""
    if value is None:
        return None
    if isinstance(value, tuple):  # (h, c) and AttentionMemory alike
        return (
            type(value)(*(rows_of(v, index) for v in value))
            if hasattr(value, "_fields")
            else tuple(rows_of(v, index) for v in value)
        )
    # Unchecked: every beam index is built from arange and top-k, so it is in range by
    # construction, and a range check would read the device at every step.
    return gather_rows(value, index, checked=False)


def greedy(model, h, memory, max_len, bos_id, eos_id, return_attention=False):
    """Greedy decoding on the device → (tokens (B, max_len), scores (B,)) device arrays, and
    with ``return_attention`` the weights (B, max_len, S) as a third."""
    states, h = per_layer(h), as_parts(h)[0]  # h: (L, B, H), for sizes
    xp = h.xp
    B = h.shape[1]
    rows = xp.arange(B)
    ids = xp.full((B,), bos_id, dtype=xp.int64)
    alive = xp.ones((B,), dtype=bool)  # no <eos> produced yet
    score = xp.zeros((B,), dtype=h.dtype)
    steps, weights = [], []
    for _ in range(max_len):
        logp, states, alpha = model._step(ids, states, memory)
        ids = xp.argmax(logp, axis=1)
        score = score + xp.where(alive, logp[rows, ids], 0.0)  # tokens after <eos> do not count
        alive = alive & (ids != eos_id)
        steps.append(ids)
        weights.append(alpha)
    result = (xp.stack(steps, axis=1), score)
    return result + (xp.stack(weights, axis=1),) if return_attention else result


def beam_search(model, h, memory, max_len, bos_id, eos_id, K, return_attention=False):
    """Beam search on the device → (best tokens (B, max_len), their scores (B,)) device arrays,
    and with ``return_attention`` the best hypotheses' weights (B, max_len, S) as a third.

    The B·K hypotheses are one batch; hypothesis k of source b is row b·K + k. Each step
    extends every unfinished hypothesis by every token, adds its log-probability, and keeps
    the K best of the K·V candidates per source. A finished hypothesis has exactly one
    candidate: itself, at no cost (it re-emits ``<eos>``, which the host cuts off).
    """
    layers, h = per_layer(h), as_parts(h)[0]  # h: (L, B, H), for sizes
    backend, xp = h.backend, h.xp
    _, B, _ = h.shape
    V, N = model.tgt_vocab_size, B * K
    expand = backend.asarray(np.repeat(np.arange(B), K))  # row b·K + k reads source b
    states = [rows_of(layer, expand) for layer in layers]
    memory = rows_of(memory, expand)
    # At the start only hypothesis 0 is live, so the K beams do not start as K copies.
    scores = backend.asarray(np.tile(np.where(np.arange(K) == 0, 0.0, -np.inf), (B, 1)), dtype=h.dtype)
    only_eos = backend.asarray(np.where(np.arange(V) == eos_id, 0.0, -np.inf), dtype=h.dtype)
    finished = xp.zeros((B, K), dtype=bool)
    rows = xp.arange(B)
    first_row = backend.asarray(np.arange(B)[:, None] * K)
    ids = xp.full((N,), bos_id, dtype=xp.int64)
    history = []
    for _ in range(max_len):
        logp, states, alpha = model._step(ids, states, memory)
        logp = xp.where(finished.reshape(N, 1), only_eos, logp)
        candidates = (scores.reshape(N, 1) + logp).reshape(B, K * V)
        best, scores = top_k(xp, candidates, K)  # (B, K), best first
        parent, token = best // V, best % V
        finished = finished[rows[:, None], parent] | (token == eos_id)
        chosen = (first_row + parent).reshape(N)  # the rows the survivors extend
        states = [rows_of(s, chosen) for s in states]
        ids = token.reshape(N)
        history.append((token, parent, None if alpha is None else alpha.reshape(B, K, -1)))
    # Follow the parent pointers back from each source's best final hypothesis.
    pick = xp.argmax(scores, axis=1)
    best_scores = scores[rows, pick]
    tokens, weights = [None] * max_len, [None] * max_len
    for t in range(max_len - 1, -1, -1):
        token, parent, alpha = history[t]
        tokens[t] = token[rows, pick]
        pick = parent[rows, pick]
        if alpha is not None:
            weights[t] = alpha[rows, pick]  # what the parent read at step t
    result = (xp.stack(tokens, axis=1), best_scores)
    return result + (xp.stack(weights, axis=1),) if return_attention else result


def decode(model, h, memory, max_len, bos_id, eos_id, beam_size=1, return_attention=False):
    """(tokens (B, max_len), scores (B,)[, weights (B, max_len, S)]) device arrays from the decoder's
    initial states ``h`` and the source ``memory`` (``model.encode``): greedy for ``beam_size=1``;
    otherwise, per sequence, the better-scoring of the beam's best and the greedy decode."""
    xp = as_parts(h)[0].xp
    tokens, scores, *weights = greedy(model, h, memory, max_len, bos_id, eos_id, return_attention)
    if beam_size > 1 and tokens.shape[0] > 0:  # an empty batch: nothing to search
        beam_tokens, beam_scores, *beam_weights = beam_search(
            model, h, memory, max_len, bos_id, eos_id, beam_size, return_attention
        )
        better = beam_scores > scores
        tokens = xp.where(better[:, None], beam_tokens, tokens)
        scores = xp.where(better, beam_scores, scores)
        weights = [xp.where(better[:, None, None], b, g) for b, g in zip(beam_weights, weights)]
    return (tokens, scores, *weights)


def attention_for(model, src_vocab, tgt_vocab, tokens, max_len: int, beam_size: int = 1):
    """Decode one tokenised source with an attention model: ``(output tokens, weights)``.

    The output tokens end with ``"<eos>"`` when the model ended the output (its row is what the
    decoder read when it decided to stop); ``weights`` is (len(output tokens), len(tokens)).
    Unknown source tokens are read as ``<unk>``, as in training.
    """
    if not tokens:
        raise ValueError("nothing to translate: the source has no tokens")
    ids = np.array([src_vocab.encode(tokens)], dtype=np.int64)
    out, weights = model.generate(
        ids,
        np.array([len(tokens)]),
        max_len,
        tgt_vocab.bos_id,
        tgt_vocab.eos_id,
        beam_size=beam_size,
        return_attention=True,
    )
    labels = [tgt_vocab.id_to_token(i) for i in out[0]]
    if len(labels) < max_len:
        labels.append("<eos>")
    return labels, weights[0, : len(labels)]
