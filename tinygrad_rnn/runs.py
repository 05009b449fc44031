"""Run directories: what ``tinygrad-rnn train`` writes and ``predict``/``evaluate``/``--resume``
read back — importable, so a script or a notebook can load a trained run without the CLI::

    from tinygrad_rnn.runs import load_run
    config, model, src_vocab, tgt_vocab = load_run("runs/classify-reviews", device="cpu")

A *run directory* holds everything needed to use a trained model again::

    config.json         task, data set and its options, model and training settings
    vocab.json          the input vocabulary; target_vocab.json: tags or output tokens
    best.npz            the best-on-dev checkpoint (last.npz: the latest epoch, for --resume)
    metrics.json        test scores, baseline, wall time, one row per epoch
    plot.png            loss and dev metric per epoch (with the 'plot' extra)

The model is rebuilt from ``config.json`` (:func:`build_model`) and ``best.npz`` loaded into it.
The defaults of each data set are the reference configurations of docs/results.md.
"""

from __future__ import annotations

import json
import os
import shlex

from .data import DATASETS, BatchIterator, Vocab, dataset_splits
from .files import atomic_write

TASKS = {"classify": ("reviews",), "tag": ("peoples-daily",), "seq2seq": ("numerals", "pinyin")}
LABELS = ("negative", "positive")                 # review labels: 0 and 1
# Reference configurations (docs/results.md): model and training settings per data set.
DEFAULTS = {
    "reviews": dict(embed=64, hidden=128, lr=1e-3, epochs=10, max_len=100, min_freq=1),
    "peoples-daily": dict(embed=64, hidden=128, lr=3e-3, epochs=8, min_freq=2),
    "numerals": dict(embed=32, hidden=256, lr=1e-3, epochs=20, min_freq=1),
    "pinyin": dict(embed=64, hidden=256, lr=1e-3, epochs=20, min_freq=1),
}
assert set(DEFAULTS) == set(DATASETS)
COMMON = dict(batch_size=64, clip=1.0, layers=1, seed=0, pooling="mean", direction="to_digits")
CONFIG_FORMAT = "tinygrad_rnn.run"
# The options that make up a run (config.json): model, data and training settings.
SETTINGS = ("epochs", "embed", "hidden", "layers", "pooling", "direction", "lr", "batch_size", "clip",
            "patience", "max_len", "min_freq", "seed", "limit")
# What predict/evaluate/--resume read from config.json (seq2seq also its decode_max_len).
REQUIRED = ("task", "data", "embed", "hidden", "layers", "bidirectional", "feed_context", "pooling",
            "direction", "batch_size", "min_freq", "max_len", "limit", "epochs", "lr", "clip", "patience", "seed")
RUN_FILES = ("config.json", "vocab.json", "target_vocab.json", "best.npz", "last.npz", "metrics.json", "plot.png")


class RunError(ValueError):
    """A run directory is missing, incomplete or broken, or a setting is out of range."""


# --- config.json -------------------------------------------------------------------------------
def load_config(directory) -> dict:
    """``DIR/config.json``, checked; clear errors for a missing or broken run directory."""
    if not os.path.isdir(directory):
        what = "a file, not a run directory" if os.path.exists(directory) else "no such run directory"
        raise RunError(f"{directory}: {what} (train one with 'tinygrad-rnn train')")
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise RunError(f"{directory}: not a run directory (no config.json); train one with 'tinygrad-rnn train'")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: broken config file ({e})") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise RunError(f"{path}: not a tinygrad-rnn run configuration")
    required = REQUIRED + (("decode_max_len",) if config.get("task") == "seq2seq" else ())
    missing = [k for k in required if k not in config]
    if missing or config["task"] not in TASKS:
        raise RunError(f"{path}: broken config file (missing or bad: {', '.join(missing) or 'task'})")
    return config


def write_json(path, obj) -> None:
    """Write ``obj`` as JSON atomically (a crash mid-write must not break a good run directory)."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def clear_run(directory, log=print) -> None:
    """Remove an earlier run's files before a new run writes its own, so the directory never mixes
    two runs (a new config.json beside an old best.npz, if the new run stopped before its first
    epoch, would describe a model the checkpoint does not hold)."""
    old = [name for name in RUN_FILES if os.path.exists(os.path.join(directory, name))]
    if old:
        log(f"note: replacing the earlier run in {directory} ({', '.join(old)}); --resume continues it instead")
        for name in old:
            os.remove(os.path.join(directory, name))


def run_file(directory, name: str) -> str:
    """``DIR/name``; a missing file is a clear error, not a bare "No such file"."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise RunError(f"{directory}: no {name} (not a complete run directory; train again with "
                       "'tinygrad-rnn train')")
    return path


def command_line(config) -> str:
    """The one ``tinygrad-rnn train`` command that reproduces this run (options at their
    data set's default are left out)."""
    defaults = {**COMMON, **DEFAULTS[config["data"]]}
    words = ["tinygrad-rnn", "train", config["task"], "--data", config["data"]]
    for key in ("epochs", "embed", "hidden", "layers", "lr", "batch_size", "clip", "patience",
                "min_freq", "seed", "limit", "pooling", "max_len", "direction"):
        if config.get(key) is not None and config[key] != defaults.get(key):
            words += [f"--{key.replace('_', '-')}", str(config[key])]
    words += ["--bidirectional"] * config["bidirectional"] + ["--feed-context"] * config["feed_context"]
    return shlex.join(words)


# --- data, vocabularies, model, task -------------------------------------------------------------
def load_splits(config) -> tuple[list, list, list]:
    """Train / dev / test lists of ``(input tokens, target)`` for the run's data set."""
    return dataset_splits(config["data"], limit=config.get("limit"), max_len=config.get("max_len"),
                          direction=config.get("direction") or "to_digits")


def build_vocabs(config, train):
    """(input vocabulary, target vocabulary or None) from the training split only."""
    src = Vocab.build((x for x, _ in train), min_freq=config["min_freq"])
    tgt = None if config["task"] == "classify" else Vocab.build(y for _, y in train)
    return src, tgt


def load_vocabs(config, directory):
    """(input vocabulary, target vocabulary or None) saved in a run directory."""
    src_vocab = Vocab.load(run_file(directory, "vocab.json"))
    tgt_vocab = None if config["task"] == "classify" else Vocab.load(run_file(directory, "target_vocab.json"))
    return src_vocab, tgt_vocab


def make_batches(config, examples, src_vocab, tgt_vocab, *, shuffle: bool, seed: int = 0):
    """A length-bucketed :class:`BatchIterator` over encoded examples."""
    inputs = [src_vocab.encode(x) for x, _ in examples]
    if config["task"] == "classify":
        targets = [int(y) for _, y in examples]
    else:
        seq2seq = config["task"] == "seq2seq"
        targets = [tgt_vocab.encode(y, add_bos=seq2seq, add_eos=seq2seq) for _, y in examples]
    return BatchIterator(inputs, targets, batch_size=config["batch_size"], shuffle=shuffle,
                         seed=seed, bucket=True)


def build_model(config, src_vocab, tgt_vocab, device):
    """The task's model with the run's sizes, on ``device``."""
    from . import models
    # Built on ``device`` directly: never on the default device first (which may be unusable).
    task, common = config["task"], dict(padding_idx=0, device=device)
    if task == "classify":
        return models.SequenceClassifier(len(src_vocab), config["embed"], config["hidden"], len(LABELS),
                                         pooling=config["pooling"], num_layers=config["layers"],
                                         bidirectional=config["bidirectional"], **common)
    if task == "tag":
        return models.SequenceTagger(len(src_vocab), config["embed"], config["hidden"], len(tgt_vocab),
                                     num_layers=config["layers"], bidirectional=config["bidirectional"],
                                     **common)
    return models.Seq2Seq(len(src_vocab), len(tgt_vocab), config["embed"], config["hidden"],
                          num_layers=config["layers"], feed_context=config["feed_context"], **common)


def make_task(config, tgt_vocab, beam: int = 1):
    """The :mod:`tinygrad_rnn.train` task that trains and scores the run's model."""
    from .train import ClassificationTask, Seq2SeqTask, TaggingTask
    if config["task"] == "classify":
        return ClassificationTask()
    if config["task"] == "tag":
        return TaggingTask()
    return Seq2SeqTask(max_len=config["decode_max_len"], bos_id=tgt_vocab.bos_id,
                       eos_id=tgt_vocab.eos_id, beam_size=beam)


def load_run(directory, device):
    """(config, model with the best weights in eval mode, input vocab, target vocab or None)."""
    from . import checkpoint
    config = load_config(directory)
    src_vocab, tgt_vocab = load_vocabs(config, directory)
    model = build_model(config, src_vocab, tgt_vocab, device)
    checkpoint.load(run_file(directory, "best.npz"), model)
    return config, model.eval(), src_vocab, tgt_vocab


def tokenize(config, text: str) -> list[str]:
    """Characters (reviews, numerals, pinyin; spaces dropped) or space-separated words (tagging)."""
    if config["task"] == "tag":
        return text.split()
    return [c for c in text if not c.isspace()]
