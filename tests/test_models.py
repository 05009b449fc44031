"""The task models: SequenceClassifier, SequenceTagger, Seq2Seq (contracts, gradients, padding, decoding)."""

import contextlib
import itertools

import numpy as np
import pytest
import strict_backend
from devices import device_params
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn.backend import DeviceError
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.models import Seq2Seq, SequenceClassifier, SequenceTagger, decoder_io, decoding
from tinygrad_rnn.tensor import ShapeError
from tinygrad_rnn.testing import examples, lengths, token_sequences

F64 = np.float64
BOS, EOS = 2, 3  # the Vocab specials: <pad>=0, <unk>=1, <bos>=2, <eos>=3


def rng_of(seed):
    return np.random.default_rng(seed)


def classifier(seed=0, **kw):
    args = dict(vocab_size=9, embed_dim=3, hidden_size=4, num_classes=3)
    args.update(kw)
    return SequenceClassifier(**args, dtype=F64, rng=rng_of(seed))


def tagger(seed=0, **kw):
    args = dict(vocab_size=9, embed_dim=3, hidden_size=4, num_tags=5)
    args.update(kw)
    return SequenceTagger(**args, dtype=F64, rng=rng_of(seed))


def seq2seq(seed=0, **kw):
    args = dict(src_vocab_size=9, tgt_vocab_size=7, embed_dim=3, hidden_size=4)
    args.update(kw)
    return Seq2Seq(**args, dtype=F64, rng=rng_of(seed))


def padded(seqs, T=None, pad=0):
    """(B, T) ids padded with ``pad`` and their lengths, from a list of id lists."""
    T = T or max(len(s) for s in seqs)
    out = np.full((len(seqs), T), pad, dtype=np.int64)
    for b, s in enumerate(seqs):
        out[b, : len(s)] = s
    return out, np.array([len(s) for s in seqs], dtype=np.int64)


def pad_more(ids, extra, pad=0):
    """``ids`` with ``extra`` more padded steps at the end."""
    return np.concatenate([ids, np.full((ids.shape[0], extra), pad, dtype=ids.dtype)], axis=1)


def grads(model):
    return {
        n: (np.zeros(p.shape) if p.grad is None else p.backend.to_host(p.grad))
        for n, p in model.named_parameters()
    }


def assert_same_grads(a, b, what):
    for name in a:
        np.testing.assert_allclose(
            a[name], b[name], rtol=1e-9, atol=1e-12, err_msg=f"{what}: gradient of {name}"
        )


# ---- contracts --------------------------------------------------------------------------------------


def test_shapes_and_input_kinds():
    ids, lens = padded([[4, 5, 6], [7], [8, 1]])
    for model, shape in ((classifier(), (3, 3)), (tagger(), (3, 3, 5))):
        ref = model(ids, lens).numpy()
        assert ref.shape == shape
        for kind in (ids.tolist(), tg.Tensor(ids)):  # lists and Tensors work like NumPy arrays
            np.testing.assert_array_equal(model(kind, tg.Tensor(lens)).numpy(), ref)
        full = model(ids[:, :1], None).numpy()  # lengths=None: every sequence is full length
        np.testing.assert_array_equal(full, model(ids[:, :1], [1, 1, 1]).numpy())
    s2s = seq2seq()
    tgt_in, _, _ = decoder_io([[4], [5, 6], []], None, BOS, EOS)
    assert s2s(ids, lens, tgt_in).shape == (3, 3, 7)


def test_bad_inputs_get_clear_errors():
    model = classifier()
    with pytest.raises(ValueError, match="pooling must be one of last, mean"):
        classifier(pooling="max")
    with pytest.raises(ShapeError, match=r"\(batch, time\).*shape \(3,\)"):
        model(np.array([1, 2, 3]), [3])
    with pytest.raises(TypeError, match="integer token ids"):
        model(np.ones((2, 3)), [3, 3])
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0"):
        model(np.ones((2, 3), dtype=np.int64), [3, 0])  # a class for an empty sequence is undefined
    with pytest.raises(DeviceError, match="'strict'.*'cpu'"):
        model(tg.Tensor(np.ones((2, 3), dtype=np.int64), device="strict"), [3, 3])
    s2s = seq2seq()
    with pytest.raises(ShapeError, match="src has 2 sequences"):
        s2s(np.ones((2, 3), dtype=np.int64), [3, 3], np.ones((1, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="eos_id=7 is not a token id"):
        s2s.generate(np.ones((2, 3), dtype=np.int64), [3, 3], 5, BOS, 7)
    with pytest.raises(ValueError, match="max_len must be an integer"):
        s2s.generate(np.ones((2, 3), dtype=np.int64), [3, 3], 0, BOS, EOS)


def test_models_are_built_from_nn_modules_and_seeded():
    a, b = (
        classifier(seed=5, num_layers=2, bidirectional=True),
        classifier(seed=5, num_layers=2, bidirectional=True),
    )
    names = [n for n, _ in a.named_parameters()]
    assert names[0] == "embed.weight" and names[-2:] == ["head.W", "head.b"]
    assert a.head.W.shape == (8, 3), "bidirectional: the head reads both directions (2 · hidden)"
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.numpy(), q.numpy(), err_msg=n)
    s2s = seq2seq(feed_context=True, num_layers=2)
    assert s2s.decoder.cells[0].W.shape == (3 + 4, 4), "feed_context: decoder input is [e(y) ; c]"
    assert seq2seq().decoder.cells[0].W.shape == (3, 4)
    assert SequenceTagger(9, 3, 4, 5).head.W.dtype == np.float32  # float32 by default


# ---- gradient checks (float64, tiny, random lengths with padding) -----------------------------------


@settings(max_examples=examples(20))
@given(
    data=token_sequences(9, batch_size=st.integers(1, 3), max_len=st.integers(1, 5)),
    pooling=st.sampled_from(["last", "mean"]),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_classifier_gradcheck(data, pooling, layers, bidirectional, seed):
    model = classifier(seed, pooling=pooling, num_layers=layers, bidirectional=bidirectional)
    assert gradcheck(lambda *_: model(data.values, data.lengths), model.parameters(), seed=seed)


@settings(max_examples=examples(20))
@given(
    data=token_sequences(9, batch_size=st.integers(1, 3), max_len=st.integers(1, 5)),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tagger_gradcheck(data, layers, bidirectional, seed):
    model = tagger(seed, num_layers=layers, bidirectional=bidirectional)
    tags = rng_of(seed).integers(0, 5, data.values.shape)
    assert gradcheck(
        lambda *_: (model(data.values, data.lengths), model.loss(data.values, data.lengths, tags)),
        model.parameters(),
        seed=seed,
    )


@st.composite
def seq2seq_batches(draw, tgt_vocab=7):
    """(src, src_lengths, tgt_in, tgt_out, out_lengths) with padding on both sides."""
    src = draw(token_sequences(9, batch_size=st.integers(1, 3), max_len=st.integers(1, 4)))
    B = len(src.lengths)
    out_lens = draw(lengths(B, st.integers(1, 4)))
    words = st.integers(4, tgt_vocab - 1)  # no <pad>/<bos>/<eos> inside a target
    targets = [draw(st.lists(words, min_size=int(n) - 1, max_size=int(n) - 1)) for n in out_lens]
    tgt_in, tgt_out, out_lengths = decoder_io(targets, None, BOS, EOS)
    return src.values, src.lengths, tgt_in, tgt_out, out_lengths


@settings(max_examples=examples(20))
@given(
    batch=seq2seq_batches(), layers=st.integers(1, 2), feed_context=st.booleans(), seed=st.integers(0, 2**16)
)
def test_seq2seq_gradcheck(batch, layers, feed_context, seed):
    src, src_lens, tgt_in, tgt_out, out_lens = batch
    model = seq2seq(seed, num_layers=layers, feed_context=feed_context)
    true_steps = tg.Tensor((np.arange(tgt_in.shape[1])[None, :] < out_lens[:, None])[:, :, None])

    def fn(*_):
        # Logits at padded target steps read <pad>'s embedding, which (as in PyTorch) gets no
        # gradient by design, so check the logits of the true steps and the loss.
        logits = tg.where(true_steps, model(src, src_lens, tgt_in), 0.0)
        return logits, model.loss(src, src_lens, tgt_in, tgt_out, out_lens)

    assert gradcheck(fn, model.parameters(), seed=seed)


# ---- padding does not matter -----------------------------------------------------------------------


@settings(max_examples=examples(15))
@given(
    data=token_sequences(9, batch_size=st.integers(1, 3), max_len=st.integers(1, 5)),
    extra=st.integers(1, 4),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    seed=st.integers(0, 999),
)
def test_classifier_and_tagger_do_not_depend_on_padding(data, extra, layers, bidirectional, seed):
    ids, lens = data.values, data.lengths
    labels = rng_of(seed).integers(0, 3, len(lens))
    tags = rng_of(seed).integers(0, 5, ids.shape)
    for pooling in ("last", "mean"):
        results = []
        for x, y in ((ids, tags), (pad_more(ids, extra), pad_more(tags, extra, pad=4))):
            model = classifier(seed, pooling=pooling, num_layers=layers, bidirectional=bidirectional)
            model.loss(x, lens, labels).backward()
            results.append((model(x, lens).numpy(), grads(model)))
        np.testing.assert_allclose(
            results[0][0],
            results[1][0],
            rtol=1e-12,
            atol=1e-14,
            err_msg=f"{pooling} pooling: logits changed with {extra} more padded steps",
        )
        assert_same_grads(
            results[0][1], results[1][1], f"classifier, {pooling} pooling, {extra} more padded steps"
        )
    results = []
    for x, y in ((ids, tags), (pad_more(ids, extra), pad_more(tags, extra, pad=4))):
        model = tagger(seed, num_layers=layers, bidirectional=bidirectional)
        model.loss(x, lens, y).backward()
        results.append((model(x, lens).numpy()[:, : ids.shape[1]], grads(model)))
    mask = data.mask
    np.testing.assert_allclose(
        results[0][0][mask],
        results[1][0][mask],
        rtol=1e-12,
        atol=1e-14,
        err_msg=f"tagger: logits of true tokens changed with {extra} more padded steps",
    )
    assert_same_grads(results[0][1], results[1][1], f"tagger, {extra} more padded steps")


@settings(max_examples=examples(15))
@given(
    batch=seq2seq_batches(),
    extra_src=st.integers(0, 3),
    extra_tgt=st.integers(0, 3),
    feed_context=st.booleans(),
    seed=st.integers(0, 999),
)
def test_seq2seq_does_not_depend_on_padding(batch, extra_src, extra_tgt, feed_context, seed):
    src, src_lens, tgt_in, tgt_out, out_lens = batch
    results = []
    for s, ti, to in (
        (src, tgt_in, tgt_out),
        (pad_more(src, extra_src), pad_more(tgt_in, extra_tgt), pad_more(tgt_out, extra_tgt, pad=5)),
    ):
        model = seq2seq(seed, num_layers=2, feed_context=feed_context)
        model.loss(s, src_lens, ti, to, out_lens).backward()
        results.append((model(s, src_lens, ti).numpy()[:, : tgt_in.shape[1]], grads(model)))
    true_steps = np.arange(tgt_in.shape[1])[None, :] < out_lens[:, None]
    np.testing.assert_allclose(
        results[0][0][true_steps],
        results[1][0][true_steps],
        rtol=1e-12,
        atol=1e-14,
        err_msg=f"seq2seq logits changed with {extra_src}/{extra_tgt} more padded steps",
    )
    assert_same_grads(results[0][1], results[1][1], f"seq2seq, {extra_src}/{extra_tgt} more padded steps")


# ---- the math of each model against a hand computation ----------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooling_last_and_mean_against_each_sequence_run_alone(bidirectional):
    ids, lens = padded([[4, 5, 6, 7], [8], [1, 2, 3]])
    H = 4
    for pooling in ("last", "mean"):
        model = classifier(3, pooling=pooling, num_layers=2, bidirectional=bidirectional)
        W, b = model.head.W.numpy(), model.head.b.numpy()
        got = model(ids, lens).numpy()
        for i, n in enumerate(lens):
            # The sequence alone, unpadded: no masking involved at all.
            out, _ = model.rnn(model.embed(ids[i : i + 1, :n]))
            h = out.numpy()[0]  # (n, D·H)
            if pooling == "mean":
                s = h.mean(axis=0)
            elif bidirectional:
                s = np.concatenate([h[n - 1, :H], h[0, H:]])  # [→h_n ; ←h_1]
            else:
                s = h[n - 1]
            np.testing.assert_allclose(
                got[i],
                s @ W + b,
                rtol=1e-12,
                atol=1e-14,
                err_msg=f"{pooling} pooling, bidirectional={bidirectional}, sequence {i}",
            )


def test_tagger_loss_ignores_padding_whatever_the_pad_tag():
    ids, lens = padded([[4, 5, 6], [7]])
    model = tagger()
    tags = np.array([[1, 2, 3], [4, 0, 0]])
    logits = model(ids, lens).numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = [logp[0, 0, 1], logp[0, 1, 2], logp[0, 2, 3], logp[1, 0, 4]]
    assert model.loss(ids, lens, tags).item() == pytest.approx(-np.mean(picked), rel=1e-12)
    other = tags.copy()
    other[1, 1:] = [3, 1]  # different ids at padding
    assert model.loss(ids, lens, other).item() == model.loss(ids, lens, tags).item()
    per_token = model.loss(ids, lens, tags, reduction="none").numpy()
    np.testing.assert_allclose(per_token[1, 1:], 0.0)
    assert model.predict(ids, lens) == [logits[0].argmax(-1).tolist(), [int(logits[1, 0].argmax())]]


def test_decoder_io_and_seq2seq_loss():
    tgt_in, tgt_out, out_lens = decoder_io(np.array([[5, 6, 0], [4, 0, 0], [0, 0, 0]]), [2, 1, 0], BOS, EOS)
    np.testing.assert_array_equal(tgt_in, [[BOS, 5, 6], [BOS, 4, 0], [BOS, 0, 0]])
    np.testing.assert_array_equal(tgt_out, [[5, 6, EOS], [4, EOS, 0], [EOS, 0, 0]])
    np.testing.assert_array_equal(out_lens, [3, 2, 1])
    src, src_lens = padded([[4, 5], [6], [7, 8]])
    model = seq2seq(1, feed_context=True)
    logits = model(src, src_lens, tgt_in).numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    per_seq = [sum(logp[b, t, tgt_out[b, t]] for t in range(out_lens[b])) for b in range(3)]
    np.testing.assert_allclose(
        model.sequence_log_prob(src, src_lens, tgt_in, tgt_out, out_lens).numpy(), per_seq, rtol=1e-12
    )
    assert model.loss(src, src_lens, tgt_in, tgt_out, out_lens).item() == pytest.approx(
        -sum(per_seq) / 6, rel=1e-12
    )


def test_encoder_final_state_initialises_the_decoder():
    src, src_lens = padded([[4, 5, 6], [7]])
    for feed_context in (False, True):
        model = seq2seq(2, num_layers=2, feed_context=feed_context)
        _, h_enc = model.encoder(model.src_embed(src[1:, :1]))  # sequence 1 alone, unpadded
        h = h_enc.numpy()[:, 0]  # (layers, H)
        y = model.tgt_embed.weight.numpy()[BOS]
        x = np.concatenate([y, h[-1]]) if feed_context else y  # [e(<bos>) ; c]
        for layer, cell in enumerate(model.decoder.cells):
            x = np.tanh(x @ cell.W.numpy() + h[layer] @ cell.V.numpy() + cell.b.numpy())
        expect = x @ model.out.W.numpy() + model.out.b.numpy()
        got = model(src, src_lens, np.array([[BOS], [BOS]])).numpy()[1, 0]
        np.testing.assert_allclose(got, expect, rtol=1e-12, err_msg=f"feed_context={feed_context}")


# ---- decoding ----------------------------------------------------------------------------------------


def reference_greedy(model, src, src_lens, max_len):
    """Greedy decoding the slow way: the teacher-forcing forward over the whole prefix, each step."""
    prefix = np.full((src.shape[0], 1), BOS)
    for _ in range(max_len):
        nxt = model(src, src_lens, prefix).numpy()[:, -1].argmax(axis=-1)
        prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
    rows = [row[1:].tolist() for row in prefix]
    return [row[: row.index(EOS)] if EOS in row else row for row in rows]


def decoding_model(seed, eos_bias, **kw):
    """A random model whose <eos> logit is raised by ``eos_bias``: outputs end at varied lengths."""
    model = seq2seq(seed, **kw)
    bias = model.out.b.numpy()
    bias[EOS] += eos_bias
    model.out.b.data = bias
    return model


@settings(max_examples=examples(20))
@given(
    src=token_sequences(9, batch_size=st.integers(1, 4), max_len=st.integers(1, 4)),
    max_len=st.integers(1, 6),
    layers=st.integers(1, 2),
    feed_context=st.booleans(),
    eos_bias=st.floats(0.0, 2.0),
    seed=st.integers(0, 999),
)
def test_greedy_equals_step_by_step_teacher_forcing(src, max_len, layers, feed_context, eos_bias, seed):
    model = decoding_model(seed, eos_bias, num_layers=layers, feed_context=feed_context)
    got, scores = model.generate(src.values, src.lengths, max_len, BOS, EOS, return_scores=True)
    assert got == reference_greedy(model, src.values, src.lengths, max_len)
    assert all(len(g) <= max_len and EOS not in g for g in got)
    np.testing.assert_allclose(
        scores,
        model.score(src.values, src.lengths, got, BOS, EOS, max_len=max_len),
        rtol=1e-10,
        err_msg="greedy scores must be the model's log-probabilities",
    )
    # The beam code with one hypothesis is greedy decoding too (same tokens up to <eos>, same scores).
    with tg.no_grad():
        h, c = model.encode(src.values, src.lengths)
        tokens, beam_scores = decoding.beam_search(model, h, c, max_len, BOS, EOS, 1)
    beam = [row[: row.index(EOS)] if EOS in row else row for row in tokens.tolist()]
    assert beam == got
    np.testing.assert_allclose(beam_scores, scores, rtol=1e-12)


@settings(max_examples=examples(20))
@given(
    src=token_sequences(9, batch_size=st.integers(1, 4), max_len=st.integers(1, 4)),
    max_len=st.integers(1, 6),
    beam=st.integers(2, 4),
    feed_context=st.booleans(),
    eos_bias=st.floats(0.0, 2.0),
    seed=st.integers(0, 999),
)
def test_beam_never_scores_lower_than_greedy(src, max_len, beam, feed_context, eos_bias, seed):
    model = decoding_model(seed, eos_bias, feed_context=feed_context)
    greedy, greedy_scores = model.generate(src.values, src.lengths, max_len, BOS, EOS, return_scores=True)
    assert model.generate(src.values, src.lengths, max_len, BOS, EOS, beam_size=1) == greedy
    found, scores = model.generate(
        src.values, src.lengths, max_len, BOS, EOS, beam_size=beam, return_scores=True
    )
    assert all(len(f) <= max_len and EOS not in f for f in found)
    np.testing.assert_allclose(
        scores,
        model.score(src.values, src.lengths, found, BOS, EOS, max_len=max_len),
        rtol=1e-10,
        err_msg="beam scores must be the model's log-probabilities",
    )
    assert np.all(scores >= greedy_scores - 1e-12), f"beam {scores} below greedy {greedy_scores}"


def test_beam_scores_are_the_log_probabilities_of_its_tokens_over_many_models():
    """The beam's own score of its best hypothesis is score() of the tokens it returns.

    A finished hypothesis's flag must move with it when the beam is re-sorted: when a live
    hypothesis ranked above a finished one has a child that outscores it, the child takes the
    finished one's place, and a flag left behind would end the child there at no cost (its
    <eos> unscored). That needs sharp output distributions (output weights scaled up) and an
    <eos> about as likely as the best word, and happens in a few percent of random models:
    hundreds of tiny ones, drawn reproducibly.
    """
    rng = np.random.default_rng(0)
    src, src_lens = padded([[4, 5, 6], [7], [8, 1]])
    mismatches = []
    for seed in range(250):
        model = seq2seq(seed, tgt_vocab_size=5, embed_dim=2, hidden_size=3, feed_context=bool(seed % 2))
        model.out.W.data = model.out.W.numpy() * 8.0  # sharp: the next token is clear
        bias = np.zeros(5)
        bias[EOS] = rng.uniform(-1.0, 1.0)  # <eos> competes with the best word
        model.out.b.data = bias
        max_len, K = int(rng.integers(3, 7)), int(rng.integers(2, 5))
        with tg.no_grad():
            h, c = model.encode(src, src_lens)
            tokens, scores = decoding.beam_search(model, h, c, max_len, BOS, EOS, K)
        found = [row[: row.index(EOS)] if EOS in row else row for row in tokens.tolist()]
        want = model.score(src, src_lens, found, BOS, EOS, max_len=max_len)
        if not np.allclose(scores, want, rtol=1e-10, atol=0):
            mismatches.append((seed, max_len, K, found, scores.tolist(), want.tolist()))
    assert not mismatches, (
        f"{len(mismatches)} models whose beam scores are not score(tokens): {mismatches[:3]}"
    )


def test_plain_beam_search_can_lose_to_greedy_so_generate_keeps_the_better():
    """The beam can prune the greedy path for prefixes that later do worse; generate guards against it."""
    src, src_lens = np.array([[4, 5, 6], [7, 8, 1]]), np.array([3, 2])
    model = seq2seq(27)
    with tg.no_grad():
        h, c = model.encode(src, src_lens)
        _, beam_scores = decoding.beam_search(model, h, c, 5, BOS, EOS, 2)
        _, greedy_scores = decoding.greedy(model, h, c, 5, BOS, EOS)
    assert beam_scores[1] < greedy_scores[1] - 1e-3, (
        "this seed is a known case of beam search losing to greedy"
    )
    _, scores = model.generate(src, src_lens, 5, BOS, EOS, beam_size=2, return_scores=True)
    np.testing.assert_array_equal(scores, np.maximum(beam_scores, greedy_scores))


def test_a_wide_enough_beam_is_exhaustive_search():
    """With beam ≥ V^(max_len − 1) nothing is ever pruned: the beam finds the best sequence of all."""
    V, max_len = 5, 3
    src, src_lens = padded([[4, 5, 6], [7], [1, 8]])
    model = decoding_model(11, 1.0, tgt_vocab_size=V, hidden_size=5, feed_context=True)
    words = [t for t in range(V) if t != EOS]
    candidates = [list(c) for n in range(max_len + 1) for c in itertools.product(words, repeat=n)]
    for b in range(len(src)):
        n = len(candidates)
        all_scores = model.score(
            np.repeat(src[b : b + 1], n, 0),
            np.repeat(src_lens[b : b + 1], n),
            candidates,
            BOS,
            EOS,
            max_len=max_len,
        )
        with tg.no_grad():
            h, c = model.encode(src[b : b + 1], src_lens[b : b + 1])
            tokens, score = decoding.beam_search(model, h, c, max_len, BOS, EOS, V ** (max_len - 1))
        row = tokens.tolist()[0]
        assert (row[: row.index(EOS)] if EOS in row else row) == candidates[int(np.argmax(all_scores))]
        assert score[0] == pytest.approx(all_scores.max(), rel=1e-12)


def test_generation_stops_at_eos_and_respects_max_len():
    src, src_lens = padded([[4, 5, 6], [7]])
    model = seq2seq(4)
    W = model.out.W.numpy()
    model.out.W.data = np.zeros_like(W)
    for favourite, expect in ((EOS, []), (5, [5] * 4)):
        bias = np.zeros(7)
        bias[favourite] = 20.0
        model.out.b.data = bias
        for beam in (1, 3):
            assert model.generate(src, src_lens, 4, BOS, EOS, beam_size=beam) == [expect, expect]
    # Ends at <eos> mid-way: token 5 first, then <eos> (the recurrent state tells the steps apart).
    model = seq2seq(4, hidden_size=1, embed_dim=1)
    model.tgt_embed.weight.data = np.where(np.arange(7)[:, None] == BOS, 1.0, -1.0)
    model.decoder.cells[0].W.data = np.array([[3.0]])
    model.decoder.cells[0].V.data = np.array([[0.0]])
    model.decoder.cells[0].b.data = np.array([0.0])
    out = np.zeros((1, 7))
    out[0, 5], out[0, EOS] = 10.0, -10.0  # s > 0 → 5, s < 0 → <eos>
    model.out.W.data, model.out.b.data = out, np.zeros(7)
    assert model.generate(src, src_lens, 6, BOS, EOS) == [[5], [5]]
    assert model.generate(src, src_lens, 1, BOS, EOS) == [[5], [5]]  # unfinished after 1 token


# ---- dropout ---------------------------------------------------------------------------------------

# The decoders dropout must work with: plain, feed_context, attention over a bidirectional encoder.
DECODERS = [dict(), dict(feed_context=True), dict(attention="additive", bidirectional=True)]


def small_batch():
    """(src, src_lengths, tgt_in, tgt_out, out_lengths), padded on both sides."""
    src, src_lens = padded([[4, 5, 6], [7], [8, 1]])
    return (src, src_lens, *decoder_io([[4], [5, 6], []], None, BOS, EOS))


def rng_state(rng):
    return rng.bit_generator.state


@pytest.mark.parametrize("decoder", DECODERS)
def test_dropout_zero_is_the_model_without_it(decoder):
    """dropout=0 is today's model bit for bit: the same parameters from the same seed, the same
    loss and gradients, and no random number drawn — in training mode too. A model with p > 0
    draws the same weights as well (dropout draws nothing when it is built)."""
    batch = small_batch()
    plain, zero, drop = (
        seq2seq(3, **decoder),
        seq2seq(3, dropout=0.0, **decoder),
        seq2seq(3, dropout=0.5, **decoder),
    )
    for model in (zero, drop):
        assert list(model.state_dict()) == list(plain.state_dict())
        for name, value in plain.state_dict().items():
            np.testing.assert_array_equal(model.state_dict()[name], value, err_msg=name)
    zero.dropout.rng = rng = rng_of(0)
    before = rng_state(rng)
    losses = []
    for model in (plain, zero):
        loss = model.loss(*batch)
        loss.backward()
        losses.append((loss.item(), grads(model)))
    assert zero.training and rng_state(rng) == before, "p = 0 must draw nothing"
    assert losses[0][0] == losses[1][0]
    for name in losses[0][1]:
        np.testing.assert_array_equal(losses[0][1][name], losses[1][1][name], err_msg=name)


@pytest.mark.parametrize("decoder", DECODERS)
def test_dropout_acts_in_training_mode_only_and_never_in_decoding(decoder):
    batch = small_batch()
    plain, model = seq2seq(3, **decoder), seq2seq(3, dropout=0.5, **decoder)  # the same weights
    without = plain.loss(*batch).item()
    first, second = model.loss(*batch).item(), model.loss(*batch).item()  # training mode: the default
    assert len({without, first, second}) == 3, "training mode: a fresh mask at every call"
    model.eval()
    assert model.loss(*batch).item() == model.loss(*batch).item() == without, "eval mode: the identity"
    # Decoding and scoring run in eval mode whatever the model's mode, and restore every module's mode.
    model.train()
    model.encoder.eval()
    src, src_lens = batch[:2]
    for beam in (1, 2):
        tokens, scores = plain.generate(src, src_lens, 5, BOS, EOS, beam_size=beam, return_scores=True)
        got, got_scores = model.generate(src, src_lens, 5, BOS, EOS, beam_size=beam, return_scores=True)
        assert got == tokens
        np.testing.assert_array_equal(got_scores, scores)
        np.testing.assert_array_equal(
            model.score(src, src_lens, tokens, BOS, EOS, max_len=5),
            plain.score(src, src_lens, tokens, BOS, EOS, max_len=5),
        )
    assert model.training and model.dropout.training and not model.encoder.training


@pytest.mark.parametrize("decoder", DECODERS)
def test_dropout_drops_the_embedded_tokens_and_the_output_layers_input(decoder, monkeypatch):
    """The three places: e(x_j) (B, S, E), e(y_{t-1}) (B, T, E), and s_t or [s_t ; c_t] (B, T, ·)."""
    model = seq2seq(3, dropout=0.5, **decoder)
    seen, forward = [], model.dropout.forward
    monkeypatch.setattr(model.dropout, "forward", lambda x: seen.append(x.shape) or forward(x))
    model.loss(*small_batch())
    assert seen == [(3, 3, 3), (3, 3, 3), (3, 3, model.out.in_features)]


@settings(max_examples=examples(15), deadline=None)
@given(
    batch=seq2seq_batches(),
    decoder=st.sampled_from(DECODERS),
    layers=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_seq2seq_gradcheck_with_dropout(batch, decoder, layers, seed):
    """Training mode with a fixed mask: the generator is reseeded before every forward pass, so
    each of gradcheck's passes drops the same elements and the model is one smooth function."""
    src, src_lens, tgt_in, tgt_out, out_lens = batch
    model = seq2seq(seed, num_layers=layers, dropout=0.3, **decoder)
    true_steps = tg.Tensor((np.arange(tgt_in.shape[1])[None, :] < out_lens[:, None])[:, :, None])

    def fn(*_):
        model.dropout.rng = rng_of(seed)  # the same masks in every pass
        logits = tg.where(true_steps, model(src, src_lens, tgt_in), 0.0)
        model.dropout.rng = rng_of(seed)
        return logits, model.loss(src, src_lens, tgt_in, tgt_out, out_lens)

    assert model.training
    assert gradcheck(fn, model.parameters(), seed=seed)


def test_dropout_masks_come_from_the_seeded_host_generator():
    """Built without rng=, the masks are drawn from the host generator (tg.manual_seed): a seed
    gives the same masks, and restoring its state — what fit(resume=True) does — repeats them."""
    from tinygrad_rnn.backend import host_rng

    batch = small_batch()
    runs = []
    for _ in range(2):
        tg.manual_seed(11)
        model = Seq2Seq(9, 7, 3, 4, attention="additive", dropout=0.5, dtype=F64)
        state = rng_state(host_rng())
        losses = [model.loss(*batch).item() for _ in range(3)]
        host_rng().bit_generator.state = state
        assert model.loss(*batch).item() == losses[0]
        runs.append(losses)
    assert runs[0] == runs[1] and len(set(runs[0])) == 3


@pytest.mark.parametrize("device", device_params())
def test_dropout_masks_are_the_same_on_every_device(device):
    """The masks are drawn on the host and moved: one seed drops the same elements everywhere."""
    batch = small_batch()
    results = []
    for d in ("cpu", device):
        model = seq2seq(7, dropout=0.5, attention="additive").to(d)
        model.dropout.rng = rng_of(1)
        loss = model.loss(*batch)
        loss.backward()
        results.append((loss.item(), grads(model)))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-12)
    assert_same_grads(results[0][1], results[1][1], f"Seq2Seq with dropout on {device}")


def test_dropout_out_of_range_is_refused():
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"dropout probability p must be in \[0, 1\)"):
            seq2seq(dropout=p)


# ---- devices -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", device_params())
def test_models_on_each_device_like_on_cpu(device):
    ids, lens = padded([[4, 5, 6], [7], [8, 1]])
    tgt_in, tgt_out, out_lens = decoder_io([[4], [5, 6], []], None, BOS, EOS)
    cases = [
        (
            lambda d: classifier(7, pooling="last", bidirectional=True, num_layers=2).to(d),
            lambda m: m.loss(ids, tg.Tensor(lens, device=m.device), [0, 2, 1]),
        ),
        (
            lambda d: tagger(7, bidirectional=True).to(d),
            lambda m: m.loss(ids, lens, np.ones((3, 3), dtype=np.int64)),
        ),
        (
            lambda d: seq2seq(7, feed_context=True).to(d),
            lambda m: m.loss(ids, lens, tgt_in, tgt_out, out_lens),
        ),
    ]
    for make, loss_of in cases:
        results = []
        for d in ("cpu", device):
            model = make(d)
            loss = loss_of(model)
            assert loss.device == d
            loss.backward()
            results.append((loss.item(), grads(model)))
        assert results[1][0] == pytest.approx(results[0][0], rel=1e-12)
        assert_same_grads(results[0][1], results[1][1], f"{type(model).__name__} on {device}")


@contextlib.contextmanager
def count_device_reads(monkeypatch):
    """Count every way a strict-device value reaches the host: copies and scalar reads."""
    counts = {"copies": 0, "scalar reads": 0}
    Array = strict_backend.StrictArray
    get, getattr_ = Array.get, Array.__getattr__

    def counting(kind, fn):
        def wrapped(*args, **kwargs):
            counts[kind] += 1
            return fn(*args, **kwargs)

        return wrapped

    def counting_getattr(self, name):
        if name in ("item", "tolist"):
            counts["scalar reads"] += 1
        return getattr_(self, name)

    with monkeypatch.context() as m:
        m.setattr(Array, "get", counting("copies", get))
        for dunder in ("__bool__", "__int__", "__float__"):
            m.setattr(Array, dunder, counting("scalar reads", getattr(Array, dunder)))
        m.setattr(Array, "__getattr__", counting_getattr)
        yield counts


def test_generate_on_the_strict_device_reads_back_once(monkeypatch):
    src, src_lens = padded([[4, 5, 6], [7], [8, 1]])
    cpu = decoding_model(8, 1.0, num_layers=2, feed_context=True)
    strict = decoding_model(8, 1.0, num_layers=2, feed_context=True).to("strict")
    for beam in (1, 3):
        expect = cpu.generate(src, src_lens, 7, BOS, EOS, beam_size=beam)
        assert strict.generate(src, src_lens, 7, BOS, EOS, beam_size=beam) == expect
        reads = {}
        for max_len in (2, 9):
            with count_device_reads(monkeypatch) as counts:
                strict.generate(src, src_lens, max_len, BOS, EOS, beam_size=beam)
            reads[max_len] = dict(counts)
        assert reads[2] == reads[9], f"beam {beam}: device reads grow with the number of steps: {reads}"
        assert reads[9]["copies"] == 1, (
            f"beam {beam}: want one device→host copy of the tokens, got {reads[9]}"
        )
        # The only scalar read is the source embedding's id range check, once per call.
        assert reads[9]["scalar reads"] <= 1, reads[9]
