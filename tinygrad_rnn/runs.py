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

What is promised about a run directory:

* **every file is whole**: each is written to a temporary ``.tmp-…`` file and renamed over the
  old one (:func:`tinygrad_rnn.files.atomic_write`), so a crash or ``kill -9`` never leaves half
  a file; temporaries a killed process left behind are removed when the directory is next locked;
* **one writer at a time**: ``train`` (and ``--resume``) holds an exclusive lock
  (``fcntl.flock`` on ``.tinygrad_rnn.lock``, released by the OS when the process ends, however
  it ends) for the whole run; a second writer is refused, naming the directory and the holder's pid;
* **nothing lost**: a directory is a run of ours when its ``config.json`` carries the format
  marker ``"format": "tinygrad_rnn.run"``. A new run is refused in a directory that holds one
  (``--resume`` continues it); with ``--overwrite`` it replaces only the files of :data:`RUN_FILES`
  there. A non-empty directory that is not a run is refused, untouched. Default directory names
  (:func:`default_run_directory`) carry what distinguishes the model, so runs do not collide. Every
  option and every field of ``config.json`` is checked (type, range, known names) before
  anything is read into a model or written to disk.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex

from .data import DATASETS, BatchIterator, Vocab, dataset_splits
from .files import TMP_PREFIX, atomic_write, remove_stale_temporaries
from .nn import CELLS

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
CONFIG_VERSION = 1
LOCK_FILE = ".tinygrad_rnn.lock"
MAX_DECODE_LEN = 1000            # decoding steps per output: far above any target of our data sets
# The options that make up a run (config.json): model, data and training settings.
SETTINGS = ("epochs", "embed", "hidden", "layers", "pooling", "direction", "lr", "batch_size", "clip",
            "patience", "max_len", "min_freq", "seed", "limit")
# What predict/evaluate/--resume read from config.json (seq2seq also its decode_max_len).
REQUIRED = ("task", "data", "embed", "hidden", "layers", "bidirectional", "feed_context", "pooling",
            "direction", "batch_size", "min_freq", "max_len", "limit", "epochs", "lr", "clip", "patience", "seed")
# Settings a run may lack: runs written before the setting existed load with its default.
OPTIONAL = ("attention", "cell", "dropout")    # no "cell": a vanilla RNN run; no "dropout": none
DEFAULT_CELL = "rnn"
DEFAULT_DROPOUT = 0.0
RUN_FILES = ("config.json", "vocab.json", "target_vocab.json", "best.npz", "last.npz", "metrics.json", "plot.png")

# What each setting may be: (kind, smallest value or the allowed names). "?" = may be null.
SCHEMA = {
    "epochs": ("int", 1), "embed": ("int", 1), "hidden": ("int", 1), "layers": ("int", 1),
    "batch_size": ("int", 1), "min_freq": ("int", 1), "seed": ("int", 0),
    "max_len": ("int?", 1), "limit": ("int?", 1), "patience": ("int?", 1),
    "lr": ("positive", None), "clip": ("positive", None),
    "pooling": ("name", ("last", "mean")), "direction": ("name", ("to_digits", "to_chinese")),
    "bidirectional": ("bool", None), "feed_context": ("bool", None),
    "decode_max_len": ("int", 1), "attention": ("name?", ("additive",)),
    "cell": ("name", tuple(CELLS)), "dropout": ("probability", None),
}


# Upper bounds of the sizes, far above any configuration of docs/results.md: a config.json (or an
# option) asking for more is refused in one line before anything is allocated ("embed": 1e8 would
# otherwise claim gigabytes for the embedding before failing).
MAXIMA = {"embed": 4096, "hidden": 4096, "layers": 16, "batch_size": 65536, "epochs": 100_000,
          "decode_max_len": MAX_DECODE_LEN}


class RunError(ValueError):
    """A run directory is missing, incomplete or broken, or a setting is out of range."""


class RunBusyError(RunError):
    """Another process holds the run directory's lock."""


def setting_problem(key: str, value) -> str | None:
    """Why ``value`` is not a valid ``key`` setting ("must be …, got …"), or None when it is."""
    kind, rule = SCHEMA[key]
    if kind.endswith("?") and value is None:
        return None
    if kind.startswith("int"):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, got {value!r}"
        if value < rule:
            return f"must be at least {rule}, got {value}"
        if key in MAXIMA and value > MAXIMA[key]:
            return f"must be at most {MAXIMA[key]}, got {value}"
    elif kind == "positive":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            return f"must be positive and finite, got {value!r}"
    elif kind == "probability":       # of dropping an element: 1 would drop everything
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            return f"must be a probability in [0, 1), got {value!r}"
    elif kind.startswith("name"):
        if value not in rule:
            return f"must be one of {', '.join(rule)}, got {value!r}"
    elif not isinstance(value, bool):
        return f"must be true or false, got {value!r}"
    return None


def check_config(config, where: str) -> dict:
    """``config`` (a run's settings) checked completely: format marker, task and data set, every
    setting's type and range, no unknown names. Raises :class:`RunError` naming ``where``."""
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise RunError(f"{where}: not a tinygrad-rnn run configuration (no \"format\": \"{CONFIG_FORMAT}\")")
    if config.get("version") != CONFIG_VERSION:
        raise RunError(f"{where}: run configuration version {config.get('version')!r}; "
                       f"this code reads version {CONFIG_VERSION}")
    task, data = config.get("task"), config.get("data")
    if task not in TASKS:
        raise RunError(f"{where}: unknown task {task!r} (one of {', '.join(TASKS)})")
    if data not in TASKS[task]:
        raise RunError(f"{where}: data set {data!r} does not fit task {task!r}, which takes "
                       f"{' or '.join(TASKS[task])}")
    required = REQUIRED + (("decode_max_len",) if task == "seq2seq" else ())
    missing = [k for k in required if k not in config]
    if missing:
        raise RunError(f"{where}: broken config file (missing: {', '.join(missing)})")
    unknown = sorted(set(config) - set(required) - set(OPTIONAL) - {"format", "version"})
    if unknown:
        raise RunError(f"{where}: unknown settings {', '.join(map(repr, unknown))}")
    for key in required + tuple(k for k in OPTIONAL if k in config):
        if key in SCHEMA:
            problem = setting_problem(key, config[key])
            if problem:
                raise RunError(f"{where}: {key!r} {problem}")
    if task != "seq2seq" and config.get("dropout", DEFAULT_DROPOUT) != 0:
        raise RunError(f"{where}: 'dropout' applies to seq2seq runs only, not to {task}")
    return config


# --- config.json -------------------------------------------------------------------------------
def load_config(directory) -> dict:
    """``DIR/config.json``, checked; clear errors for a missing or broken run directory."""
    if not os.path.isdir(directory):
        what = "a file, not a run directory" if os.path.exists(directory) else "no such run directory"
        raise RunError(f"{directory}: {what} (train one with 'tinygrad-rnn train')")
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise RunError(f"{directory}: not a run directory (no config.json); train one with 'tinygrad-rnn train'")
    return check_config(_read_json(path), path)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: broken config file ({e})") from None


def is_run_directory(directory) -> bool:
    """Whether ``directory`` holds a run of ours: a ``config.json`` with our format marker."""
    path = os.path.join(directory, "config.json")
    try:
        config = _read_json(path)
    except (OSError, RunError):
        return False
    return isinstance(config, dict) and config.get("format") == CONFIG_FORMAT


def _ours(entry: str) -> bool:
    """Files a run of ours may leave in its directory: its lock, and its temporaries."""
    return entry == LOCK_FILE or any(entry.startswith(f"{TMP_PREFIX}{name}-") for name in RUN_FILES)


def check_new_run_directory(directory, overwrite: bool = False) -> None:
    """Refuse, before anything is written, an output directory a new run must not use: a file,
    a non-empty directory that is not a run of ours (its files are someone else's), or one that
    already holds a run of ours, unless ``overwrite`` (``train --overwrite``) says to replace it:
    a finished run may have taken an hour, and a repeated command must not lose it."""
    if not os.path.exists(directory):
        return
    if not os.path.isdir(directory):
        raise RunError(f"{directory}: a file, not a directory; choose another --out")
    others = [e for e in os.listdir(directory) if not _ours(e)]
    if others and not is_run_directory(directory):
        shown = ", ".join(sorted(others)[:3]) + (", …" if len(others) > 3 else "")
        raise RunError(f"{directory} is not empty ({shown}) and is not a tinygrad-rnn run directory "
                       "(no config.json of ours): nothing was changed; choose a new or empty --out")
    old = [name for name in RUN_FILES if os.path.exists(os.path.join(directory, name))]
    if old and not overwrite:
        what = "a finished run" if "metrics.json" in old else "an unfinished run"
        raise RunError(f"{directory} already holds {what} ({', '.join(old)}); nothing was changed: "
                       "--resume continues it, --overwrite replaces it, or choose another --out")


def default_run_directory(config) -> str:
    """``runs/TASK-DATA[-…]``: where ``train`` writes without ``--out``. The name carries every
    setting that makes a different model (direction, cell, layers, bidirectional, attention or
    feed-context, pooling, dropout) and a seed other than 0, each only when it differs from its
    default, so two documented runs never share a directory: ``runs/seq2seq-numerals-gru-bi-attention``.
    Sizes, learning rate and epochs are not in it: a run that differs only in them is refused
    (``--out`` or ``--overwrite``), not replaced."""
    defaults = {**COMMON, **DEFAULTS[config["data"]]}
    parts = [config["task"], config["data"]]
    if config["data"] == "numerals" and config.get("direction", defaults["direction"]) != defaults["direction"]:
        parts.append(config["direction"].replace("_", "-"))                  # to-chinese
    if config.get("cell", DEFAULT_CELL) != DEFAULT_CELL:
        parts.append(config["cell"])
    if config.get("layers", 1) != 1:
        parts.append(f"{config['layers']}layers")
    if config.get("bidirectional"):
        parts.append("bi")
    if config.get("attention"):
        parts.append("attention" if config["attention"] == "additive" else config["attention"])
    if config.get("feed_context"):
        parts.append("feed-context")
    if config["task"] == "classify" and config.get("pooling", defaults["pooling"]) != defaults["pooling"]:
        parts.append(config["pooling"])                                      # last
    if config.get("dropout", DEFAULT_DROPOUT) != DEFAULT_DROPOUT:
        parts.append(f"dropout{config['dropout']:g}")
    if config.get("seed", defaults["seed"]) != defaults["seed"]:
        parts.append(f"seed{config['seed']}")
    return os.path.join("runs", "-".join(parts))


@contextlib.contextmanager
def locked(directory, log=print):
    """Hold the run directory's lock for the block: ``with locked(out): …`` (creates ``out``).

    An exclusive ``fcntl.flock`` on ``DIR/.tinygrad_rnn.lock``, which holds the pid of its holder;
    the OS releases it when the process ends, however it ends. A second writer gets
    :class:`RunBusyError` at once. While the lock is held, temporaries that a killed writer left
    behind are removed. (Platforms without ``fcntl`` get no lock; a note says so.)
    """
    try:
        import fcntl
    except ImportError:                              # Windows: no flock
        fcntl = None
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is None:
            log(f"note: no lock on {directory} on this platform: run one writer at a time yourself")
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                raise RunBusyError(f"{directory} is in use by another tinygrad-rnn process (pid {holder}); "
                                   "wait for it to finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        stale = remove_stale_temporaries(directory, RUN_FILES)
        if stale:
            log(f"note: removed {len(stale)} temporary file(s) a killed run left in {directory}")
        yield
    finally:
        os.close(fd)                                 # releases the lock


def write_json(path, obj) -> None:
    """Write ``obj`` as JSON atomically (a crash mid-write must not break a good run directory)."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


def clear_run(directory, log=print, overwrite: bool = False) -> None:
    """Remove an earlier run's files (only those: :data:`RUN_FILES`) before a new run writes its
    own, so the directory never mixes two runs (a new config.json beside an old best.npz, if the
    new run stopped before its first epoch, would describe a model the checkpoint does not hold).
    Call it holding the lock, after :func:`check_new_run_directory`; an earlier run is removed only
    with ``overwrite`` (checked again here: another process may have finished one meanwhile)."""
    check_new_run_directory(directory, overwrite)
    old = [name for name in RUN_FILES if os.path.exists(os.path.join(directory, name))]
    if old:
        log(f"note: --overwrite: replacing the earlier run in {directory} ({', '.join(old)})")
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
    if config.get("attention"):
        words += ["--attention", config["attention"]]
    if config.get("cell", DEFAULT_CELL) != DEFAULT_CELL:
        words += ["--cell", config["cell"]]
    if config.get("dropout", DEFAULT_DROPOUT) != DEFAULT_DROPOUT:
        words += ["--dropout", str(config["dropout"])]
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
    task, common = config["task"], dict(padding_idx=0, cell=config.get("cell", DEFAULT_CELL), device=device)
    if task == "classify":
        return models.SequenceClassifier(len(src_vocab), config["embed"], config["hidden"], len(LABELS),
                                         pooling=config["pooling"], num_layers=config["layers"],
                                         bidirectional=config["bidirectional"], **common)
    if task == "tag":
        return models.SequenceTagger(len(src_vocab), config["embed"], config["hidden"], len(tgt_vocab),
                                     num_layers=config["layers"], bidirectional=config["bidirectional"],
                                     **common)
    # A seq2seq run written before "attention" existed was unidirectional whatever its
    # "bidirectional" said (the option applied to classify/tag only then).
    bidirectional = config["bidirectional"] and "attention" in config
    return models.Seq2Seq(len(src_vocab), len(tgt_vocab), config["embed"], config["hidden"],
                          num_layers=config["layers"], feed_context=config["feed_context"],
                          attention=config.get("attention"), bidirectional=bidirectional,
                          dropout=config.get("dropout", DEFAULT_DROPOUT), **common)


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
    from . import serialization
    config = load_config(directory)
    src_vocab, tgt_vocab = load_vocabs(config, directory)
    model = build_model(config, src_vocab, tgt_vocab, device)
    serialization.load(run_file(directory, "best.npz"), model)
    return config, model.eval(), src_vocab, tgt_vocab


def tokenize(config, text: str) -> list[str]:
    """Characters (reviews, numerals, pinyin; spaces dropped) or space-separated words (tagging)."""
    if config["task"] == "tag":
        return text.split()
    return [c for c in text if not c.isspace()]
