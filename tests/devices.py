"""Which devices the device tests run on, and the ``device`` / ``cuda`` fixtures.

* ``cpu`` (NumPy) and ``strict`` (the CuPy-like stand-in of ``strict_backend.py``) always run.
* ``cuda`` runs where CuPy and a GPU are present, or when asked for with the environment variable
  ``TINYGRAD_RNN_TEST_DEVICE=cuda`` (``make test-gpu`` sets it); where it is asked for but
  missing, its tests skip and say why (the reason names ``pip install -e '.[gpu]'``).

Use ``device`` as a fixture in plain tests, or ``@pytest.mark.parametrize("device",
device_params())`` next to ``@given`` (Hypothesis refuses function-scoped fixtures).
``cuda`` is a fixture for tests that only make sense on a GPU; it skips with the reason.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from tinygrad_rnn.backend import DeviceError, backend_of_array, get_backend
from tinygrad_rnn.tensor import Tensor

DEVICE_ENV = "TINYGRAD_RNN_TEST_DEVICE"
ALWAYS = ("cpu", "strict")


def requested_devices() -> list:
    """Extra devices named in ``TINYGRAD_RNN_TEST_DEVICE`` (comma-separated, e.g. ``cuda``)."""
    return [d.strip() for d in os.environ.get(DEVICE_ENV, "").split(",") if d.strip()]


def unavailable_reason(device: str) -> str | None:
    """None if ``device`` works here, else why not (the backend's own message)."""
    try:
        get_backend(device)
    except DeviceError as e:
        return str(e)
    return None


def device_params(*, cpu: bool = True, cuda: str = "auto") -> list:
    """pytest params for the devices under test.

    ``cuda="auto"``: cuda is included when requested or available; ``"always"``: included in any
    case and skipped (with the reason) where unusable — for the tests that *are* about cuda.
    """
    names = [d for d in ALWAYS if cpu or d != "cpu"]
    for extra in requested_devices():
        if extra not in names:
            names.append(extra)
    if "cuda" not in names and (cuda == "always" or unavailable_reason("cuda") is None):
        names.append("cuda")
    params = []
    for name in names:
        reason = unavailable_reason(name) if name not in ALWAYS else None
        marks = [pytest.mark.gpu] if name == "cuda" else []
        if reason is not None:
            marks.append(pytest.mark.skip(reason=f"device {name!r} unavailable: {reason}"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def host(a) -> np.ndarray:
    """A NumPy copy of a tensor or of a device array (e.g. ``t.grad``), whatever its device."""
    if isinstance(a, Tensor):
        return a.numpy()
    if isinstance(a, np.ndarray):
        return a.copy()
    return backend_of_array(a).to_host(a)


@pytest.fixture(params=device_params())
def device(request) -> str:
    """Each device under test in turn: cpu, strict, and cuda where present or requested."""
    return request.param


@pytest.fixture(scope="session")
def cuda() -> str:
    """The ``cuda`` device, or a skip that says what is missing."""
    reason = unavailable_reason("cuda")
    if reason is not None:
        pytest.skip(f"needs a CUDA GPU with CuPy: {reason}")
    return "cuda"
