"""Asynchronous sequence → sequence: the encoder–decoder (the chapter's section 4, docs/chapter.md;
Sutskever/Cho 2014).

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

**Cells.** ``cell="lstm"`` or ``"gru"`` puts the gated step (:mod:`tinygrad_rnn.nn.cells`) in
place of s_t = tanh(…) in encoder and decoder alike; the decoder continues from the encoder's
whole final state — for the LSTM the pair (s, c), so the cell state c, whose gradient path
∂c_t/∂c_{t−1} = diag(f_t) does not shrink through Vᵀ, carries the source into the decoder.
Only the h part of a state is ever read (``cell.hidden(state)``, the cell protocol).

**Attention** (``attention="additive"``, Bahdanau et al., 2015) keeps every encoder state
h_1 … h_S and lets each decoder step read them all (:class:`~tinygrad_rnn.nn.AdditiveAttention`)::

    h_j   = [h_j^fwd ; h_j^bwd]  (bidirectional=True) or h_j     encoder outputs (B, S, D·H)
    s_0   = tanh([h_fwd_last ; h_bwd_first] W_0 + b_0)             bidirectional (per layer),
            else the encoder's final state, as above
    score_j = vᵀ tanh(s_{t-1} W_s + h_j U_h)                        masked to the true source
    α_t   = softmax(score)          c_t = Σ_j α_{t,j} h_j           length: padding gets α = 0
    s_t   = tanh([e(y_{t-1}) ; c_t] W + s_{t-1} V + b)
    p(y_t | y_<t, x) = softmax([s_t ; c_t] U + d)

``h_j U_h`` is computed once per source; each step adds ``s_{t-1} W_s`` to it. With several
layers, s_{t-1} is the top layer's state and c_t enters the first layer. The decoder state is
treated as opaque (the cell protocol): only its h part is read, so gated cells plug in.

**Training** uses teacher forcing: the decoder reads the true previous token. For a target
``y_1 … y_n`` the decoder reads ``tgt_in = [<bos>, y_1 … y_n]`` and must predict
``tgt_out = [y_1 … y_n, <eos>]`` (n + 1 steps); :func:`decoder_io` builds both from padded
targets, and ``model.loss(src, src_lengths, tgt_in, tgt_out, out_lengths)`` ignores padding.

**Decoding** (``generate``) feeds back its own predictions, greedily or with a beam, batched on
the device: :mod:`tinygrad_rnn.models.decoding` (which also says how outputs are scored).
``max_len`` counts generated tokens *including* ``<eos>``; an output that has not ended after
``max_len`` tokens is returned as it is (exactly ``max_len`` tokens, so the caller can tell).
``generate(..., return_attention=True)`` also returns the weights α that produced each output
token, (B, max_len, S), copied to the host once at the end.

**Dropout** (``dropout=p``, Srivastava et al., 2014) regularises training. In training mode
(``model.train()``) it multiplies, at three places, by a fresh random mask m (each m_i is 0 with
probability p, else 1/(1 − p), so the expected value is unchanged — inverted dropout)::

    e(x_j) ⊙ m              the embedded source tokens the encoder reads
    e(y_{t-1}) ⊙ m          the embedded previous tokens the decoder reads
    p(y_t | y_<t, x) = softmax((s_t ⊙ m) U + d)        with attention: softmax(([s_t ; c_t] ⊙ m) U + d)

``model.eval()`` makes it the identity, and ``generate``/``score`` always run in eval mode:
decoding never drops. p = 0 (the default) is the model without dropout: no parameters, no
random numbers drawn, the same results bit for bit.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..backend import host_rng
from ..nn import AdditiveAttention, Dropout, Embedding, Linear, Module, recurrent_layer
from ..nn.recurrent import as_parts, from_parts
from ..ops import concatenate, gather_rows, stack
from ..tensor import ShapeError, Tensor, zeros
from .common import id_tensor, inference, lengths_array, padded_loss, per_layer
from .decoding import MAX_BEAM_SIZE, decode, until_eos

ATTENTIONS = (None, "additive")

# What an attention decoder reads of the source at every step: the encoder states h_j
# (values, (B, S, D·H)), their projections h_j U_h (keys, (B, S, A)), and the mask (B, S) of
# true positions (None when no sequence is padded).
AttentionMemory = namedtuple("AttentionMemory", ["keys", "values", "mask"])


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
            raise ShapeError(
                f"targets of shape {targets.shape} with lengths of shape "
                f"{target_lengths.shape}: want (B, T) and (B,)"
            )
        sequences = [targets[b, :n].tolist() for b, n in enumerate(target_lengths)]
    B = len(sequences)
    T = max((len(s) for s in sequences), default=0) + 1
    tgt_in = np.full((B, T), pad_id, dtype=np.int64)
    tgt_out = np.full((B, T), pad_id, dtype=np.int64)
    out_lengths = np.empty(B, dtype=np.int64)
    for b, seq in enumerate(sequences):
        n = len(seq)
        tgt_in[b, : n + 1] = [bos_id] + seq
        tgt_out[b, : n + 1] = seq + [eos_id]
        out_lengths[b] = n + 1
    return tgt_in, tgt_out, out_lengths


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
    from the encoder's state layer by layer). Keyword-only ``cell`` ("rnn", "lstm", "gru": encoder
    and decoder alike), ``init``, ``rng``, ``dtype``, ``device`` as for :class:`SequenceClassifier`.

    ``attention="additive"`` makes every decoder step read all encoder states (see the module
    docstring); ``None`` is the model above, with the same parameters (old checkpoints load).
    ``bidirectional=True`` reads the source in both directions; the decoder then starts from
    ``tanh([h_fwd_last ; h_bwd_first] W_0 + b_0)`` per layer (``bridge.l``), and its context
    (attention or ``feed_context``) is 2H wide. Attention replaces ``feed_context``: not both.
    ``dropout=p`` drops the embedded source and target tokens and the output layer's input in
    training mode (see the module docstring); its masks are drawn from ``rng``.
    """

    def __init__(
        self,
        src_vocab_size,
        tgt_vocab_size,
        embed_dim,
        hidden_size,
        num_layers=1,
        feed_context=False,
        padding_idx=0,
        *,
        attention=None,
        bidirectional=False,
        cell="rnn",
        init="uniform",
        dropout=0.0,
        rng=None,
        dtype=None,
        device=None,
    ):
        if attention not in ATTENTIONS:
            raise ValueError(
                f"attention must be one of {', '.join(map(repr, ATTENTIONS))}; got {attention!r}"
            )
        if attention is not None and feed_context:
            raise ValueError(
                "attention and feed_context both give the decoder the source at every step; "
                "choose one (attention reads every encoder state, feed_context only the last)"
            )
        self.feed_context, self.attention_type, self.bidirectional = (
            bool(feed_context),
            attention,
            bool(bidirectional),
        )
        self.cell = cell
        layer_args = {"rng": rng or host_rng(), "dtype": dtype, "device": device}
        self.src_embed = Embedding(src_vocab_size, embed_dim, padding_idx, **layer_args)
        self.encoder = recurrent_layer(
            cell, embed_dim, hidden_size, num_layers, self.bidirectional, init=init, **layer_args
        )
        self.tgt_embed = Embedding(tgt_vocab_size, embed_dim, padding_idx, **layer_args)
        source_size = hidden_size * self.encoder.directions  # h_j: D·H wide
        context_size = source_size if self.feed_context or attention else 0
        self.decoder = recurrent_layer(
            cell, embed_dim + context_size, hidden_size, num_layers, init=init, **layer_args
        )
        self.out = Linear(hidden_size + (source_size if attention else 0), tgt_vocab_size, **layer_args)
        # Drawn after the plain model's weights, so a seed gives the plain model the same weights as before.
        self.bridge = (
            [Linear(2 * hidden_size, hidden_size, **layer_args) for _ in range(num_layers)]
            if self.bidirectional
            else []
        )
        self.attention = (
            AdditiveAttention(hidden_size, source_size, hidden_size, **layer_args) if attention else None
        )
        # The LSTM's cell state, too, starts the decoder: c_0 = [c_fwd_last ; c_bwd_first] W_c + b_c.
        self.bridge_c = (
            [Linear(2 * hidden_size, hidden_size, **layer_args) for _ in range(num_layers)]
            if self.bidirectional and "c" in self.decoder.cells[0].state_names
            else []
        )
        # No parameters, and nothing drawn at construction: the weights a seed gives are those of
        # the model without dropout. The masks come from ``rng``, or when it is None from the
        # seeded host generator at each call — whose state fit() saves, so --resume continues them.
        self.dropout = Dropout(dropout, rng=rng)

    @property
    def tgt_vocab_size(self) -> int:
        return self.out.out_features

    def _backend(self):
        return self.src_embed.weight.backend

    # ---- teacher forcing ----------------------------------------------------------------------
    def encode(self, src, src_lengths=None):
        """``(s_0, memory)``: the decoder's initial states (L, B, H) — for the LSTM the pair
        (s_0, c_0) of them — and what its steps read of the source.

        ``memory`` is the summary c (B, D·H) with ``feed_context``, an :data:`AttentionMemory`
        with attention, else None. Unidirectional, s_0 is the encoder's final states (its h_last).
        """
        backend = self._backend()
        src = id_tensor(src, backend, name="src")
        B, S = src.shape
        lengths = lengths_array(src_lengths, B, S)
        embedded = self.dropout(self.src_embed(src))  # e(x_j), dropped in training
        outputs, last = self.encoder(embedded, lengths=lengths, need_outputs=self.attention is not None)
        s0 = self._start_states(last)
        if self.attention is not None:
            mask = (
                None
                if (lengths == S).all()
                else Tensor(np.arange(S)[None, :] < lengths[:, None], device=backend)
            )
            return s0, AttentionMemory(self.attention.project_keys(outputs), outputs, mask)
        if not self.feed_context:
            return s0, None
        finals = self.encoder.cells[0].hidden(last).unbind(axis=0)  # the top layer's summary
        return s0, finals[-1] if not self.bidirectional else concatenate(finals[-2:], axis=1)

    def _start_states(self, last):
        """s_0 from the encoder's final states ``last`` (L·D, B, H) (a pair (h, c) of them for the
        LSTM): ``last`` itself (unidirectional), or per layer l, tanh([h_fwd_last ; h_bwd_first]
        W_0 + b_0) with ``bridge[l]`` (bidirectional; the LSTM's c_0 = [c_fwd_last ; c_bwd_first]
        W_c + b_c with ``bridge_c[l]``, no tanh: c is not bounded)."""
        if not self.bidirectional:
            return last

        def bridged(part, bridges, squash):
            finals = part.unbind(axis=0)  # layer 0 fwd, layer 0 bwd, …
            joined = [
                bridge(concatenate([finals[2 * l], finals[2 * l + 1]], axis=1))
                for l, bridge in enumerate(bridges)
            ]
            return stack([j.tanh() if squash else j for j in joined], axis=0)

        parts = as_parts(last)
        return from_parts(
            (bridged(parts[0], self.bridge, True),)
            + tuple(bridged(p, self.bridge_c, False) for p in parts[1:])
        )

    def forward(self, src, src_lengths, tgt_in):
        return self._teacher_forced(src, src_lengths, tgt_in)[0]

    def attention_weights(self, src, src_lengths, tgt_in):
        """The attention weights α (B, T, S) of a teacher-forced pass: row t is what step t read of
        the source while predicting tgt_out[t]. Padded source positions are exactly 0."""
        if self.attention is None:
            raise ValueError("this Seq2Seq has no attention (build it with attention='additive')")
        return self._teacher_forced(src, src_lengths, tgt_in)[1]

    def _teacher_forced(self, src, src_lengths, tgt_in):
        """(logits (B, T, V), attention weights (B, T, S) or None) with the true previous tokens fed in."""
        h, context = self.encode(src, src_lengths)
        tgt_in = id_tensor(tgt_in, self._backend(), name="tgt_in")
        B, T = tgt_in.shape
        sources = as_parts(h)[0].shape[1]
        if B != sources:
            raise ShapeError(f"src has {sources} sequences but tgt_in of shape {tgt_in.shape} has {B}")
        y = self.dropout(self.tgt_embed(tgt_in))  # e(y_{t-1}), (B, T, E)
        if self.attention is not None:
            # Step by step: c_t depends on s_{t-1}, so the decoder's input cannot be computed ahead.
            # Causal, like the plain decoder: padding at the end of tgt_in changes no true step.
            states, features, weights = per_layer(h), [], []
            for y_t in y.unbind(axis=1):
                feature, states, alpha = self._decoder_step(y_t, states, context)
                features.append(feature)
                weights.append(alpha)
            return self.out(self.dropout(stack(features, axis=1))), stack(weights, axis=1)
        if context is not None:
            # The same c at every step: broadcasting (B, 1, H) over T; backward sums over t.
            H = context.shape[1]
            c_steps = context.reshape(B, 1, H) + zeros(B, T, H, dtype=y.dtype, device=y.backend)
            y = concatenate([y, c_steps], axis=2)
        # No lengths: the decoder is causal, so padding at the end of tgt_in cannot change
        # the logits of true steps; the loss ignores the padded ones.
        states, _ = self.decoder(y, h0=h)
        return self.out(self.dropout(states)), None

    def loss(self, src, src_lengths, tgt_in, tgt_out, out_lengths, reduction: str = "mean"):
        """Cross-entropy of the next-token predictions over the true target steps (padding ignored)."""
        return padded_loss(self(src, src_lengths, tgt_in), tgt_out, out_lengths, reduction)

    def sequence_log_prob(self, src, src_lengths, tgt_in, tgt_out, out_lengths):
        """``log p(tgt_out | src)`` per sequence, a (B,) Tensor: Σ over true steps of log p(y_t | y_<t, x)."""
        return -self.loss(src, src_lengths, tgt_in, tgt_out, out_lengths, reduction="none").sum(axis=1)

    def score(self, src, src_lengths, sequences, bos_id: int, eos_id: int, max_len: int | None = None):
        """Log-probabilities (NumPy float64, (B,)) of ``sequences`` (B lists, without bos/eos).

        Each is scored as ``generate`` scores it (in eval mode): ``<eos>`` included, except that with
        ``max_len`` given, a sequence of exactly ``max_len`` tokens is an unfinished one and is
        scored without ``<eos>``.
        """
        sequences = [list(map(int, seq)) for seq in sequences]
        if max_len is not None and any(len(s) > max_len for s in sequences):
            raise ValueError(f"a sequence is longer than max_len={max_len}")
        tgt_in, tgt_out, out_lengths = decoder_io(sequences, None, bos_id, eos_id)
        for b, seq in enumerate(sequences):
            if max_len is not None and len(seq) == max_len:
                out_lengths[b] -= 1  # unfinished: no <eos> scored
        with inference(self):
            return (
                self.sequence_log_prob(src, src_lengths, tgt_in, tgt_out, out_lengths)
                .numpy()
                .astype(np.float64)
            )

    # ---- decoding -----------------------------------------------------------------------------
    def generate(
        self,
        src,
        src_lengths,
        max_len: int,
        bos_id: int,
        eos_id: int,
        beam_size: int = 1,
        return_scores: bool = False,
        return_attention: bool = False,
    ):
        """Decode every source sequence: B lists of token ids, without ``<bos>`` and ``<eos>``.

        ``beam_size=1`` is greedy decoding (the most likely next token, fed back). A larger beam
        keeps the ``beam_size`` best prefixes per sequence; finished hypotheses stay in the beam
        with their score frozen. The result is the better of the beam's best and the greedy
        decode (plain beam search can prune the greedy path and end lower; this way a beam
        never scores lower than greedy). ``return_scores=True`` also returns the scores (see
        the module docstring) as a NumPy array — a second device→host copy.
        ``return_attention=True`` (attention models) also returns the weights α, a NumPy array
        (B, max_len, S): row t is what the decoder read of the source when it chose output token
        t (row len(output) is the ``<eos>`` step); rows after that, and padded source positions,
        are 0. Returned last: ``tokens[, scores][, weights]``. Runs in eval mode (no dropout),
        the model's mode restored after. ``beam_size`` is at most :data:`MAX_BEAM_SIZE`; an empty
        batch (B = 0) gives empty results in every mode.
        """
        if return_attention and self.attention is None:
            raise ValueError("return_attention=True needs a model with attention (attention='additive')")
        for name, value, low in (("max_len", max_len, 1), ("beam_size", beam_size, 1)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
        if beam_size > MAX_BEAM_SIZE:
            raise ValueError(
                f"beam_size must be at most {MAX_BEAM_SIZE}, got {beam_size} (every step scores "
                "beam_size × vocabulary candidates; beams beyond a few dozen change nothing here)"
            )
        V = self.tgt_vocab_size
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
            if not isinstance(value, (int, np.integer)) or not 0 <= value < V:
                raise ValueError(f"{name}={value!r} is not a token id of the target vocabulary (0..{V - 1})")
        backend = self._backend()
        with inference(self):  # never drops, whatever the mode
            h, memory = self.encode(src, src_lengths)
            tokens, scores, *weights = decode(
                self, h, memory, max_len, bos_id, eos_id, beam_size, return_attention
            )  # greedy or beam: models/decoding.py
            host = backend.to_host(tokens)  # the one device→host copy
        out = [until_eos(row, eos_id) for row in host.tolist()]
        result = [out]
        if return_scores:
            result.append(backend.to_host(scores).astype(np.float64))
        if return_attention:
            alpha = backend.to_host(weights[0]).astype(np.float64)
            for b, row in enumerate(out):
                alpha[b, len(row) + 1 :] = 0.0  # steps after <eos> chose nothing
            result.append(alpha)
        return out if len(result) == 1 else tuple(result)

    def _decoder_step(self, x, states: list, memory):
        """One decoder step from the embedded previous tokens x = e(y_{t-1}) (N, E).

        Returns (the features the output layer reads, new states, attention weights or None):
        with attention, c_t = Σ_j α_j h_j from s_{t-1} (the top layer's h), the input
        [e(y_{t-1}) ; c_t] and the features [s_t ; c_t]; else [e(y_{t-1}) ; c] (feed_context)
        or e(y_{t-1}) in, s_t out. Every layer runs ``cell(x_t, state)`` (the cell protocol).
        """
        alpha = context = None
        if self.attention is not None:
            context, alpha = self.attention(self.decoder.cells[-1].hidden(states[-1]), *memory)
            x = concatenate([x, context], axis=1)
        elif memory is not None:
            x = concatenate([x, memory], axis=1)
        new_states = []
        for cell, state in zip(self.decoder.cells, states):
            state = cell(x, state)  # s_t = tanh(x W + s_{t-1} V + b)
            new_states.append(state)  # (or the LSTM/GRU step)
            x = cell.hidden(state)
        return (x if context is None else concatenate([x, context], axis=1)), new_states, alpha

    def _step(self, ids, states: list, memory):
        """One decoding step for N hypotheses: ids (N,) device ints, states L × (N, H).

        Returns (log p(· | prefix) as a device array (N, V), new states, α (N, S) device array or None).
        """
        # weight[ids] without Embedding's range check (which would read the device at every step).
        # The ids are valid by construction — bos_id is checked in generate, every later id is an
        # argmax over V columns or a top-k index taken modulo V — and must be: CuPy would wrap an
        # out-of-range index silently instead of raising.
        feature, new_states, alpha = self._decoder_step(
            gather_rows(self.tgt_embed.weight, ids, checked=False), states, memory
        )
        return self.out(feature).log_softmax(axis=-1).data, new_states, None if alpha is None else alpha.data

    def extra_repr(self):
        extra = f"cell={self.cell!r}, feed_context={self.feed_context}"
        if self.bidirectional:
            extra += ", bidirectional=True"
        return extra + (f", attention={self.attention_type!r}" if self.attention_type else "")
