"""Additive attention and the attention encoder–decoder: the formula, gradients, masking, padding,
decoding, devices, and the heatmap."""

import json

import numpy as np
import pytest
from devices import device_params
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models import (
    BOS,
    EOS,
    assert_same_grads,
    count_device_reads,
    grads,
    pad_more,
    padded,
    reference_greedy,
    rng_of,
)

import tinygrad_rnn as tg
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.models import Seq2Seq, decoder_io, decoding
from tinygrad_rnn.models.seq2seq import ATTENTIONS
from tinygrad_rnn.nn import AdditiveAttention
from tinygrad_rnn.tensor import ShapeError
from tinygrad_rnn.testing import examples, floats, lengths, token_sequences

F64 = np.float64


def attention_model(seed=0, **kw):
    args = dict(src_vocab_size=9, tgt_vocab_size=7, embed_dim=3, hidden_size=4, attention="additive")
    args.update(kw)
    return Seq2Seq(**args, dtype=F64, rng=rng_of(seed))


@st.composite
def batches(draw, tgt_vocab=7, max_src=5):
    """(src, src_lengths, tgt_in, tgt_out, out_lengths) with padding on both sides."""
    src = draw(token_sequences(9, batch_size=st.integers(1, 3), max_len=st.integers(1, max_src)))
    out_lens = draw(lengths(len(src.lengths), st.integers(1, 4)))
    words = st.integers(4, tgt_vocab - 1)
    targets = [draw(st.lists(words, min_size=int(n) - 1, max_size=int(n) - 1)) for n in out_lens]
    return (src.values, src.lengths, *decoder_io(targets, None, BOS, EOS))


def true_step_mask(tgt_in, out_lens):
    return np.arange(tgt_in.shape[1])[None, :] < out_lens[:, None]


# ---- the attention layer against the formula ---------------------------------------------------------


def numpy_attention(att, s, h, lens):
    """score_j = vᵀ tanh(s W_s + h_j U_h), softmax over j < len, c = Σ_j α_j h_j — written out."""
    W_s, U_h, v = att.W_s.numpy(), att.U_h.numpy(), att.v.numpy()
    B, S, _ = h.shape
    alpha = np.zeros((B, S))
    for b in range(B):
        score = np.array([v @ np.tanh(s[b] @ W_s + h[b, j] @ U_h) for j in range(lens[b])])
        e = np.exp(score - score.max())
        alpha[b, : lens[b]] = e / e.sum()
    return np.einsum("bs,bsd->bd", alpha, h), alpha


@settings(max_examples=examples(20), deadline=None)
@given(
    data=st.data(),
    B=st.integers(1, 3),
    S=st.integers(1, 5),
    sizes=st.tuples(*[st.integers(1, 4)] * 3),
    seed=st.integers(0, 999),
)
def test_additive_attention_is_the_formula_and_its_gradient_is_right(data, B, S, sizes, seed):
    Hq, Hk, A = sizes
    att = AdditiveAttention(Hq, Hk, A, dtype=F64, rng=rng_of(seed))
    lens = data.draw(lengths(B, S))
    s = tg.Tensor(data.draw(floats((B, Hq))), requires_grad=True)
    h = tg.Tensor(data.draw(floats((B, S, Hk))), requires_grad=True)
    mask = tg.Tensor(np.arange(S)[None, :] < lens[:, None])
    context, alpha = att(s, att.project_keys(h), h, mask)
    want_c, want_alpha = numpy_attention(att, s.numpy(), h.numpy(), lens)
    np.testing.assert_allclose(alpha.numpy(), want_alpha, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(context.numpy(), want_c, rtol=1e-12, atol=1e-15)
    assert np.all(alpha.numpy()[~mask.numpy()] == 0.0), "padding must get exactly zero weight"
    assert gradcheck(
        lambda s, h, *p: att(s, att.project_keys(h), h, mask), [s, h, *att.parameters()], seed=seed
    )


def test_masked_positions_pass_no_gradient_and_bad_shapes_are_named():
    att = AdditiveAttention(2, 3, 4, dtype=F64, rng=rng_of(1))
    h = tg.Tensor(rng_of(2).standard_normal((2, 3, 3)), requires_grad=True)
    mask = tg.Tensor(np.array([[True, True, False], [True, False, False]]))
    context, alpha = att(tg.Tensor(np.ones((2, 2))), att.project_keys(h), h, mask)
    (context.sum() + (alpha * alpha).sum()).backward()
    assert np.all(h.grad[~mask.numpy()] == 0.0) and np.all(np.isfinite(h.grad))
    with pytest.raises(ShapeError, match=r"query of shape \(2, 5\)"):
        att(tg.Tensor(np.ones((2, 5))), att.project_keys(h), h, mask)
    with pytest.raises(ShapeError, match=r"encoder states of shape \(2, 3, 2\)"):
        att.project_keys(tg.Tensor(np.ones((2, 3, 2))))
    with pytest.raises(ShapeError, match="mask of shape"):
        att(tg.Tensor(np.ones((2, 2))), att.project_keys(h), h, tg.Tensor(np.ones((2, 2), dtype=bool)))


def test_a_mask_row_with_no_true_position_is_refused_naming_the_rows():
    """Its softmax would be 0 / 0: nan weights and context, silently (Seq2Seq refuses empty sources)."""
    att = AdditiveAttention(2, 3, 4, dtype=F64, rng=rng_of(1))
    h = tg.Tensor(rng_of(2).standard_normal((4, 3, 3)))
    mask = np.ones((4, 3), dtype=bool)
    mask[1] = mask[3] = False
    with pytest.raises(ValueError, match=r"mask of batch row\(s\) 1, 3 is all False"):
        att(tg.Tensor(np.ones((4, 2))), att.project_keys(h), h, tg.Tensor(mask))
    mask[1, 2] = mask[3, 0] = True  # one true position per row is enough
    context, alpha = att(tg.Tensor(np.ones((4, 2))), att.project_keys(h), h, tg.Tensor(mask))
    assert np.isfinite(context.numpy()).all()
    np.testing.assert_allclose(alpha.numpy()[[1, 3]], [[0, 0, 1], [1, 0, 0]])


# ---- the model ------------------------------------------------------------------------------------------


@settings(max_examples=examples(20), deadline=None)
@given(
    batch=batches(),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    hidden=st.integers(1, 4),
    embed=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_attention_seq2seq_gradcheck(batch, layers, bidirectional, hidden, embed, seed):
    src, src_lens, tgt_in, tgt_out, out_lens = batch
    model = attention_model(
        seed, num_layers=layers, bidirectional=bidirectional, hidden_size=hidden, embed_dim=embed
    )
    true_steps = tg.Tensor(true_step_mask(tgt_in, out_lens)[:, :, None])

    def fn(*_):
        # As for the plain model: padded target steps read <pad>'s embedding, which gets no gradient.
        logits = tg.where(true_steps, model(src, src_lens, tgt_in), 0.0)
        weights = tg.where(true_steps, model.attention_weights(src, src_lens, tgt_in), 0.0)
        return logits, weights, model.loss(src, src_lens, tgt_in, tgt_out, out_lens)

    assert gradcheck(fn, model.parameters(), seed=seed)


@settings(max_examples=examples(15), deadline=None)
@given(batch=batches(), bidirectional=st.booleans(), seed=st.integers(0, 999))
def test_weights_sum_to_one_over_the_true_source_and_are_zero_on_padding(batch, bidirectional, seed):
    src, src_lens, tgt_in, _, _ = batch
    model = attention_model(seed, bidirectional=bidirectional)
    alpha = model.attention_weights(src, src_lens, tgt_in).numpy()  # (B, T, S)
    true_src = np.arange(src.shape[1])[None, None, :] < src_lens[:, None, None]
    assert alpha.shape == (*tgt_in.shape, src.shape[1])
    assert np.all(alpha[np.broadcast_to(~true_src, alpha.shape)] == 0.0)
    np.testing.assert_allclose(alpha.sum(axis=2), 1.0, rtol=1e-12)
    for beam in (1, 3):
        out, weights = model.generate(src, src_lens, 5, BOS, EOS, beam_size=beam, return_attention=True)
        assert weights.shape == (len(src), 5, src.shape[1])
        for b, row in enumerate(out):
            steps = len(row) + 1 if len(row) < 5 else 5  # the <eos> step too
            np.testing.assert_allclose(weights[b, :steps].sum(axis=1), 1.0, rtol=1e-12)
            assert np.all(weights[b, :, src_lens[b] :] == 0.0) and np.all(weights[b, steps:] == 0.0)


@settings(max_examples=examples(15), deadline=None)
@given(
    batch=batches(),
    extra_src=st.integers(0, 3),
    extra_tgt=st.integers(0, 3),
    bidirectional=st.booleans(),
    seed=st.integers(0, 999),
)
def test_logits_weights_and_gradients_do_not_depend_on_padding(
    batch, extra_src, extra_tgt, bidirectional, seed
):
    src, src_lens, tgt_in, tgt_out, out_lens = batch
    results = []
    for s, ti, to in (
        (src, tgt_in, tgt_out),
        (pad_more(src, extra_src), pad_more(tgt_in, extra_tgt), pad_more(tgt_out, extra_tgt, pad=5)),
    ):
        model = attention_model(seed, num_layers=2, bidirectional=bidirectional)
        model.loss(s, src_lens, ti, to, out_lens).backward()
        T, S = tgt_in.shape[1], src.shape[1]
        results.append(
            (
                model(s, src_lens, ti).numpy()[:, :T],
                grads(model),
                model.attention_weights(s, src_lens, ti).numpy()[:, :T],
            )
        )
    keep = true_step_mask(tgt_in, out_lens)
    np.testing.assert_allclose(
        results[0][0][keep],
        results[1][0][keep],
        rtol=1e-12,
        atol=1e-14,
        err_msg=f"logits changed with {extra_src}/{extra_tgt} more padded steps",
    )
    np.testing.assert_allclose(
        results[0][2][keep],
        results[1][2][keep][:, :S],
        rtol=1e-12,
        atol=1e-14,
        err_msg=f"attention weights changed with {extra_src} more padded source steps",
    )
    assert np.all(results[1][2][:, :, S:] == 0.0)
    assert_same_grads(
        results[0][1], results[1][1], f"attention seq2seq, {extra_src}/{extra_tgt} more padded steps"
    )


def test_one_sequence_alone_equals_it_in_a_padded_batch():
    src, src_lens = padded([[4, 5, 6, 7], [8], [1, 4]])
    tgt_in, _, _ = decoder_io([[4, 5], [6], [4, 4, 4]], None, BOS, EOS)
    model = attention_model(5, bidirectional=True)
    batch = model.attention_weights(src, src_lens, tgt_in).numpy()
    for b in range(3):
        n, m = src_lens[b], len([[4, 5], [6], [4, 4, 4]][b]) + 1
        alone = model.attention_weights(
            src[b : b + 1, :n], src_lens[b : b + 1], tgt_in[b : b + 1, :m]
        ).numpy()
        np.testing.assert_allclose(batch[b, :m, :n], alone[0], rtol=1e-12)


def test_start_state_and_sizes_follow_the_definition():
    src, src_lens = padded([[4, 5, 6], [7]])
    for bidirectional in (False, True):
        model = attention_model(3, bidirectional=bidirectional, num_layers=2, hidden_size=5, embed_dim=2)
        D = 2 if bidirectional else 1
        assert model.decoder.cells[0].W.shape == (2 + D * 5, 5)  # [e(y) ; c_t]
        assert model.out.W.shape == (5 + D * 5, 7)  # [s_t ; c_t]
        assert model.attention.U_h.shape == (D * 5, 5)
        with tg.no_grad():
            s0, memory = model.encode(src, src_lens)
            outputs, h = model.encoder(model.src_embed(tg.Tensor(src)), lengths=src_lens)
        if bidirectional:
            h = h.numpy()
            for layer, bridge in enumerate(model.bridge):
                x = np.concatenate([h[2 * layer], h[2 * layer + 1]], axis=1)
                want = np.tanh(
                    x @ bridge.W.numpy() + bridge.b.numpy()
                )  # tanh([h_fwd_last ; h_bwd_first] W_0 + b_0)
                np.testing.assert_allclose(s0.numpy()[layer], want, rtol=1e-12)
        else:
            np.testing.assert_array_equal(s0.numpy(), h.numpy())
        np.testing.assert_allclose(
            memory.keys.numpy(), outputs.numpy() @ model.attention.U_h.numpy(), rtol=1e-12
        )


def test_plain_model_keeps_its_parameters_so_old_checkpoints_load():
    plain = Seq2Seq(9, 7, 3, 4, dtype=F64, rng=rng_of(0))
    assert [n for n, _ in plain.named_parameters()] == [
        "src_embed.weight",
        "encoder.cells.0.W",
        "encoder.cells.0.V",
        "encoder.cells.0.b",
        "tgt_embed.weight",
        "decoder.cells.0.W",
        "decoder.cells.0.V",
        "decoder.cells.0.b",
        "out.W",
        "out.b",
    ]
    # The attention model draws the plain model's weights first: a seed gives the same embeddings.
    att = attention_model(0)
    np.testing.assert_array_equal(att.src_embed.weight.numpy(), plain.src_embed.weight.numpy())
    with pytest.raises(tg.nn.StateDictError):
        plain.load_state_dict(att.state_dict())


def test_bad_options_get_clear_errors():
    with pytest.raises(ValueError, match="attention must be one of"):
        attention_model(attention="dot")
    with pytest.raises(ValueError, match="choose one"):
        attention_model(feed_context=True)
    src, src_lens = padded([[4, 5]])
    with pytest.raises(ValueError, match="return_attention=True needs a model with attention"):
        Seq2Seq(9, 7, 3, 4).generate(src, src_lens, 3, BOS, EOS, return_attention=True)
    with pytest.raises(ValueError, match="has no attention"):
        Seq2Seq(9, 7, 3, 4).attention_weights(src, src_lens, [[BOS]])


# ---- decoding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_two_layer_attention_weights_are_those_assembled_by_hand(cell, bidirectional):
    """Each step's query is the *top* decoder layer's previous state s_{t-1}: the weights of a
    teacher-forced pass equal a reference built from the cells and the attention formula."""
    src, src_lens = padded([[4, 5, 6, 7], [8], [1, 4, 2]])
    tgt_in, _, _ = decoder_io([[4, 5, 6], [6], [4, 1]], None, BOS, EOS)
    model = attention_model(11, cell=cell, num_layers=2, bidirectional=bidirectional, hidden_size=4)
    got = model.attention_weights(src, src_lens, tgt_in).numpy()  # (B, T, S)
    with tg.no_grad():
        s0, memory = model.encode(src, src_lens)
        y = model.tgt_embed(tg.Tensor(tgt_in)).numpy()  # e(y_{t-1}), (B, T, E)
        parts = [p.numpy() for p in (s0 if isinstance(s0, tuple) else (s0,))]
        states = [tuple(tg.Tensor(p[layer]) for p in parts) for layer in range(2)]
        states = [s if len(s) > 1 else s[0] for s in states]
        values = memory.values.numpy()
        want = []
        for t in range(tgt_in.shape[1]):
            top = model.decoder.cells[1].hidden(states[1]).numpy()  # s_{t-1} of the top layer
            context, alpha = numpy_attention(model.attention, top, values, src_lens)
            want.append(alpha)
            x = tg.Tensor(np.concatenate([y[:, t], context], axis=1))  # [e(y_{t-1}) ; c_t]
            for layer, decoder_cell in enumerate(model.decoder.cells):
                states[layer] = decoder_cell(x, states[layer])
                x = decoder_cell.hidden(states[layer])
    np.testing.assert_allclose(got, np.stack(want, axis=1), rtol=1e-12, atol=1e-15)


def decoding_model(seed, eos_bias, **kw):
    model = attention_model(seed, **kw)
    bias = model.out.b.numpy()
    bias[EOS] += eos_bias
    model.out.b.data = bias
    return model


@settings(max_examples=examples(20), deadline=None)
@given(
    src=token_sequences(9, batch_size=st.integers(1, 4), max_len=st.integers(1, 5)),
    max_len=st.integers(1, 6),
    layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    eos_bias=st.floats(0.0, 2.0),
    seed=st.integers(0, 999),
)
def test_greedy_is_step_by_step_teacher_forcing_and_beam_one_is_greedy(
    src, max_len, layers, bidirectional, eos_bias, seed
):
    model = decoding_model(seed, eos_bias, num_layers=layers, bidirectional=bidirectional)
    got, scores, weights = model.generate(
        src.values, src.lengths, max_len, BOS, EOS, return_scores=True, return_attention=True
    )
    assert got == reference_greedy(model, src.values, src.lengths, max_len)
    np.testing.assert_allclose(
        scores, model.score(src.values, src.lengths, got, BOS, EOS, max_len=max_len), rtol=1e-10
    )
    # The weights of decoding are those of teacher forcing on the decoded output.
    tgt_in, _, out_lens = decoder_io(got, None, BOS, EOS)
    forced = model.attention_weights(src.values, src.lengths, tgt_in).numpy()
    for b, n in enumerate(out_lens):
        n = min(n, max_len)
        np.testing.assert_allclose(weights[b, :n], forced[b, :n], rtol=1e-10, atol=1e-15)
    with tg.no_grad():
        h, memory = model.encode(src.values, src.lengths)
        tokens, beam_scores, beam_weights = decoding.beam_search(
            model, h, memory, max_len, BOS, EOS, 1, return_attention=True
        )
        _, _, greedy_weights = decoding.greedy(model, h, memory, max_len, BOS, EOS, return_attention=True)
    assert [row[: row.index(EOS)] if EOS in row else row for row in tokens.tolist()] == got
    np.testing.assert_allclose(beam_scores, scores, rtol=1e-12)
    np.testing.assert_allclose(beam_weights, greedy_weights, rtol=1e-12)


@settings(max_examples=examples(20), deadline=None)
@given(
    src=token_sequences(9, batch_size=st.integers(1, 4), max_len=st.integers(1, 5)),
    max_len=st.integers(1, 6),
    beam=st.integers(2, 4),
    bidirectional=st.booleans(),
    eos_bias=st.floats(0.0, 2.0),
    seed=st.integers(0, 999),
)
def test_beam_never_scores_lower_than_greedy(src, max_len, beam, bidirectional, eos_bias, seed):
    model = decoding_model(seed, eos_bias, bidirectional=bidirectional)
    greedy, greedy_scores = model.generate(src.values, src.lengths, max_len, BOS, EOS, return_scores=True)
    found, scores, weights = model.generate(
        src.values, src.lengths, max_len, BOS, EOS, beam_size=beam, return_scores=True, return_attention=True
    )
    np.testing.assert_allclose(
        scores,
        model.score(src.values, src.lengths, found, BOS, EOS, max_len=max_len),
        rtol=1e-10,
        err_msg="beam scores must be the model's log-probabilities",
    )
    assert np.all(scores >= greedy_scores - 1e-12), f"beam {scores} below greedy {greedy_scores}"
    tgt_in, _, out_lens = decoder_io(found, None, BOS, EOS)
    forced = model.attention_weights(src.values, src.lengths, tgt_in).numpy()
    for b, n in enumerate(out_lens):  # the beam's weights follow its chosen hypothesis
        n = min(n, max_len)
        np.testing.assert_allclose(weights[b, :n], forced[b, :n], rtol=1e-10, atol=1e-15)


# ---- devices ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", device_params())
def test_attention_model_on_each_device_like_on_cpu(device):
    src, src_lens = padded([[4, 5, 6], [7], [8, 1]])
    tgt_in, tgt_out, out_lens = decoder_io([[4], [5, 6], []], None, BOS, EOS)
    results = []
    for d in ("cpu", device):
        model = attention_model(7, bidirectional=True, num_layers=2).to(d)
        loss = model.loss(src, src_lens, tgt_in, tgt_out, out_lens)
        assert loss.device == d
        loss.backward()
        out = model.generate(
            src, src_lens, 4, BOS, EOS, beam_size=2, return_scores=True, return_attention=True
        )
        results.append((loss.item(), grads(model), out))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-12)
    assert_same_grads(results[0][1], results[1][1], f"attention Seq2Seq on {device}")
    assert results[1][2][0] == results[0][2][0]
    for got, want in zip(results[1][2][1:], results[0][2][1:]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_attention_decoding_on_the_strict_device_reads_back_a_fixed_number_of_times(monkeypatch):
    src, src_lens = padded([[4, 5, 6], [7], [8, 1]])
    strict = decoding_model(8, 1.0, num_layers=2, bidirectional=True).to("strict")
    for beam in (1, 3):
        reads = {}
        for max_len in (2, 9):
            with count_device_reads(monkeypatch) as counts:
                strict.generate(src, src_lens, max_len, BOS, EOS, beam_size=beam, return_attention=True)
            reads[max_len] = dict(counts)
        assert reads[2] == reads[9], f"beam {beam}: device reads grow with the number of steps: {reads}"
        assert reads[9]["copies"] == 2, f"beam {beam}: want two copies (tokens, weights), got {reads[9]}"


# ---- seeing it ------------------------------------------------------------------------------------------


def test_terminal_rendering_marks_each_rows_strongest_source_token():
    from tinygrad_rnn.plotting.attention import render_attention

    weights = np.array([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.0, 1.0]])
    text = render_attention(weights, ["银", "行", "家"], ["yín", "háng", "<eos>"])
    lines = text.splitlines()
    assert lines[0].endswith("│银行家")
    assert lines[1] == "yín   │██      ← 银 0.90"
    assert lines[2].startswith("háng  │  ██  ") and lines[3].endswith("← 家 1.00")
    with pytest.raises(ValueError, match=r"weights of shape \(3, 3\) do not fit 2 output tokens × 3 source"):
        render_attention(weights, ["a", "b", "c"], ["x", "y"])


def test_heatmap_is_written_and_says_when_no_cjk_font_exists(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from tinygrad_rnn.plotting import attention as attention_plot

    weights = np.array([[0.7, 0.3], [0.2, 0.8]])
    assert attention_plot.plot_attention(weights, ["1", "2"], ["x", "y"], tmp_path / "ascii.png") is None
    assert (tmp_path / "ascii.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(attention_plot, "find_cjk_font", lambda sample: None)
    note = attention_plot.plot_attention(weights, ["银", "行"], ["yín", "háng"], tmp_path / "cjk.png")
    assert "no font with Chinese glyphs" in note and "fonts-noto-cjk" in note
    assert (tmp_path / "cjk.png").exists()


def test_attention_for_one_text_labels_rows_with_the_outputs_and_eos():
    from tinygrad_rnn.data import Vocab
    from tinygrad_rnn.models.decoding import attention_for

    src_vocab, tgt_vocab = Vocab(["一", "二", "三", "四", "五"]), Vocab(["1", "2", "3"])
    model = decoding_model(3, 1.5, src_vocab_size=len(src_vocab), tgt_vocab_size=len(tgt_vocab))
    labels, weights = attention_for(model, src_vocab, tgt_vocab, ["三", "五", "x"], max_len=4)
    out = model.generate(np.array([src_vocab.encode(["三", "五", "x"])]), np.array([3]), 4, BOS, EOS)[0]
    assert labels[: len(out)] == [tgt_vocab.id_to_token(i) for i in out]
    assert labels[len(out) :] == (["<eos>"] if len(out) < 4 else [])
    assert weights.shape == (len(labels), 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="no tokens"):
        attention_for(model, src_vocab, tgt_vocab, [], max_len=4)


# ---- the command line ------------------------------------------------------------------------------------


def cli_run(capsys, *argv):
    from tinygrad_rnn import cli

    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_trains_evaluates_and_predicts_with_attention(tmp_path, capsys, monkeypatch):
    """A tiny attention run on the generated numerals: recorded, reproducible, used by evaluate/predict."""
    from tinygrad_rnn import runs

    d = tmp_path / "run"
    code, out, err = cli_run(
        capsys,
        "train",
        "seq2seq",
        "--data",
        "numerals",
        "--limit",
        "60",
        "--epochs",
        "1",
        "--embed",
        "4",
        "--hidden",
        "6",
        "--attention",
        "additive",
        "--bidirectional",
        "--no-progress",
        "--out",
        d,
    )
    assert code == 0, err
    config = json.loads((d / "config.json").read_text())
    assert config["attention"] == "additive" and config["bidirectional"] is True
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["command"].endswith("--bidirectional --attention additive")
    _, model, _, _ = runs.load_run(d, "cpu")
    assert model.attention is not None and model.bidirectional
    code, out, err = cli_run(capsys, "evaluate", d)
    assert code == 0 and out.startswith("test (6 examples)"), err
    png = tmp_path / "a.png"
    code, out, err = cli_run(capsys, "predict", d, "一千零一", "--attention", png)
    assert code == 0, err
    assert out.splitlines()[0].startswith("一千零一  →") and f"wrote {png}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    # Without matplotlib the weights are printed instead.
    from tinygrad_rnn.plotting import attention as attention_plot

    def no_matplotlib(*args, **kwargs):
        raise ImportError("plots need matplotlib, which is not installed: pip install -e '.[plot]'")

    monkeypatch.setattr(attention_plot, "plot_attention", no_matplotlib)
    code, out, err = cli_run(capsys, "predict", d, "一千零一", "--attention", tmp_path / "b.png")
    assert code == 0 and "the attention weights as text instead" in out and "│一千零一" in out, out
    assert not (tmp_path / "b.png").exists()


def test_cli_refuses_attention_where_it_does_not_apply(tmp_path, capsys):
    def one_error(argv, *needles):
        code, _, err = cli_run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
        for needle in needles:
            assert needle in lines[0], lines[0]

    one_error(["train", "classify", "--attention", "additive", "--out", tmp_path / "x"], "seq2seq only")
    one_error(
        [
            "train",
            "seq2seq",
            "--data",
            "numerals",
            "--attention",
            "additive",
            "--feed-context",
            "--out",
            tmp_path / "x",
        ],
        "choose one",
    )
    assert not (tmp_path / "x").exists()
    d = tmp_path / "plain"
    assert (
        cli_run(
            capsys,
            "train",
            "seq2seq",
            "--data",
            "numerals",
            "--limit",
            "30",
            "--epochs",
            "1",
            "--embed",
            "4",
            "--hidden",
            "4",
            "--no-progress",
            "--out",
            d,
        )[0]
        == 0
    )
    config = json.loads((d / "config.json").read_text())
    assert (
        config["attention"] is None
        and "--attention" not in json.loads((d / "metrics.json").read_text())["command"]
    )
    one_error(["predict", d, "一千", "--attention", tmp_path / "a.png"], "without attention")
    one_error(
        ["train", "seq2seq", "--data", "numerals", "--resume", "--attention", "additive", "--out", d],
        "--attention additive",
        "cannot apply",
    )


def test_a_config_without_attention_is_refused_in_one_line(tmp_path):
    """Every run the CLI writes records "attention" (None without it); a config.json that lacks it
    is broken and says so, naming what is missing, before any model is built."""
    from tinygrad_rnn import runs, tasks

    config = {
        "format": tasks.CONFIG_FORMAT,
        "version": tasks.CONFIG_VERSION,
        "task": "seq2seq",
        "data": "numerals",
        "bidirectional": True,
        "feed_context": True,
        **{k: None for k in tasks.SETTINGS},
        "epochs": 1,
        "embed": 4,
        "hidden": 4,
        "layers": 1,
        "batch_size": 8,
        "min_freq": 1,
        "seed": 0,
        "lr": 0.001,
        "clip": 1.0,
        "pooling": "mean",
        "direction": "to_digits",
        "decode_max_len": 8,
        "cell": "rnn",
        "dropout": 0.0,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(runs.RunError, match=r"broken config file \(missing: attention\)"):
        runs.load_run(tmp_path, "cpu")
    assert tasks.SCHEMA["attention"][1] == tuple(
        a for a in ATTENTIONS if a
    )  # the CLI's choices are the model's
