"""Every notebook runs top to bottom without an error, and its .ipynb is what its source produced.

The sources are ``notebooks/NN_*.py`` (jupytext percent format); ``make notebooks`` executes them
into the ``.ipynb`` files beside them. Here each source runs in a fresh Jupyter kernel, as a reader
would run it, so a change in the library that breaks a notebook fails the suite. With
``TINYGRAD_RNN_TEST_DEVICE=cuda`` (``make test-gpu``) they run a second time with ``DEVICE = "cuda"``.
"""

import importlib.util
import pathlib

import pytest

from devices import requested_devices, unavailable_reason

INSTALL = "pip install 'tinygrad-rnn[nbexec]' (make test installs it)"
jupytext = pytest.importorskip("jupytext", reason=f"running the notebooks needs jupytext: {INSTALL}")
nbformat = pytest.importorskip("nbformat", reason=f"running the notebooks needs nbformat: {INSTALL}")
pytest.importorskip("nbclient", reason=f"running the notebooks needs nbclient: {INSTALL}")
pytest.importorskip("ipykernel", reason=f"running the notebooks needs ipykernel: {INSTALL}")

NOTEBOOKS_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
_spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS_DIR / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

SOURCES = build.sources()
DEVICE_LINE = 'DEVICE = "cpu"'


def _devices():
    params = [pytest.param("cpu", id="cpu")]
    if "cuda" in requested_devices():
        reason = unavailable_reason("cuda")
        marks = [pytest.mark.gpu] + ([pytest.mark.skip(reason=f"cuda unavailable: {reason}")] if reason else [])
        params.append(pytest.param("cuda", id="cuda", marks=marks))
    return params


def test_the_notebooks_are_there():
    assert [p.name[:2] for p in SOURCES] == ["01", "02", "03", "04"], SOURCES


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(source, device, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")   # the kernel inherits it: one BLAS thread, as make run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    replace = {} if device == "cpu" else {DEVICE_LINE: f'DEVICE = "{device}"'}
    nb = build.execute(source, replace=replace)        # raises CellExecutionError: the cell and its error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_line_picks_the_device(source):
    lines = source.read_text(encoding="utf-8").splitlines()
    assert lines.count(DEVICE_LINE) == 1
    assert sum(line.startswith("DEVICE =") for line in lines) == 1


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_committed_ipynb_was_generated_from_its_source(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} is missing: run make notebooks"
    executed = nbformat.read(str(ipynb), as_version=4)
    expected = jupytext.read(str(source))
    stale = "is not the output of its source: run make notebooks (never edit the .ipynb by hand)"
    assert [(c.cell_type, c.source) for c in executed.cells] == \
           [(c.cell_type, c.source) for c in expected.cells], f"{ipynb.name} {stale}"
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{ipynb.name} has cells that never ran"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], f"{ipynb.name} holds an error"


def test_a_cell_that_raises_fails_the_run(tmp_path):
    broken = tmp_path / "99_broken.py"
    broken.write_text('# %%\nDEVICE = "cpu"\n\n# %%\nraise ValueError("planted failure")\n', encoding="utf-8")
    with pytest.raises(Exception, match="planted failure"):
        build.execute(broken)
