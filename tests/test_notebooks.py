"""Every notebook runs top to bottom without an error, and its committed .ipynb is its source,
without outputs.

The sources are ``notebooks/NN_*.py`` (jupytext percent format). Here each runs in a fresh Jupyter kernel,
as a reader would run it, so a change in the library that breaks a notebook fails the suite — and so does
a change that makes one of its claims false: what a notebook's text says its outputs show is an
``assert`` in its cells. The committed ``.ipynb`` beside each source holds no outputs
(``python notebooks/build.py --strip`` writes it): an output kept in the repository would go stale
unnoticed. ``make notebooks`` writes executed copies to ``runs/notebooks/``. With
``TINYGRAD_RNN_TEST_DEVICE=cuda`` (``make test-gpu``) they run a second time with ``DEVICE = "cuda"``.
"""

import importlib.util
import pathlib

import pytest
from devices import requested_devices, unavailable_reason

INSTALL = "pip install -e '.[nbexec]' (make test installs it)"
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
        marks = [pytest.mark.gpu] + (
            [pytest.mark.skip(reason=f"cuda unavailable: {reason}")] if reason else []
        )
        params.append(pytest.param("cuda", id="cuda", marks=marks))
    return params


def test_the_notebooks_are_there():
    assert [p.name[:2] for p in SOURCES] == ["01", "02", "03", "04", "05"], SOURCES


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(source, device, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # the kernel inherits it: one BLAS thread, as make run
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    replace = {} if device == "cpu" else {DEVICE_LINE: f'DEVICE = "{device}"'}
    nb = build.execute(source, replace=replace)  # raises CellExecutionError: the cell and its error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_line_picks_the_device(source):
    lines = source.read_text(encoding="utf-8").splitlines()
    assert lines.count(DEVICE_LINE) == 1
    assert sum(line.startswith("DEVICE =") for line in lines) == 1


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_the_committed_ipynb_is_its_source_without_outputs(source):
    ipynb = source.with_suffix(".ipynb")
    fix = "run python notebooks/build.py --strip (never edit the .ipynb by hand)"
    assert ipynb.is_file(), f"{ipynb.name} is missing: {fix}"
    committed = nbformat.read(str(ipynb), as_version=4)
    expected = build.stripped(source)
    assert [(c.cell_type, c.source) for c in committed.cells] == [
        (c.cell_type, c.source) for c in expected.cells
    ], f"{ipynb.name} is not its source {source.name}: {fix}"
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert not [c.id for c in code if c.outputs or c.execution_count is not None], (
        f"{ipynb.name} holds outputs, which go stale unnoticed: {fix}"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_notebook_checks_what_it_says(source):
    """The claims about outputs are asserts: a notebook without any has not been written to this rule."""
    code = [c.source for c in build.stripped(source).cells if c.cell_type == "code"]
    assert sum(line.lstrip().startswith("assert ") for cell in code for line in cell.splitlines()) >= 3


def test_make_notebooks_writes_executed_copies_outside_the_sources(tmp_path, monkeypatch):
    source = SOURCES[0]
    before = source.with_suffix(".ipynb").read_bytes()
    ran = []

    def fake_execute(path, **kwargs):  # the kernel is the other tests' business
        ran.append(path)
        nb = build.stripped(path)
        nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
        return nb

    monkeypatch.setattr(build, "execute", fake_execute)
    monkeypatch.setattr(build, "EXECUTED", tmp_path / "runs" / "notebooks")
    assert build.main([source.name[:2]]) == 0
    assert ran == [source]
    executed = nbformat.read(
        str(tmp_path / "runs" / "notebooks" / source.with_suffix(".ipynb").name), as_version=4
    )
    assert executed.cells[1].outputs[0].text == "ran\n"
    assert source.with_suffix(".ipynb").read_bytes() == before


@pytest.mark.parametrize("cell", ['raise ValueError("planted failure")', 'assert 1 > 2, "planted failure"'])
def test_a_cell_that_raises_fails_the_run(tmp_path, cell):
    broken = tmp_path / "99_broken.py"
    broken.write_text(f'# %%\nDEVICE = "cpu"\n\n# %%\n{cell}\n', encoding="utf-8")
    with pytest.raises(Exception, match="planted failure"):
        build.execute(broken)
