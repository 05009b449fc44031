"""--help answers "what will this do and how long will it take": every argument has a help line,
every option with a default shows it, each subcommand has a description, and ``train TASK --help``
shows that task's defaults per data set and the expected wall time of its default run. Also what
a short training run prints: its BLAS threads, "1 epoch", and why numerals have no baseline."""

import argparse
import os
import re
import subprocess
import sys

import pytest

from tinygrad_rnn.cli import build_parser, main
from tinygrad_rnn.tasks import COMMON, DEFAULTS, TASKS
from tinygrad_rnn.threads import THREAD_ENV_VARS


def parsers(parser=None, name="tinygrad-rnn"):
    """(command name, parser) of the top-level parser and every subcommand's, recursively."""
    parser = parser or build_parser()
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def test_every_argument_has_a_help_line_and_shows_its_default():
    missing, no_default = [], []
    for name, parser in parsers():
        for action in parser._actions:
            if (
                isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
                or action.dest == "help"
            ):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.metavar or action.dest}"
            if not (action.help and action.help.strip()):
                missing.append(label)
            takes_value = action.option_strings and action.nargs != 0
            if takes_value and "default" not in action.help:
                no_default.append(label)
    assert not missing, f"arguments without a help line: {missing}"
    assert not no_default, f"options that do not say their default: {no_default}"


def test_every_subcommand_has_a_description():
    bare = [
        name
        for name, parser in parsers()
        if name != "tinygrad-rnn" and not (parser.description or "").strip()
    ]
    assert not bare, f"subcommands without a description: {bare}"


def train_help(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(["train", *argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("task", list(TASKS))
def test_train_help_shows_the_tasks_defaults_and_wall_time(capsys, task):
    out = train_help(capsys, task)
    for data in TASKS[task].datasets:
        d = DEFAULTS[data]
        line = f"tinygrad-rnn train {task} --data {data}"
        assert line in out, out
        block = out[out.index(line) :]
        defaults = block.splitlines()[1]
        for key in ("epochs", "embed", "hidden", "lr", "min_freq"):
            value = f"{d[key]:g}" if isinstance(d[key], float) else str(d[key])
            assert f"--{key.replace('_', '-')} {value}" in defaults, (key, defaults)
        assert "expected wall time on a 2-core CPU:" in block.splitlines()[2]
        assert " 0 s " not in block.splitlines()[2], block.splitlines()[2]
    for other in set(DEFAULTS) - set(TASKS[task].datasets):
        assert f"--data {other}\n" not in out, f"train {task} --help lists {other}"
    assert f"--batch-size {COMMON['batch_size']}" in out


def test_train_help_differs_per_task_and_lists_every_data_set_without_one(capsys):
    texts = {task: train_help(capsys, task) for task in TASKS}
    assert len(set(texts.values())) == len(TASKS)
    everything = train_help(capsys)
    assert all(f"tinygrad-rnn train {t} --data {d}" in everything for t in TASKS for d in TASKS[t].datasets)
    # The option lines themselves carry each data set's default.
    flat = re.sub(r"-\s+", "-", " ".join(everything.split()))  # argparse wraps lines at hyphens
    assert "reviews 10, peoples-daily 8, numerals 20, pinyin 20" in flat
    assert "reviews 0.001, peoples-daily 0.003, numerals 0.001, pinyin 0.001" in flat


def clean_env():
    return {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}


def tiny_numerals_run(tmp_path, *extra):
    argv = [
        sys.executable,
        "-m",
        "tinygrad_rnn",
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
        "4",
        "--out",
        str(tmp_path / "run"),
        *extra,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_training_run_chooses_its_threads_and_says_so(tmp_path):
    out = tiny_numerals_run(tmp_path)
    training = next(line for line in out.splitlines() if line.startswith("training "))
    assert "1 epoch;" in training and "epochs;" not in training, training
    assert "BLAS threads: 1 (default" in training, training
    assert "baseline: none for numerals" in out
    out = tiny_numerals_run(tmp_path / "2", "--threads", "2")
    assert "BLAS threads: 2 (--threads)" in out


def test_threads_below_one_are_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "classify", "--threads", "0"])
    assert exit_.value.code == 2
    assert "--threads: must be at least 1, got 0" in capsys.readouterr().err


def test_top_level_help_names_every_cell():
    text = " ".join(build_parser().format_help().split())
    assert "vanilla RNNs" not in text and "LSTM" in text and "GRU" in text


@pytest.mark.parametrize(
    "argv, shown, hidden",
    [
        (
            ["classify"],
            ["--pooling", "--max-len", "--bidirectional"],
            ["--feed-context", "--attention", "--direction", "--dropout"],
        ),
        (
            ["tag"],
            ["--bidirectional", "--cell"],
            ["--pooling", "--max-len", "--feed-context", "--attention", "--direction", "--dropout"],
        ),
        (
            ["seq2seq"],
            ["--feed-context", "--attention", "--direction", "--dropout", "--bidirectional"],
            ["--pooling", "--max-len"],
        ),
        (["seq2seq", "--data", "pinyin"], ["--attention"], ["--direction", "--pooling"]),
        ([], ["--pooling", "--max-len", "--feed-context", "--attention", "--direction", "--dropout"], []),
    ],
)
def test_train_help_lists_only_the_options_the_task_takes(capsys, argv, shown, hidden):
    out = train_help(capsys, *argv)
    options = set(re.findall(r"^\s+(--[a-z-]+)", out.split("\n\n", 2)[-1], flags=re.M))
    assert set(shown) <= options, (shown, options)
    assert not set(hidden) & options, (hidden, options)


def test_bidirectional_help_says_it_applies_to_every_task_without_attention():
    action = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
        if a.dest == "bidirectional"
    )
    assert "with --attention" not in action.help and "seq2seq" in action.help and "classify" in action.help


def test_the_registry_is_what_the_cli_and_the_training_loop_use():
    """Every task-only setting is an option of ``train``, and each task's metric is the one its
    training loop picks the best epoch by."""
    from tinygrad_rnn.data import Vocab
    from tinygrad_rnn.tasks import DATASETS, TASK_OPTIONS

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert set(TASK_OPTIONS) <= {a.dest for a in train._actions}
    vocab = Vocab(["a", "b"])
    for name, task in TASKS.items():
        assert task.datasets and all(d in DATASETS for d in task.datasets)
        assert task.trainer({"decode_max_len": 5}, vocab).metric == task.metric, name
