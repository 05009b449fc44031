import importlib.util
import os

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.gradcheck import gradcheck


def test_unrolled_cell_gradcheck():
    unrolled_loss = _load_demo().unrolled_loss
    rng = np.random.default_rng(1)
    params = [
        tg.Tensor(rng.normal(0, 0.5, s), requires_grad=True)
        for s in [(2, 4, 3), (3, 4), (4, 4), (4,), (2, 4)]
    ]
    assert gradcheck(unrolled_loss, params, mode="full", seed=1)


def _load_demo():
    """examples/rnn_cell_demo.py as a module (examples/ is not a package)."""
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "rnn_cell_demo.py"
    )
    spec = importlib.util.spec_from_file_location("rnn_cell_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_version_has_one_source():
    """pyproject.toml reads the version from tinygrad_rnn.__version__ instead of repeating it."""
    import importlib.metadata
    import pathlib

    import pytest

    import tinygrad_rnn

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    pyproject = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert importlib.metadata.version("tinygrad-rnn") == tinygrad_rnn.__version__
