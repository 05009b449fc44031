"""Asynchronous sequence → sequence: the encoder–decoder (tutorial section 4, Sutskever/Cho 2014).

The **encoder** RNN reads the source ``x_1 … x_S``; its final state (``h_last``, one per layer,
each at the sequence's true last token) is the **initial state of the decoder** RNN, which then
produces the target one token at a time::

    h^enc = RNN_enc(Embed_src(x))                     final states (L, B, H)
    s_0   = h^enc                                      (layer by layer)
    s_t   = tanh([e(y_{t-1}) ; c] W + s_{t-1} V + b)   c only with feed_context=True
    p(y_t | y_<t, x) = softmax(s_t U + d)

``feed_context=True`` (Cho et al., 2014) also concatenates the encoder's summary ``c`` — its
final top-layer state — to the decoder's input at *every* step. Without it, everything the
decoder knows about the source must survive in ``s_t`` through all the decoding steps; with
it, the source is one step away from every output. Still a plain tanh RNN either way.

**Training** uses teacher forcing: the decoder reads the true previous token. For a target
``y_1 … y_n`` the decoder reads ``tgt_in = [<bos>, y_1 … y_n]`` and must predict
``tgt_out = [y_1 … y_n, <eos>]`` (n + 1 steps); :func:`decoder_io` builds both from padded
targets, and ``model.loss(src, src_lengths, tgt_in, tgt_out, out_lengths)`` ignores padding.

**Decoding** (``generate``) feeds back its own predictions. It runs batched on the device:
each step is the decoder's cells (``RNNCell``) applied once to all B (× beam) hypotheses, the
choice of the next tokens (argmax, or the beam's top-k) is made on the device, and the tokens
come back to the host in ONE copy at the end — no per-step ``.item()``. The price is that every
batch runs ``max_len`` steps even when all sequences have already ended.

**Scores and lengths.** ``max_len`` counts generated tokens *including* ``<eos>``. A
hypothesis's score is the sum of the log-probabilities of its tokens, ``<eos>`` included:
``log p(y_1 … y_n, <eos> | x)``. One that has not ended after ``max_len`` tokens is returned
as it is (exactly ``max_len`` tokens, so the caller can tell) and scored without ``<eos>``.
No length normalisation: the beam maximises exactly what greedy decoding approximates.
"""

from __future__ import annotations

import numpy as np

from ..backend import host_rng
from ..nn import Embedding, Linear, Module, RNN
from ..ops import concatenate, gather_rows
from ..tensor import ShapeError, no_grad, zeros
from .common import id_tensor, lengths_array, padded_loss


def decoder_io(targets, target_lengths, bos_id: int, eos_id: int, pad_id: int = 0):
    """Teacher-forcing arrays from targets: ``(tgt_in, tgt_out, out_lengths)`` (NumPy).

    ``targets`` (B, T) padded ids with ``target_lengths`` (B,) — a :class:`~tinygrad_rnn.data.Batch`'s
    ``targets``/``target_lengths`` — or, with ``target_lengths=None``, a list of id lists.
    ``tgt_in[b] = [bos, y_1 … y_n, pad …]``, ``tgt_out[b] = [y_1 … y_n, eos, pad …]``, both
    (B, T + 1), and ``out_lengths = n + 1``.
    """
    if target_lengths is None:
        sequences = [list(map(int, seq)) for seq in targets]
    else:
        targets, target_lengths = np.asarray(targets), np.asarray(target_lengths)
        if targets.ndim != 2 or target_lengths.shape != (targets.shape[0],):
            raise ShapeError(f"targets of shape {targets.shape} with lengths of shape "
                             f"{target_lengths.shape}: want (B, T) and (B,)")
        sequences = [targets[b, :n].tolist() for b, n in enumerate(target_lengths)]
    B = len(sequences)
    T = max((len(s) for s in sequences), default=0) + 1
    tgt_in = np.full((B, T), pad_id, dtype=np.int64)
    tgt_out = np.full((B, T), pad_id, dtype=np.int64)
    out_lengths = np.empty(B, dtype=np.int64)
    for b, seq in enumerate(sequences):
        n = len(seq)
        tgt_in[b, :n + 1] = [bos_id] + seq
        tgt_out[b, :n + 1] = seq + [eos_id]
        out_lengths[b] = n + 1
    return tgt_in, tgt_out, out_lengths


def _top_k(xp, values, k: int):
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


def _until_eos(row: list, eos_id: int) -> list:
    return row[:row.index(eos_id)] if eos_id in row else row


class Seq2Seq(Module):
    """Encoder RNN → its final state initialises the decoder RNN → Linear over the target vocabulary.

    * ``model(src, src_lengths, tgt_in) -> logits (B, T_out, tgt_vocab_size)`` (teacher forcing);
    * ``model.loss(src, src_lengths, tgt_in, tgt_out, out_lengths)``: mean cross-entropy over the
      true target tokens (build the arrays with :func:`decoder_io`);
    * ``model.generate(src, src_lengths, max_len, bos_id, eos_id, beam_size=1)`` → B lists of
      token ids (without ``<bos>``/``<eos>``);
    * ``model.score(src, src_lengths, sequences, bos_id, eos_id, max_len=None)`` → the
      log-probability of given outputs, scored exactly as ``generate`` scores them.

    Encoder and decoder have ``num_layers`` layers each (unidirectional: the decoder continues
    from the encoder's state layer by layer). Keyword-only ``init``, ``rng``, ``dtype``,
    ``device`` as for :class:`SequenceClassifier`.
    """

    def __init__(self, src_vocab_size, tgt_vocab_size, embed_dim, hidden_size, num_layers=1,
                 feed_context=False, padding_idx=0, *, init="uniform", rng=None, dtype=None, device=None):
        self.feed_context = bool(feed_context)
        layer_args = {"rng": rng or host_rng(), "dtype": dtype, "device": device}
        self.src_embed = Embedding(src_vocab_size, embed_dim, padding_idx, **layer_args)
        self.encoder = RNN(embed_dim, hidden_size, num_layers, init=init, **layer_args)
        self.tgt_embed = Embedding(tgt_vocab_size, embed_dim, padding_idx, **layer_args)
        decoder_input = embed_dim + (hidden_size if self.feed_context else 0)
        self.decoder = RNN(decoder_input, hidden_size, num_layers, init=init, **layer_args)
        self.out = Linear(hidden_size, tgt_vocab_size, **layer_args)

    @property
    def tgt_vocab_size(self) -> int:
        return self.out.out_features

    def _backend(self):
        return self.src_embed.weight.backend

    # ---- teacher forcing ----------------------------------------------------------------------
    def encode(self, src, src_lengths=None):
        """``(h, c)``: the encoder's final states (L, B, H) and the summary c (B, H) or None."""
        src = id_tensor(src, self._backend(), name="src")
        B, S = src.shape
        _, h = self.encoder(self.src_embed(src), lengths=lengths_array(src_lengths, B, S))
        context = h.unbind(axis=0)[-1] if self.feed_context else None
        return h, context

    def forward(self, src, src_lengths, tgt_in):
        h, context = self.encode(src, src_lengths)
        tgt_in = id_tensor(tgt_in, self._backend(), name="tgt_in")
        B, T = tgt_in.shape
        if B != h.shape[1]:
            raise ShapeError(f"src has {h.shape[1]} sequences but tgt_in of shape {tgt_in.shape} has {B}")
        y = self.tgt_embed(tgt_in)                                    # e(y_{t-1}), (B, T, E)
        if context is not None:
            # The same c at every step: broadcasting (B, 1, H) over T; backward sums over t.
            H = context.shape[1]
            c_steps = context.reshape(B, 1, H) + zeros(B, T, H, dtype=y.dtype, device=y.backend)
            y = concatenate([y, c_steps], axis=2)
        # No lengths: the decoder is causal, so padding at the end of tgt_in cannot change
        # the logits of true steps; the loss ignores the padded ones.
        states, _ = self.decoder(y, h0=h)
        return self.out(states)

    def loss(self, src, src_lengths, tgt_in, tgt_out, out_lengths, reduction: str = "mean"):
        """Cross-entropy of the next-token predictions over the true target steps (padding ignored)."""
        return padded_loss(self(src, src_lengths, tgt_in), tgt_out, out_lengths, reduction)

    def sequence_log_prob(self, src, src_lengths, tgt_in, tgt_out, out_lengths):
        """``log p(tgt_out | src)`` per sequence, a (B,) Tensor: Σ over true steps of log p(y_t | y_<t, x)."""
        return -self.loss(src, src_lengths, tgt_in, tgt_out, out_lengths, reduction="none").sum(axis=1)

    def score(self, src, src_lengths, sequences, bos_id: int, eos_id: int, max_len: int | None = None):
        """Log-probabilities (NumPy float64, (B,)) of ``sequences`` (B lists, without bos/eos).

        Each is scored as ``generate`` scores it: ``<eos>`` included, except that with
        ``max_len`` given, a sequence of exactly ``max_len`` tokens is an unfinished one and is
        scored without ``<eos>``.
        """
        sequences = [list(map(int, seq)) for seq in sequences]
        if max_len is not None and any(len(s) > max_len for s in sequences):
            raise ValueError(f"a sequence is longer than max_len={max_len}")
        tgt_in, tgt_out, out_lengths = decoder_io(sequences, None, bos_id, eos_id)
        for b, seq in enumerate(sequences):
            if max_len is not None and len(seq) == max_len:
                out_lengths[b] -= 1                                   # unfinished: no <eos> scored
        with no_grad():
            return self.sequence_log_prob(src, src_lengths, tgt_in, tgt_out, out_lengths).numpy().astype(np.float64)

    # ---- decoding -----------------------------------------------------------------------------
    def generate(self, src, src_lengths, max_len: int, bos_id: int, eos_id: int, beam_size: int = 1,
                 return_scores: bool = False):
        """Decode every source sequence: B lists of token ids, without ``<bos>`` and ``<eos>``.

        ``beam_size=1`` is greedy decoding (the most likely next token, fed back). A larger beam
        keeps the ``beam_size`` best prefixes per sequence; finished hypotheses stay in the beam
        with their score frozen. The result is the better of the beam's best and the greedy
        decode (plain beam search can prune the greedy path and end lower; this way a beam
        never scores lower than greedy). ``return_scores=True`` also returns the scores (see
        the module docstring) as a NumPy array — a second device→host copy.
        """
        for name, value, low in (("max_len", max_len, 1), ("beam_size", beam_size, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
        V = self.tgt_vocab_size
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
            if not isinstance(value, (int, np.integer)) or not 0 <= value < V:
                raise ValueError(f"{name}={value!r} is not a token id of the target vocabulary (0..{V - 1})")
        backend = self._backend()
        xp = backend.xp
        with no_grad():
            h, context = self.encode(src, src_lengths)
            tokens, scores = self._greedy(h, context, max_len, bos_id, eos_id)
            if beam_size > 1:
                beam_tokens, beam_scores = self._beam(h, context, max_len, bos_id, eos_id, beam_size)
                better = beam_scores > scores
                tokens = xp.where(better[:, None], beam_tokens, tokens)
                scores = xp.where(better, beam_scores, scores)
            host = backend.to_host(tokens)                            # the one device→host copy
        out = [_until_eos(row, eos_id) for row in host.tolist()]
        if return_scores:
            return out, backend.to_host(scores).astype(np.float64)
        return out

    def _step(self, ids, states: list, context):
        """One decoder step for N hypotheses: ids (N,) device ints, states L × (N, H) Tensors.

        Returns (log p(· | prefix) as a device array (N, V), new states).
        """
        # Unchecked lookup: the ids come from argmax over the vocabulary (or are BOS), so they are
        # valid by construction, and a range check would read the device at every step.
        x = gather_rows(self.tgt_embed.weight, ids, checked=False)
        if context is not None:
            x = concatenate([x, context], axis=1)
        new_states = []
        for cell, h in zip(self.decoder.cells, states):
            x = cell(x, h)                                            # s_t = tanh(x W + s_{t-1} V + b)
            new_states.append(x)
        return self.out(x).log_softmax(axis=-1).data, new_states

    def _greedy(self, h, context, max_len, bos_id, eos_id):
        """Greedy decoding on the device → (tokens (B, max_len), scores (B,)) device arrays."""
        xp = h.xp
        B = h.shape[1]
        states = list(h.unbind(axis=0))
        rows = xp.arange(B)
        ids = xp.full((B,), bos_id, dtype=xp.int64)
        alive = xp.ones((B,), dtype=bool)                             # no <eos> produced yet
        score = xp.zeros((B,), dtype=h.dtype)
        steps = []
        for _ in range(max_len):
            logp, states = self._step(ids, states, context)
            ids = xp.argmax(logp, axis=1)
            score = score + xp.where(alive, logp[rows, ids], 0.0)    # tokens after <eos> do not count
            alive = alive & (ids != eos_id)
            steps.append(ids)
        return xp.stack(steps, axis=1), score

    def _beam(self, h, context, max_len, bos_id, eos_id, K):
        """Beam search on the device → (best tokens (B, max_len), their scores (B,)) device arrays.

        The B·K hypotheses are one batch; hypothesis k of source b is row b·K + k. Each step
        extends every unfinished hypothesis by every token, adds its log-probability, and keeps
        the K best of the K·V candidates per source. A finished hypothesis has exactly one
        candidate: itself, at no cost (it re-emits ``<eos>``, which the host cuts off).
        """
        backend, xp = h.backend, h.xp
        _, B, _ = h.shape
        V, N = self.tgt_vocab_size, B * K
        expand = backend.asarray(np.repeat(np.arange(B), K))         # row b·K + k reads source b
        # Unchecked lookups here and below: every row index is built from arange and top-k, so
        # it is in range by construction, and a range check would read the device at every step.
        states = [gather_rows(layer, expand, checked=False) for layer in h.unbind(axis=0)]
        context = gather_rows(context, expand, checked=False) if context is not None else None
        # At the start only hypothesis 0 is live, so the K beams do not start as K copies.
        scores = backend.asarray(np.tile(np.where(np.arange(K) == 0, 0.0, -np.inf), (B, 1)), dtype=h.dtype)
        only_eos = backend.asarray(np.where(np.arange(V) == eos_id, 0.0, -np.inf), dtype=h.dtype)
        finished = xp.zeros((B, K), dtype=bool)
        rows = xp.arange(B)
        first_row = backend.asarray(np.arange(B)[:, None] * K)
        ids = xp.full((N,), bos_id, dtype=xp.int64)
        history = []
        for _ in range(max_len):
            logp, states = self._step(ids, states, context)
            logp = xp.where(finished.reshape(N, 1), only_eos, logp)
            candidates = (scores.reshape(N, 1) + logp).reshape(B, K * V)
            best, scores = _top_k(xp, candidates, K)                   # (B, K), best first
            parent, token = best // V, best % V
            finished = finished[rows[:, None], parent] | (token == eos_id)
            chosen = (first_row + parent).reshape(N)                   # the rows the survivors extend
            states = [gather_rows(s, chosen, checked=False) for s in states]
            ids = token.reshape(N)
            history.append((token, parent))
        # Follow the parent pointers back from each source's best final hypothesis.
        pick = xp.argmax(scores, axis=1)
        best_scores = scores[rows, pick]
        tokens = [None] * max_len
        for t in range(max_len - 1, -1, -1):
            token, parent = history[t]
            tokens[t] = token[rows, pick]
            pick = parent[rows, pick]
        return xp.stack(tokens, axis=1), best_scores

    def extra_repr(self):
        return f"feed_context={self.feed_context}"
