"""Optional extras (``pip install -e '.[X]'`` from the clone): one spelling of "this needs extra X".

The package itself needs NumPy and threadpoolctl (which sets the BLAS threads, threads.py). CuPy
(``gpu``), the data sets (``data``), matplotlib (``plot``) and tqdm (``progress``) are extras;
whatever needs one says which install fixes it.
"""

from __future__ import annotations


class MissingExtraError(ImportError):
    """A package of an optional extra is not installed; the message says which ``pip install`` fixes it."""


def install_hint(extra: str) -> str:
    """The command that installs ``extra``: ``pip install -e '.[extra]'`` from the clone's root
    (the package is not on PyPI, so ``pip install 'tinygrad-rnn[extra]'`` would find nothing)."""
    return f"pip install -e '.[{extra}]' (from the clone's root, in its .venv)"


def missing_extra(what: str, extra: str) -> MissingExtraError:
    """The error to raise when ``what`` (e.g. "plots need matplotlib") is missing from ``extra``."""
    return MissingExtraError(
        f"{what}, which is not installed; it comes with the {extra!r} extra: {install_hint(extra)}"
    )
