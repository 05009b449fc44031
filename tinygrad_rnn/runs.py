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

The model is rebuilt from ``config.json`` by its task (:mod:`tinygrad_rnn.tasks`, the registry that
also holds each data set's defaults and what a setting may be) and ``best.npz`` loaded into it.

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
import os
import shlex

from .data import BatchIterator, Vocab, dataset_splits
from .files import TMP_PREFIX, atomic_write, remove_stale_temporaries
from .tasks import (
    COMMON,
    CONFIG_FORMAT,
    DEFAULT_CELL,
    DEFAULT_DROPOUT,
    DEFAULTS,
    LABELS,
    TASKS,
    RunError,
    check_config,
)

__all__ = [
    "RunError",
    "RunBusyError",
    "RUN_FILES",
    "LABELS",
    "load_config",
    "check_config",
    "is_run_directory",
    "check_new_run_directory",
    "default_run_directory",
    "locked",
    "write_json",
    "clear_run",
    "run_file",
    "command_line",
    "load_splits",
    "build_vocabs",
    "load_vocabs",
    "make_batches",
    "load_run",
]

LOCK_FILE = ".tinygrad_rnn.lock"
RUN_FILES = (
    "config.json",
    "vocab.json",
    "target_vocab.json",
    "best.npz",
    "last.npz",
    "metrics.json",
    "plot.png",
)


class RunBusyError(RunError):
    """Another process holds the run directory's lock."""


# --- config.json -------------------------------------------------------------------------------
def load_config(directory) -> dict:
    """``DIR/config.json``, checked; clear errors for a missing or broken run directory."""
    if not os.path.isdir(directory):
        what = "a file, not a run directory" if os.path.exists(directory) else "no such run directory"
        raise RunError(f"{directory}: {what} (train one with 'tinygrad-rnn train')")
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise RunError(
            f"{directory}: not a run directory (no config.json); train one with 'tinygrad-rnn train'"
        )
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


def check_new_run_directory(directory, overwrite: bool = False) -> list[str]:
    """Refuse, before anything is written, an output directory a new run must not use: a file,
    a non-empty directory that is not a run of ours (its files are someone else's), or one that
    already holds a run of ours, unless ``overwrite`` (``train --overwrite``) says to replace it:
    a finished run may have taken an hour, and a repeated command must not lose it. Returns the
    earlier run's files that are there (only with ``overwrite``: otherwise they are refused)."""
    if not os.path.exists(directory):
        return []
    if not os.path.isdir(directory):
        raise RunError(f"{directory}: a file, not a directory; choose another --out")
    others = [e for e in os.listdir(directory) if not _ours(e)]
    if others and not is_run_directory(directory):
        shown = ", ".join(sorted(others)[:3]) + (", …" if len(others) > 3 else "")
        raise RunError(
            f"{directory} is not empty ({shown}) and is not a tinygrad-rnn run directory "
            "(no config.json of ours): nothing was changed; choose a new or empty --out"
        )
    old = [name for name in RUN_FILES if os.path.exists(os.path.join(directory, name))]
    if old and not overwrite:
        what = "a finished run" if "metrics.json" in old else "an unfinished run"
        raise RunError(
            f"{directory} already holds {what} ({', '.join(old)}); nothing was changed: "
            "--resume continues it, --overwrite replaces it, or choose another --out"
        )
    return old


def default_run_directory(config) -> str:
    """``runs/TASK-DATA[-…]``: where ``train`` writes without ``--out``. The name carries every
    setting that makes a different model (direction, cell, layers, bidirectional, attention or
    feed-context, pooling, dropout) and a seed other than 0, each only when it differs from its
    default, so two documented runs never share a directory: ``runs/seq2seq-numerals-gru-bi-attention``.
    Sizes, learning rate and epochs are not in it: a run that differs only in them is refused
    (``--out`` or ``--overwrite``), not replaced."""
    defaults = {**COMMON, **DEFAULTS[config["data"]]}
    task = TASKS[config["task"]]
    parts = [config["task"], config["data"]]
    if task.takes("direction", config["data"]) and config["direction"] != defaults["direction"]:
        parts.append(config["direction"].replace("_", "-"))  # to-chinese
    if config["cell"] != DEFAULT_CELL:
        parts.append(config["cell"])
    if config["layers"] != 1:
        parts.append(f"{config['layers']}layers")
    if config["bidirectional"]:
        parts.append("bi")
    if config["attention"]:
        parts.append("attention" if config["attention"] == "additive" else config["attention"])
    if config["feed_context"]:
        parts.append("feed-context")
    if task.takes("pooling", config["data"]) and config["pooling"] != defaults["pooling"]:
        parts.append(config["pooling"])  # last
    if config["dropout"] != DEFAULT_DROPOUT:
        parts.append(f"dropout{config['dropout']:g}")
    if config["seed"] != defaults["seed"]:
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
    except ImportError:  # Windows: no flock
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
                raise RunBusyError(
                    f"{directory} is in use by another tinygrad-rnn process (pid {holder}); "
                    "wait for it to finish, or choose another --out"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        stale = remove_stale_temporaries(directory, RUN_FILES)
        if stale:
            log(f"note: removed {len(stale)} temporary file(s) a killed run left in {directory}")
        yield
    finally:
        os.close(fd)  # releases the lock


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
    old = check_new_run_directory(directory, overwrite)
    if old:
        log(f"note: --overwrite: replacing the earlier run in {directory} ({', '.join(old)})")
        for name in old:
            os.remove(os.path.join(directory, name))


def run_file(directory, name: str) -> str:
    """``DIR/name``; a missing file is a clear error, not a bare "No such file"."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise RunError(
            f"{directory}: no {name} (not a complete run directory; train again with 'tinygrad-rnn train')"
        )
    return path


def command_line(config) -> str:
    """The one ``tinygrad-rnn train`` command that reproduces this run (options at their
    data set's default are left out)."""
    defaults = {**COMMON, **DEFAULTS[config["data"]]}
    words = ["tinygrad-rnn", "train", config["task"], "--data", config["data"]]
    for key in (
        "epochs",
        "embed",
        "hidden",
        "layers",
        "lr",
        "batch_size",
        "clip",
        "patience",
        "min_freq",
        "seed",
        "limit",
        "pooling",
        "max_len",
        "direction",
    ):
        if config.get(key) is not None and config[key] != defaults.get(key):
            words += [f"--{key.replace('_', '-')}", str(config[key])]
    words += ["--bidirectional"] * config["bidirectional"] + ["--feed-context"] * config["feed_context"]
    if config["attention"]:
        words += ["--attention", config["attention"]]
    if config["cell"] != DEFAULT_CELL:
        words += ["--cell", config["cell"]]
    if config["dropout"] != DEFAULT_DROPOUT:
        words += ["--dropout", str(config["dropout"])]
    return shlex.join(words)


# --- a run's data, vocabularies and model (what differs per task: the registry) ------------
def load_splits(config) -> tuple[list, list, list]:
    """Train / dev / test lists of ``(input tokens, target)`` for the run's data set."""
    return dataset_splits(
        config["data"],
        limit=config.get("limit"),
        max_len=config.get("max_len"),
        direction=config.get("direction") or "to_digits",
    )


def build_vocabs(config, train):
    """(input vocabulary, target vocabulary or None) from the training split only."""
    src = Vocab.build((x for x, _ in train), min_freq=config["min_freq"])
    return src, TASKS[config["task"]].target_vocab(train)


def load_vocabs(config, directory):
    """(input vocabulary, target vocabulary or None) saved in a run directory."""
    src_vocab = Vocab.load(run_file(directory, "vocab.json"))
    has_targets = TASKS[config["task"]].has_target_vocab
    tgt_vocab = Vocab.load(run_file(directory, "target_vocab.json")) if has_targets else None
    return src_vocab, tgt_vocab


def make_batches(config, examples, src_vocab, tgt_vocab, *, shuffle: bool, seed: int = 0):
    """A length-bucketed :class:`BatchIterator` over encoded examples."""
    inputs = [src_vocab.encode(x) for x, _ in examples]
    targets = TASKS[config["task"]].encode_targets(examples, tgt_vocab)
    return BatchIterator(
        inputs, targets, batch_size=config["batch_size"], shuffle=shuffle, seed=seed, bucket=True
    )


def load_run(directory, device):
    """(config, model with the best weights in eval mode, input vocab, target vocab or None)."""
    from . import serialization

    config = load_config(directory)
    src_vocab, tgt_vocab = load_vocabs(config, directory)
    model = TASKS[config["task"]].build_model(config, src_vocab, tgt_vocab, device)
    serialization.load(run_file(directory, "best.npz"), model)
    return config, model.eval(), src_vocab, tgt_vocab
