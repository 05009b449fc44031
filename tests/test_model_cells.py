"""Every task model with every cell: ``cell="rnn" | "lstm" | "gru"`` picks the
recurrent layers of the classifier (both poolings), the tagger and the Seq2Seq (encoder and
decoder; plain, feed_context, attention; greedy and beam decoding). Each trains, gradient-checks
in float64 and decodes consistently; old run directories without a cell still load as rnn."""

import json

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import cli, nn, runs, tasks
from tinygrad_rnn.gradcheck import gradcheck
from tinygrad_rnn.models import Seq2Seq, SequenceClassifier, SequenceTagger, decoder_io
from tinygrad_rnn.optim import Adam

F64 = np.float64
BOS, EOS = 2, 3
CELLS = ("rnn", "lstm", "gru")
GATED = ("lstm", "gru")

IDS = np.array([[4, 5, 6, 7], [8, 1, 0, 0], [5, 0, 0, 0]])
LENS = np.array([4, 2, 1])
TARGETS = [[4, 5], [6], [5, 6, 4]]


def build(kind, cell, seed=0, **kw):
    rng = np.random.default_rng(seed)
    if kind == "classifier":
        return SequenceClassifier(9, 3, 4, 3, cell=cell, dtype=F64, rng=rng, **kw)
    if kind == "tagger":
        return SequenceTagger(9, 3, 4, 5, cell=cell, dtype=F64, rng=rng, **kw)
    return Seq2Seq(9, 7, 3, 4, cell=cell, dtype=F64, rng=rng, **kw)


# (model kind, options): every model variant the issue names
VARIANTS = [
    ("classifier", dict(pooling="last")),
    ("classifier", dict(pooling="mean")),
    ("classifier", dict(pooling="last", num_layers=2, bidirectional=True)),
    ("tagger", dict()),
    ("tagger", dict(num_layers=2, bidirectional=True)),
    ("seq2seq", dict()),
    ("seq2seq", dict(num_layers=2, feed_context=True)),
    ("seq2seq", dict(attention="additive")),
    ("seq2seq", dict(num_layers=2, attention="additive", bidirectional=True)),
    ("seq2seq", dict(num_layers=2, feed_context=True, bidirectional=True)),
]


def variant_id(variant):
    kind, options = variant
    return kind + "".join(f"-{k}={v}" for k, v in options.items())


def loss_and_outputs(kind, model):
    """(scalar loss, outputs to gradient-check) of one fixed padded batch."""
    if kind == "classifier":
        return model.loss(IDS, LENS, np.array([0, 2, 1])), model(IDS, LENS)
    if kind == "tagger":
        tags = np.arange(IDS.size).reshape(IDS.shape) % 5
        return model.loss(IDS, LENS, tags), model(IDS, LENS)
    tgt_in, tgt_out, out_lens = decoder_io(TARGETS, None, BOS, EOS)
    true_steps = tg.Tensor(
        (np.arange(tgt_in.shape[1])[None, :] < out_lens[:, None])[:, :, None], device=model.out.W.device
    )
    logits = tg.where(true_steps, model(IDS, LENS, tgt_in), 0.0)  # <pad>'s embedding has no gradient
    return model.loss(IDS, LENS, tgt_in, tgt_out, out_lens), logits


def recurrent_layers(model):
    return [m for m in (getattr(model, n, None) for n in ("rnn", "encoder", "decoder")) if m is not None]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("variant", VARIANTS, ids=variant_id)
def test_every_model_with_every_cell_trains_and_gradchecks(variant, cell):
    kind, options = variant
    model = build(kind, cell, **options)
    want = nn.CELLS[cell]
    for layer in recurrent_layers(model):
        assert type(layer) is want.layer and all(type(c) is want.cell for c in layer.cells), (
            f"{kind} {options} cell={cell}: got {type(layer).__name__} of {type(layer.cells[0]).__name__}"
        )
    assert f"cell={cell!r}" in repr(model)

    # float64 gradient check of the outputs and the loss through every parameter
    assert gradcheck(lambda *_: loss_and_outputs(kind, model)[::-1], model.parameters(), seed=1)

    # one training step: every parameter gets a finite gradient, and the loss goes down
    optimizer = Adam(model.parameters(), lr=1e-2)
    loss, _ = loss_and_outputs(kind, model)
    optimizer.zero_grad()
    loss.backward()
    no_grad = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not np.isfinite(p.grad).all() or not np.abs(p.grad).max() > 0
    ]
    # <pad>'s embedding row gets no gradient by design; every parameter tensor gets some.
    assert not no_grad, f"{kind} {options} cell={cell}: no gradient for {no_grad}"
    optimizer.step()
    after, _ = loss_and_outputs(kind, model)
    assert after.item() < loss.item(), f"{kind} {options} cell={cell}: loss {loss.item()} → {after.item()}"


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(num_layers=2, feed_context=True),
        dict(num_layers=2, attention="additive", bidirectional=True),
    ],
    ids=["plain", "feed_context-2layers", "attention-bidirectional-2layers"],
)
def test_gated_decoding_scores_what_teacher_forcing_scores(cell, options):
    """Greedy and beam decoding step the decoder cells one by one on the device; their scores
    must equal the teacher-forced log-probability of the tokens they chose (a wrong state
    carried between steps — e.g. the LSTM's c dropped — would make them differ)."""
    model = build("seq2seq", cell, seed=3, **options)
    for beam in (1, 3):
        tokens, scores = model.generate(IDS, LENS, 5, BOS, EOS, beam_size=beam, return_scores=True)
        again = model.score(IDS, LENS, tokens, BOS, EOS, max_len=5)
        np.testing.assert_allclose(
            scores,
            again,
            rtol=1e-10,
            atol=1e-12,
            err_msg=f"cell={cell} {options} beam={beam}: decoding vs teacher forcing",
        )
        if beam == 1:
            greedy = scores
    assert (scores >= greedy - 1e-12).all(), f"cell={cell}: the beam scored below greedy"


def test_lstm_decoder_starts_from_the_encoders_cell_state():
    """The decoder continues from the encoder's whole final state (s, c): changing c_0 changes
    the logits, and unidirectionally (s_0, c_0) is the encoder's (h_last, c_last) itself."""
    model = build("seq2seq", "lstm")
    s0, _ = model.encode(IDS, LENS)
    assert isinstance(s0, tuple) and len(s0) == 2
    _, (h_last, c_last) = model.encoder(model.src_embed(tg.Tensor(IDS)), lengths=LENS)
    np.testing.assert_array_equal(s0[1].numpy(), c_last.numpy())
    bi = build("seq2seq", "lstm", bidirectional=True, num_layers=2)
    assert [n for n, _ in bi.named_parameters()][-4:] == [
        "bridge_c.0.W",
        "bridge_c.0.b",
        "bridge_c.1.W",
        "bridge_c.1.b",
    ]
    assert build("seq2seq", "gru", bidirectional=True).bridge_c == []


def test_cell_registry():
    assert set(nn.CELLS) == set(CELLS)
    for name, kind in nn.CELLS.items():
        built = nn.recurrent_layer(name, 3, 4, 2, True, rng=np.random.default_rng(0))
        assert type(built) is kind.layer and type(built.cells[0]) is kind.cell and len(built.cells) == 4
        assert kind.equation.startswith(("h_t =", "c_t =")) and nn.cell_kind(name) is kind
    assert nn.recurrent_layer("rnn", 3, 4, init="identity").cells[0].init == "identity"
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru; got 'tanh'"):
        build("classifier", "tanh")
    with pytest.raises(ValueError, match="init='orthogonal' picks the vanilla cell's V; the gru cell"):
        SequenceClassifier(9, 3, 4, 2, cell="gru", init="orthogonal")


def test_rnn_cell_is_the_model_it_was():
    """cell="rnn" (the default) draws the same weights in the same order as before: seeds and
    old checkpoints keep their meaning."""
    for kind in ("classifier", "tagger", "seq2seq"):
        a, b = build(kind, "rnn", seed=7), build(kind, "rnn", seed=7)
        default = {
            "classifier": SequenceClassifier(9, 3, 4, 3, dtype=F64, rng=np.random.default_rng(7)),
            "tagger": SequenceTagger(9, 3, 4, 5, dtype=F64, rng=np.random.default_rng(7)),
            "seq2seq": Seq2Seq(9, 7, 3, 4, dtype=F64, rng=np.random.default_rng(7)),
        }[kind]
        for (n1, p1), (n2, p2) in zip(a.named_parameters(), default.named_parameters()):
            assert n1 == n2 and np.array_equal(p1.numpy(), p2.numpy()), f"{kind}: {n1} changed"
        assert type(b.rnn if kind != "seq2seq" else b.encoder) is nn.RNN


# ---- run directories and the command line ---------------------------------------------------------


def test_config_records_the_cell_and_a_config_without_one_is_refused(tmp_path):
    config = {
        "format": tasks.CONFIG_FORMAT,
        "version": tasks.CONFIG_VERSION,
        "task": "classify",
        "data": "reviews",
        "bidirectional": False,
        "feed_context": False,
        "attention": None,
        "dropout": 0.0,
        **{k: None for k in tasks.SETTINGS},
    }
    config.update(tasks.COMMON, **tasks.DEFAULTS["reviews"], patience=None, limit=None)  # no "cell"
    with pytest.raises(runs.RunError, match=r"missing: cell"):
        runs.check_config(config, "old")
    vocab = type("V", (), {"__len__": lambda self: 9})()
    for cell in CELLS:
        runs.check_config({**config, "cell": cell}, "new")
        model = tasks.TASKS["classify"].build_model({**config, "cell": cell}, vocab, None, "cpu")
        assert type(model.rnn) is nn.CELLS[cell].layer
    with pytest.raises(runs.RunError, match="'cell' must be one of rnn, lstm, gru, got 'tanh'"):
        runs.check_config({**config, "cell": "tanh"}, "bad")
    assert "--cell gru" in runs.command_line({**config, "cell": "gru"})
    assert "--cell" not in runs.command_line({**config, "cell": "rnn"})


TINY = ["--limit", "60", "--epochs", "1", "--embed", "4", "--hidden", "8", "--no-progress"]


def test_cli_round_trip_with_gru(tmp_path, capsys):
    """train seq2seq --cell gru records the cell; evaluate and predict rebuild the GRU model from
    it; --resume refuses another cell; a copy of the run without the key is an rnn run, refused
    (its checkpoint holds GRU weights) in one line naming the mismatch."""
    d = tmp_path / "gru"
    assert cli.main(["train", "seq2seq", "--data", "numerals", "--cell", "gru", *TINY, "--out", str(d)]) == 0
    config = json.loads((d / "config.json").read_text())
    assert config["cell"] == "gru"
    metrics = json.loads((d / "metrics.json").read_text())
    assert "--cell gru" in metrics["command"]
    _, model, _, _ = runs.load_run(d, "cpu")
    assert type(model.encoder) is nn.GRU and type(model.decoder) is nn.GRU
    capsys.readouterr()
    assert cli.main(["evaluate", str(d)]) == 0
    assert "test (" in capsys.readouterr().out
    assert cli.main(["predict", str(d), "一百二十"]) == 0
    assert "→" in capsys.readouterr().out
    assert (
        cli.main(
            ["train", "seq2seq", "--data", "numerals", "--cell", "lstm", *TINY, "--resume", "--out", str(d)]
        )
        == 2
    )
    assert "--cell lstm cannot apply" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "seq2seq",
                "--data",
                "numerals",
                "--cell",
                "gru",
                *TINY[:2],
                "--epochs",
                "1",
                "--embed",
                "4",
                "--hidden",
                "8",
                "--no-progress",
                "--resume",
                "--out",
                str(d),
            ]
        )
        == 0
    )
    del config["cell"]
    (d / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert cli.main(["predict", str(d), "一百"]) == 2
    assert "broken config file (missing: cell)" in capsys.readouterr().err


def test_a_run_records_its_cell_and_one_without_it_is_refused(tmp_path, capsys):
    d = tmp_path / "rnn"
    assert cli.main(["train", "seq2seq", "--data", "numerals", *TINY, "--out", str(d)]) == 0
    config = json.loads((d / "config.json").read_text())
    assert config["cell"] == "rnn"  # recorded even when not given
    del config["cell"]
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(runs.RunError, match=r"missing: cell"):
        runs.load_run(d, "cpu")


@pytest.mark.parametrize("cell", GATED)
def test_gated_models_on_every_device(cell, device):
    """The same weights give the same logits, gradients and decodes on every device (the strict
    device stands in for CuPy: no silent host copies, no implicit conversions)."""
    from devices import host

    for kind, options in (
        ("classifier", dict(pooling="last", bidirectional=True)),
        ("tagger", dict()),
        ("seq2seq", dict(num_layers=2, bidirectional=True, attention="additive")),
    ):
        ref, moved = build(kind, cell, seed=4, **options), build(kind, cell, seed=4, **options).to(device)
        for model in (ref, moved):
            loss, outputs = loss_and_outputs(kind, model)
            loss.backward()
        np.testing.assert_allclose(
            host(loss_and_outputs(kind, moved)[1]),
            loss_and_outputs(kind, ref)[1].numpy(),
            rtol=1e-12,
            atol=1e-14,
            err_msg=f"{kind} cell={cell} on {device}: outputs",
        )
        for (name, p), (_, q) in zip(ref.named_parameters(), moved.named_parameters()):
            np.testing.assert_allclose(
                host(q.grad),
                p.grad,
                rtol=1e-10,
                atol=1e-13,
                err_msg=f"{kind} cell={cell} on {device}: gradient of {name}",
            )
        if kind == "seq2seq":
            for beam in (1, 2):
                assert moved.generate(IDS, LENS, 4, BOS, EOS, beam_size=beam) == ref.generate(
                    IDS, LENS, 4, BOS, EOS, beam_size=beam
                ), f"cell={cell} beam={beam} on {device}"
