"""The package is layered: no module imports a layer above its own (docs/architecture.md).

A layer may import itself and anything below. Every module must be placed in a layer here, so a
new module makes this test fail until someone decides where it belongs. The layer table of
docs/architecture.md must be this one, and every module path that page names must exist.
"""

import ast
import itertools
import os
import re

import pytest
from markdown_code import markdown_code

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tinygrad_rnn")

# Bottom to top. A key is a module or a subpackage (all its modules), relative to tinygrad_rnn.
LAYERS = [
    ("base", ["extras", "files", "backend", "threads"]),  # NumPy/CuPy, extras, atomic files, BLAS threads
    # The engine: Tensor and the backward walk (tensor.py) with the ops and their backward
    # formulas (ops.py). One layer: ops build on Tensor, and Tensor's methods call the ops.
    ("engine", ["tensor", "ops", "forward"]),
    ("nn", ["nn", "gradcheck"]),  # modules, cells, the unroller; gradient checks
    ("library", ["data", "models", "optim", "plotting", "baselines"]),
    ("training", ["serialization", "train", "tasks", "runs"]),  # fit loop, model files, task registry, runs
    ("tools", ["bptt", "testing"]),  # BPTT inspection tools, the gradient-check kit
    ("cli", ["cli", "__main__"]),  # the command line
]


def layer_of(module: str) -> int:
    """The layer index of ``module`` (dotted, relative to tinygrad_rnn, '' for the package)."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        key = ".".join(parts[:depth])
        for index, (_, keys) in enumerate(LAYERS):
            if key in keys:
                return index
    raise KeyError(module)


def modules():
    """(dotted name relative to tinygrad_rnn, path, is_package) of every module of the package."""
    for root, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), PACKAGE)[:-3].replace(os.sep, ".")
                is_package = rel.endswith("__init__")
                rel = (
                    rel[: -len(".__init__")]
                    if rel.endswith(".__init__")
                    else ("" if rel == "__init__" else rel)
                )
                yield rel, os.path.join(root, name), is_package


def imported_modules(module: str, path: str, is_package: bool):
    """Every tinygrad_rnn module that ``path`` imports (at top level or inside a function)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = [p for p in package if p]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tinygrad_rnn."):
                    yield alias.name[len("tinygrad_rnn.") :], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("tinygrad_rnn."):
                    base = node.module[len("tinygrad_rnn.") :].split(".")
                elif node.module == "tinygrad_rnn":
                    base = []
                else:
                    continue
            else:
                base = package[: len(package) - (node.level - 1)] + (
                    node.module.split(".") if node.module else []
                )
            if node.module is None or not base:  # ``from . import x``: x is a module
                for alias in node.names:
                    yield ".".join(base + [alias.name]), node.lineno
            else:
                yield ".".join(base), node.lineno


def test_every_module_has_a_layer():
    unplaced = [m for m, _, _ in modules() if m and _safe_layer(m) is None]
    assert not unplaced, f"place these modules in a layer of tests/test_import_layers.py: {unplaced}"


def _safe_layer(module):
    try:
        return layer_of(module)
    except KeyError:
        return None


def test_no_module_imports_a_layer_above_its_own():
    violations = []
    for module, path, is_package in modules():
        if not module:
            continue  # tinygrad_rnn/__init__.py: the public facade re-exports the engine
        own = layer_of(module)
        for target, line in imported_modules(module, path, is_package):
            other = _safe_layer(target)
            if other is not None and other > own:
                violations.append(
                    f"{os.path.relpath(path, PACKAGE)}:{line} ({LAYERS[own][0]}) imports "
                    f"{target} ({LAYERS[other][0]})"
                )
    assert not violations, "imports from a higher layer:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    "source, module, is_package, expected",
    [
        ("from ..runs import load_run", "cli.tasks", False, {"runs"}),
        ("from . import bptt, tasks", "cli", True, {"cli.bptt", "cli.tasks"}),
        ("from .. import tensor as _engine", "bptt.tracing", False, {"tensor"}),
        ("import tinygrad_rnn.cli.main", "train", False, {"cli.main"}),
    ],
)
def test_the_import_reader_resolves_relative_imports(tmp_path, source, module, is_package, expected):
    path = tmp_path / "m.py"
    path.write_text(source + "\n")
    assert {m for m, _ in imported_modules(module, str(path), is_package)} == expected


def test_a_violation_is_caught(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from ..cli import main\n")
    ((target, _),) = imported_modules("models.classifier", str(path), False)
    assert layer_of(target) > layer_of("models.classifier")


def test_the_command_line_has_no_import_cycle():
    """cli/__init__ → main → tasks, bptt → errors: no submodule imports the package or main back."""
    for module, path, is_package in modules():
        if module.startswith("cli.") and module != "cli.main":
            targets = {t for t, _ in imported_modules(module, path, is_package)}
            assert not targets & {"cli", "cli.main"}, f"{module} imports {targets & {'cli', 'cli.main'}}"


# ---- docs/architecture.md says the same ----------------------------------------------------------

ROOT = os.path.dirname(PACKAGE)
ARCHITECTURE = os.path.join(ROOT, "docs", "architecture.md")


def _doc_key(name: str) -> str:
    """`tensor.py` → "tensor", `nn/` → "nn": a doc's module name as a key of LAYERS."""
    return name[: -len(".py")] if name.endswith(".py") else name.rstrip("/")


def architecture_layers(text: str) -> list:
    """(layer, [module keys]) of each row of the first table under "## The layers", in order."""
    section = ("\n" + text).split("\n## The layers\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = list(itertools.takewhile(lambda line: line.startswith("|"), lines[first:]))
    layers = []
    for row in rows[2:]:  # after the header and the |---| line
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        layers.append((cells[0], [_doc_key(m) for m in re.findall(r"`([^`]+)`", cells[1])]))
    return layers


def test_the_architecture_doc_lists_the_same_layers_and_modules():
    with open(ARCHITECTURE, encoding="utf-8") as f:
        documented = architecture_layers(f.read())
    assert [name for name, _ in documented] == [name for name, _ in LAYERS], (
        "docs/architecture.md's layer table names other layers, or another order, than LAYERS here"
    )
    for (name, doc_keys), (_, keys) in zip(documented, LAYERS):
        assert sorted(doc_keys) == sorted(keys), (
            f"layer {name}: docs/architecture.md lists {sorted(doc_keys)}, this test {sorted(keys)}"
        )


def test_the_layer_table_reader_sees_a_changed_row():
    text = (
        "## The layers\n\n| layer | modules | what |\n|---|---|---|\n"
        "| base | `backend.py`, `nn/` | x |\n| engine | `tensor.py` | y |\n\n"
        "| no | `b.py` |\n## Next\n| no | `a.py` |\n"
    )
    assert architecture_layers(text) == [("base", ["backend", "nn"]), ("engine", ["tensor"])]


# A path as the doc writes it: `nn/cells.py`, `tinygrad_rnn/testing/check.py`, `plotting/`,
# `cli/tasks.py:train_command` (a module and a name in it).
DOC_PATH = re.compile(r"^(?:tinygrad_rnn/)?((?:[\w.-]+/)*[\w.-]+(?:\.py|/))(?::[\w.]+)?$")


def documented_paths(text: str) -> list:
    """(line number, path) of every code span or code line of ``text`` that names a .py file or a folder."""
    return [(number, m.group(1)) for number, code, _ in markdown_code(text) if (m := DOC_PATH.match(code))]


def _exists(path: str) -> bool:
    """In the package (`nn/cells.py`), or at the repository's root for its other folders
    (`tests/op_registry.py`, `benchmarks/`)."""
    if os.path.exists(os.path.join(PACKAGE, path)):
        return True
    top = path.split("/")[0]
    return (
        top != "tinygrad_rnn"
        and os.path.isdir(os.path.join(ROOT, top))
        and os.path.exists(os.path.join(ROOT, path))
    )


def test_every_module_path_the_architecture_doc_names_exists():
    with open(ARCHITECTURE, encoding="utf-8") as f:
        paths = documented_paths(f.read())
    assert len(paths) > 50, f"only {len(paths)} paths found in docs/architecture.md: is the reader broken?"
    missing = [f"line {n}: {p}" for n, p in paths if not _exists(p)]
    assert not missing, "docs/architecture.md names paths that do not exist:\n" + "\n".join(missing)


def test_the_path_reader_finds_modules_folders_and_names_in_them():
    text = "See `nn/cells.py`, `tinygrad_rnn/plotting/`, `cli/tasks.py:train_command`, `nn.RNN` and `a b.py`."
    assert sorted(p for _, p in documented_paths(text)) == ["cli/tasks.py", "nn/cells.py", "plotting/"]
    assert not _exists("nn/rnn.py") and _exists("nn/cells.py") and _exists("tests/op_registry.py")
