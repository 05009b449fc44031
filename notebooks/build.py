"""The notebooks' two builds: the committed .ipynb (sources only) and an executed copy to read.

The percent-format ``NN_name.py`` files are the sources (they diff well in review). Beside each is
``NN_name.ipynb``, generated from it and committed **without outputs**: an output saved in the
repository goes stale as soon as the library changes, and nothing would notice. What a notebook
claims about its outputs is an ``assert`` in its cells instead, checked every time it runs (the test
suite runs every notebook). So::

    python notebooks/build.py --strip        # write notebooks/NN_*.ipynb from the sources, no outputs
    python notebooks/build.py                # make notebooks: run each, write runs/notebooks/NN_*.ipynb
    python notebooks/build.py 02 03          # only those whose names start with 02 or 03

``--strip`` needs no kernel and takes a second. Without it each notebook runs in a fresh Jupyter
kernel of this Python, with ``notebooks/`` as its working directory; a cell that raises (a failed
assert too) stops the build with the cell and the error, and writes nothing. The executed copies
go to ``runs/notebooks/`` (ignored by git), to open in JupyterLab or any notebook viewer.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
EXECUTED = HERE.parent / "runs" / "notebooks"
INSTALL_HINT = "pip install -e '.[nbexec]'"


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
        raise SystemExit(
            f"running the notebooks needs jupytext, nbformat, nbclient and ipykernel ({e}): {INSTALL_HINT}"
        ) from None
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
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
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
            if (
                out.output_type == "stream"
                and merged
                and merged[-1].output_type == "stream"
                and merged[-1].name == out.name
            ):
                merged[-1].text += out.text
            else:
                merged.append(out)
        cell.outputs = merged


def stripped(path: pathlib.Path):
    """The notebook of ``path`` as committed: its cells, no outputs, no execution counts."""
    jupytext, _, _ = _modules()
    nb = jupytext.read(str(path), fmt="py:percent")
    for i, cell in enumerate(nb.cells):  # stable ids: a rebuild changes only what really changed
        cell.id = f"cell-{i:02d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefixes", nargs="*", help="only notebooks whose names start with these")
    parser.add_argument(
        "--strip",
        action="store_true",
        help="write notebooks/NN_*.ipynb from the sources without running them (what is committed)",
    )
    args = parser.parse_args(argv)
    _, nbformat, _ = _modules()
    paths = sources(args.prefixes)
    if not paths:
        raise SystemExit(f"no notebook source matches {args.prefixes} in {HERE}")
    for path in paths:
        if args.strip:
            out = path.with_suffix(".ipynb")
            nbformat.write(stripped(path), str(out))
            print(f"{out.relative_to(HERE.parent)}: written from {path.name}, without outputs")
            continue
        start = time.perf_counter()
        nb = execute(path)
        merge_streams(nb)
        for i, cell in enumerate(nb.cells):
            cell.id = f"cell-{i:02d}"
        EXECUTED.mkdir(parents=True, exist_ok=True)
        out = EXECUTED / path.with_suffix(".ipynb").name
        nbformat.write(nb, str(out))
        print(
            f"{os.path.relpath(out, HERE.parent)}: ran in {time.perf_counter() - start:.1f} s, every assert held"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
