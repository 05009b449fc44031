"""Save and load a model (and optimizer) as one ``.npz`` file: plain arrays plus JSON, no pickle.

Layout of the file (a NumPy ``.npz``, i.e. a zip of ``.npy`` arrays)::

    model/<parameter name>           one array per parameter (host copies)
    optimizer/<index>/<state name>   optimizer state arrays (Adam's exp_avg, …)
    __meta__                         UTF-8 JSON as a uint8 array: format version, optimizer
                                     type/hyperparameters/step counts, and your ``meta``

Safety:

* it is read with ``allow_pickle=False``, so loading a file can never run code;
* ``save`` writes a temporary file in the same directory and renames it over ``path``
  (``os.replace`` is atomic), so a crash mid-write leaves the old checkpoint intact;
* ``load`` reads and checks everything — the zip's CRCs, names, shapes, optimizer state —
  before it changes anything, so a truncated, corrupted or mismatched file raises
  :class:`CheckpointError` and leaves the model and optimizer exactly as they were.

Arrays are loaded onto whichever device each parameter is on (save on a GPU, load on a laptop).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np

FORMAT = "tinygrad_rnn.checkpoint"
VERSION = 1


_UMASK = os.umask(0)  # read the process umask once (os.umask can only read it by setting it)
os.umask(_UMASK)


class CheckpointError(ValueError):
    """The file is not a usable checkpoint for this model/optimizer; nothing was changed."""


def save(path, model, optimizer=None, meta=None) -> None:
    """Write ``model`` (and ``optimizer``, and the JSON-serialisable ``meta``) to ``path``."""
    path = os.fspath(path)
    arrays = {f"model/{name}": value for name, value in model.state_dict().items()}
    header = {"format": FORMAT, "version": VERSION, "meta": meta, "optimizer": None}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for i, entries in sd["state"].items():
            for k, v in entries.items():
                if isinstance(v, np.ndarray):
                    arrays[f"optimizer/{i}/{k}"] = v
                else:
                    scalars.setdefault(str(i), {})[k] = v
        header["optimizer"] = {"type": sd["type"], "hyperparameters": sd["hyperparameters"],
                               "skipped_steps": sd["skipped_steps"], "scalars": scalars}
    try:
        text = json.dumps(header)
    except TypeError as e:
        raise TypeError(f"checkpoint meta must be JSON-serialisable (numbers, strings, lists, dicts): {e}") from None
    arrays["__meta__"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, **arrays)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """``with atomic_write(path) as f: ...`` — all of the file or none of it.

    The block writes a temporary file in ``path``'s directory; only when it finishes is that
    file renamed over ``path`` (``os.replace`` is atomic). An error or a crash inside the block
    leaves the old ``path`` as it was and removes the temporary file. Used for checkpoints and
    for everything else a run directory holds (JSON, vocabularies, plots).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=directory)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read(path) -> dict:
    """Every array of the file, fully read (so the zip's CRC checks run now, not later)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded as z:
                return {name: z[name] for name in z.files}
    except FileNotFoundError:
        raise
    except Exception as e:  # whatever a damaged zip/npy header makes the readers raise
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupted?): "
                              f"{type(e).__name__}: {e}") from None
    raise CheckpointError(f"{path}: a single .npy array, not a checkpoint (.npz archive)")


def load(path, model, optimizer=None):
    """Load ``path`` into ``model`` (and ``optimizer``); return the ``meta`` saved with it.

    Raises :class:`CheckpointError` — with the model and optimizer unchanged — when the file is
    truncated or corrupted, or its names/shapes do not fit the model, or it has no (or another
    kind of) optimizer state while an ``optimizer`` is given.
    """
    from .nn.module import StateDictError
    from .optim import OptimizerStateError

    path = os.fspath(path)
    arrays = _read(path)
    try:
        header = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: no readable metadata, not a tinygrad_rnn checkpoint ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a tinygrad_rnn checkpoint (its metadata: {str(header)[:80]})")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {header.get('version')}, "
                              f"this code reads version {VERSION}")

    model_sd = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
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
        sd = {"type": saved.get("type"), "hyperparameters": saved.get("hyperparameters", {}),
              "skipped_steps": saved.get("skipped_steps", 0), "state": state}
        try:
            apply_optimizer = optimizer._prepare_load(sd)
        except OptimizerStateError as e:
            raise CheckpointError(f"{path}: {e} (model left unchanged)") from None

    # Everything fits: only now change anything.
    for p, array in assignments:
        p._data = array
        p.bump_version()  # new values: a graph recorded before the load is stale
    if apply_optimizer is not None:
        apply_optimizer()
    return header.get("meta")
