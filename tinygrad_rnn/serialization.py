"""Save and load a model (and optimizer) as one ``.npz`` file: plain arrays plus JSON, no pickle.

Layout of the file (a NumPy ``.npz``, i.e. a zip of ``.npy`` arrays)::

    model/<parameter name>           one array per parameter (host copies)
    optimizer/<index>/<state name>   optimizer state arrays (Adam's exp_avg, …)
    __meta__                         UTF-8 JSON as a uint8 array: format version, optimizer
                                     type/hyperparameters/step counts, and your ``meta``

Safety:

* it is read with ``allow_pickle=False``, so loading a file can never run code;
* ``save`` writes through :func:`tinygrad_rnn.files.atomic_write` (a temporary file renamed over
  ``path``), so a crash mid-write leaves the old checkpoint intact;
* ``load`` reads and checks everything — the zip's CRCs, names, shapes, optimizer state —
  before it changes anything, so a truncated, corrupted or mismatched file raises
  :class:`CheckpointError` and leaves the model and optimizer exactly as they were.

Arrays are loaded onto whichever device each parameter is on (save on a GPU, load on a laptop).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from .files import atomic_write

FORMAT = "tinygrad_rnn.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable checkpoint for this model/optimizer; nothing was changed."""


def save(path, model, optimizer=None, meta=None) -> None:
    """Write ``model`` (and ``optimizer``, and the JSON-serialisable ``meta``) to ``path``."""
    path = os.fspath(path)
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    header = {"format": FORMAT, "version": VERSION, "meta": meta, "optimizer": None}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars: dict[str, dict[str, object]] = {}  # str(i) -> {key: non-array value}
        for i, entries in sd["state"].items():
            for k, v in entries.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optimizer/{i}/{k}"] = v
                else:
                    scalars.setdefault(str(i), {})[k] = v
        header["optimizer"] = {
            "type": sd["type"],
            "hyperparameters": sd["hyperparameters"],
            "skipped_steps": sd["skipped_steps"],
            "scalars": scalars,
        }
    try:
        text = json.dumps(header)
    except TypeError as e:
        raise TypeError(
            f"checkpoint meta must be JSON-serialisable (numbers, strings, lists, dicts): {e}"
        ) from None
    arrays["__meta__"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (the second: an empty one)
NPY_MAGIC = b"\x93NUMPY"


def _read(path, only=None) -> dict:
    """Every array of the file (or those named in ``only``), fully read, so the zip's CRC checks
    run now, not later. Anything that is not an ``.npz`` is refused by its first bytes, before
    NumPy parses it (whose messages would suggest ``allow_pickle``: loading a pickle runs code)."""
    with open(path, "rb") as f:
        head = f.read(6)
    if not head:
        raise CheckpointError(f"{path}: cannot read the checkpoint: the file is empty (truncated?)")
    if head.startswith(NPY_MAGIC):
        raise CheckpointError(
            f"{path}: a single .npy array, not a checkpoint (a tinygrad_rnn checkpoint is an .npz archive)"
        )
    if not head.startswith(ZIP_MAGIC):
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files if only is None or name in only}
    except Exception as e:  # whatever a damaged zip/npy header makes the readers raise
        if "pickle" in str(e):  # an object array inside: never load it
            raise CheckpointError(
                f"{path}: not a tinygrad_rnn checkpoint (it holds Python objects)"
            ) from None
        raise CheckpointError(
            f"{path}: cannot read the checkpoint (truncated or corrupted?): {type(e).__name__}: {e}"
        ) from None


def _header(path, arrays: dict) -> dict:
    """The checkpoint's JSON header, checked: format, version, and the optimizer record's types."""
    try:
        header = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: no readable metadata, not a tinygrad_rnn checkpoint ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint (its metadata: {str(header)[:80]})")
    if header.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {header.get('version')}, this code reads version {VERSION}"
        )
    problem = _optimizer_record_problem(header.get("optimizer"))
    if problem:
        raise CheckpointError(f"{path}: broken optimizer record: {problem} (nothing was loaded)")
    return header


def is_finite_number(v) -> bool:
    """A finite int or float, not a bool: what a number in a saved JSON record must be."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _optimizer_record_problem(saved) -> str | None:
    """Why the header's optimizer record is malformed (wrong types), or None. Whether it fits a
    given optimizer is the optimizer's own check."""
    if saved is None:
        return None
    if not isinstance(saved, dict):
        return f"{saved!r} is not a record"
    if not isinstance(saved.get("type"), str):
        return f"type {saved.get('type')!r}"
    hyper = saved.get("hyperparameters", {})
    if not isinstance(hyper, dict):
        return f"hyperparameters {hyper!r}"
    for k, v in hyper.items():
        if not (is_finite_number(v) or (isinstance(v, list) and v and all(is_finite_number(x) for x in v))):
            return f"hyperparameter {k!r} = {v!r} is not a finite number"
    skipped = saved.get("skipped_steps", 0)
    if not isinstance(skipped, int) or isinstance(skipped, bool) or skipped < 0:
        return f"skipped_steps {skipped!r}"
    scalars = saved.get("scalars", {})
    if not isinstance(scalars, dict) or not all(isinstance(e, dict) for e in scalars.values()):
        return f"scalars {str(scalars)[:60]}"
    for i, entries in scalars.items():
        for k, v in entries.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                return f"state {k!r} of parameter {i} = {v!r} is not a count"
    return None


def read_meta(path):
    """The ``meta`` saved with a checkpoint, read without loading (or needing) a model."""
    path = os.fspath(path)
    return _header(path, _read(path, only={"__meta__"})).get("meta")


def load(path, model, optimizer=None, check_meta=None):
    """Load ``path`` into ``model`` (and ``optimizer``); return the ``meta`` saved with it.

    Raises :class:`CheckpointError` — with the model and optimizer unchanged — when the file is
    not a checkpoint, is truncated or corrupted, its names/shapes do not fit the model, it has no
    (or another kind of, or a malformed) optimizer state while an ``optimizer`` is given, or
    ``check_meta(meta)`` raises (a caller's check of its own ``meta``, run before anything is
    applied).
    """
    from .nn.module import StateDictError
    from .optim import OptimizerStateError

    path = os.fspath(path)
    arrays = _read(path)
    header = _header(path, arrays)
    if check_meta is not None:
        try:
            check_meta(header.get("meta"))
        except (TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: {e} (nothing was loaded)") from None

    model_sd = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        assignments, _ = model._prepare_load(model_sd, strict=True)
    except StateDictError as e:
        raise CheckpointError(f"{path}: {e}") from None

    apply_optimizer = None
    if optimizer is not None:
        saved = header.get("optimizer")
        if saved is None:
            raise CheckpointError(f"{path}: the checkpoint has no optimizer state (model left unchanged)")
        state = {}
        for k, v in arrays.items():
            if k.startswith("optimizer/"):
                parts = k.split("/", 2)
                if len(parts) != 3:
                    raise CheckpointError(f"{path}: malformed optimizer entry {k!r} (model left unchanged)")
                state.setdefault(parts[1], {})[parts[2]] = v
        for i, entries in saved.get("scalars", {}).items():
            state.setdefault(i, {}).update(entries)
        sd = {
            "type": saved.get("type"),
            "hyperparameters": saved.get("hyperparameters", {}),
            "skipped_steps": saved.get("skipped_steps", 0),
            "state": state,
        }
        try:
            apply_optimizer = optimizer._prepare_load(sd)
        except OptimizerStateError as e:
            raise CheckpointError(f"{path}: {e} (model left unchanged)") from None

    # Everything fits: only now change anything.
    for p, array in assignments:
        p._replace_data(array)  # new values, version bumped: a graph recorded before is stale
    if apply_optimizer is not None:
        apply_optimizer()
    return header.get("meta")
