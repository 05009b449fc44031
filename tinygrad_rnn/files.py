"""Files written whole or not at all: the one place that knows how (checkpoints, run directories,
vocabularies and plots all write through :func:`atomic_write`).

A reader never sees half a file: the bytes go to a temporary ``.tmp-<name>-…`` file beside the
target, are flushed to disk, and only then renamed over it (``os.replace`` is atomic on POSIX and
Windows). A crash mid-write leaves the old file as it was; a process killed outright (``kill -9``)
can leave the temporary behind, which :func:`remove_stale_temporaries` clears later.
"""

from __future__ import annotations

import contextlib
import os
import secrets

TMP_PREFIX = ".tmp-"


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    """A new file ``.tmp-<name>-<random>`` in ``directory``, opened for writing.

    ``os.open(..., 0o666)`` lets the OS apply the process umask, so the finished file gets the
    permissions any new file would (``tempfile.mkstemp`` would make it 0600), and nothing here
    has to read or change the umask.
    """
    for _ in range(100):
        tmp = os.path.join(directory, f"{TMP_PREFIX}{name}-{secrets.token_hex(4)}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file for {name!r} in {directory}")


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """``with atomic_write(path) as f: ...`` — all of the file or none of it.

    The block writes a temporary file in ``path``'s directory; only when it finishes is that
    file renamed over ``path``. An error inside the block leaves the old ``path`` as it was and
    removes the temporary file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def remove_stale_temporaries(directory, names) -> list[str]:
    """Remove the ``.tmp-<name>-…`` files that :func:`atomic_write` left in ``directory`` for any
    of ``names`` (a process killed mid-write). Call it only while no one else writes there (the
    run-directory lock); returns the names removed."""
    removed = []
    prefixes = tuple(f"{TMP_PREFIX}{name}-" for name in names)
    for entry in os.listdir(directory):
        if entry.startswith(prefixes) and os.path.isfile(os.path.join(directory, entry)):
            os.remove(os.path.join(directory, entry))
            removed.append(entry)
    return removed
