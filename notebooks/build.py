"""Run the notebooks' sources top to bottom and write them as .ipynb with their outputs.

The percent-format ``NN_name.py`` files are the sources (they diff well in review); the ``.ipynb``
beside each is generated from it — never edit it by hand. ``make notebooks`` runs this::

    python notebooks/build.py            # all notebooks
    python notebooks/build.py 02 03      # those whose names start with 02 or 03

Each notebook runs in a fresh Jupyter kernel of this Python, with ``notebooks/`` as its working
directory; a cell that raises stops the build with the cell and the error, and writes nothing.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
INSTALL_HINT = "pip install 'tinygrad-rnn[nbexec]'"


def sources(prefixes=()) -> list[pathlib.Path]:
    """The notebook sources ``NN_*.py``, in order; only those starting with one of ``prefixes``."""
    found = sorted(HERE.glob("[0-9][0-9]_*.py"))
    return [p for p in found if not prefixes or any(p.name.startswith(x) for x in prefixes)]


def _modules():
    try:
        import jupytext
        import nbformat
        from nbclient import NotebookClient
    except ImportError as e:
        raise SystemExit(f"running the notebooks needs jupytext, nbformat, nbclient and ipykernel "
                         f"({e}): {INSTALL_HINT}") from None
    return jupytext, nbformat, NotebookClient


def execute(path: pathlib.Path, timeout: int = 600, replace: dict | None = None):
    """The notebook of ``path`` with every cell run in a fresh kernel; raises on the first error.

    ``replace``: ``{old line: new line}`` applied to the source first (the tests switch ``DEVICE``).
    """
    jupytext, _, NotebookClient = _modules()
    text = path.read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        if old not in text:
            raise ValueError(f"{path.name}: no line {old!r} to replace")
        text = text.replace(old, new)
    nb = jupytext.reads(text, fmt="py:percent")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def merge_streams(nb) -> None:
    """Join each cell's consecutive stdout (or stderr) pieces into one output: how the kernel
    happened to flush its stream must not change the file."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for out in cell.outputs:
            if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                    and merged[-1].name == out.name):
                merged[-1].text += out.text
            else:
                merged.append(out)
        cell.outputs = merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose names start with these")
    args = parser.parse_args(argv)
    _, nbformat, _ = _modules()
    paths = sources(args.prefixes)
    if not paths:
        raise SystemExit(f"no notebook source matches {args.prefixes} in {HERE}")
    for path in paths:
        start = time.perf_counter()
        nb = execute(path)
        merge_streams(nb)
        for i, cell in enumerate(nb.cells):   # stable ids: a rebuild changes only what really changed
            cell.id = f"cell-{i:02d}"
        out = path.with_suffix(".ipynb")
        nbformat.write(nb, str(out))
        print(f"{out.relative_to(HERE.parent)}: ran in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
