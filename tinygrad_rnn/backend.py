"""The one place that knows NumPy from CuPy.

A *device* string (``"cpu"``, ``"cuda"``) maps to a :class:`Backend`: the array module ``xp``
plus the few things NumPy and CuPy disagree on — scatter-add, copies to and from the host, and
the error raised when CuPy or a GPU is missing. Nothing else in the package imports ``cupy``.

Random numbers are always drawn on the host with a seeded ``numpy.random.Generator`` and then
moved to the device, so one seed gives the same weights on every device.
"""

from __future__ import annotations

import os

import numpy as np

# Not install_hint("gpu"): the package is not on PyPI, so the extra installs from the clone.
GPU_INSTALL_HINT = "pip install -e '.[gpu]' (from the clone's root, in its .venv; the package is not on PyPI)"


class DeviceError(RuntimeError):
    """A device is unknown, unusable here, or two devices were mixed in one op."""


class Backend:
    """What an op needs to know about a device: its array module and its few quirks."""

    def __init__(self, name: str, xp, array_type):
        self.name = name
        self.xp = xp
        self.array_type = array_type

    def asarray(self, data, dtype=None):
        """Put ``data`` (a list, scalar or array of any device) on this device."""
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array) -> np.ndarray:
        """A NumPy copy of ``array`` (for printing, saving, comparing)."""
        return np.array(array, copy=True)

    def scatter_add(self, target, indices, values) -> None:
        """``target[indices] += values`` where repeated indices add up (unbuffered): ``xp.add.at``,
        in NumPy and in CuPy (since v12; on CuPy for float16/32/64, int32, uint32, uint64)."""
        self.xp.add.at(target, indices, values)

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""

    def __repr__(self):
        return f"Backend({self.name!r})"


class CupyBackend(Backend):
    """CUDA through CuPy. CuPy refuses implicit host conversion, so copies are explicit.

    CuPy does not check integer-array indices: an out-of-range one wraps silently. Every such
    index in the package is checked first or valid by construction (see ``ops.GetItem``).
    """

    def __init__(self, cupy):
        super().__init__("cuda", cupy, cupy.ndarray)

    def asarray(self, data, dtype=None):
        if isinstance(data, self.array_type):
            return data if dtype is None else data.astype(dtype, copy=False)
        return self.xp.asarray(np.asarray(data, dtype=dtype))

    def to_host(self, array) -> np.ndarray:
        return self.xp.asnumpy(array)

    def synchronize(self) -> None:
        self.xp.cuda.Stream.null.synchronize()


def _make_cpu() -> Backend:
    return Backend("cpu", np, np.ndarray)


def _make_cuda() -> Backend:
    try:
        import cupy
    except ImportError as e:
        raise DeviceError(
            f"device 'cuda' needs CuPy, which is not installed ({e}). Install it with: {GPU_INSTALL_HINT}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise DeviceError(
            f"device 'cuda': CuPy is installed but no usable GPU was found ({e}). "
            "Use device='cpu', or run on a machine with an NVIDIA GPU and driver."
        ) from None
    if count < 1:
        raise DeviceError("device 'cuda': CuPy found no GPU on this machine; use device='cpu'.")
    return CupyBackend(cupy)


# Device name -> factory. Tests register an accelerator-like backend here too.
_FACTORIES = {"cpu": _make_cpu, "cuda": _make_cuda}
_BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, factory) -> None:
    """Add a device (used by the test suite's strict accelerator stand-in)."""
    _FACTORIES[name] = factory
    _BACKENDS.pop(name, None)


def get_backend(device: str | Backend) -> Backend:
    """The :class:`Backend` for a device string; a clear error for unknown or unusable ones."""
    if isinstance(device, Backend):
        return device
    backend = _BACKENDS.get(device)
    if backend is not None:
        return backend
    if not isinstance(device, str) or device not in _FACTORIES:
        known = ", ".join(repr(d) for d in _FACTORIES)
        raise DeviceError(f"unknown device {device!r}; choose one of {known}")
    backend = _BACKENDS[device] = _FACTORIES[device]()
    return backend


def device_available(device: str) -> bool:
    """True when ``device`` can be used on this machine (CuPy installed and a GPU present)."""
    try:
        get_backend(device)
    except DeviceError:
        return False
    return True


def backend_of_array(array) -> Backend | None:
    """The already-created backend whose array type ``array`` is, if any (never imports CuPy)."""
    if isinstance(array, np.ndarray):
        return get_backend("cpu")
    for backend in _BACKENDS.values():
        if isinstance(array, backend.array_type):
            return backend
    if type(array).__module__.split(".")[0] == "cupy":
        return get_backend("cuda")
    return None


# None until first asked for: then TINYGRAD_RNN_DEVICE, else "cpu". Not read at import time, so an
# unusable device in the environment fails where a device is needed (one clear DeviceError), not
# as a traceback from ``import tinygrad_rnn`` — code that names its device keeps working.
_default_device: str | None = None


def set_default_device(device: str) -> None:
    """Device of new tensors when none is given (also settable with ``TINYGRAD_RNN_DEVICE``)."""
    global _default_device
    get_backend(device)  # fail now, with the helpful message, not at the first tensor
    _default_device = device


def get_default_device() -> str:
    if _default_device is None:
        _device_from_environment()  # sets it (or raises)
    assert _default_device is not None
    return _default_device


# ---- random numbers: always drawn on the host, then moved ------------------------------------

_host_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> None:
    """Reseed the host generator that parameter initialisation draws from."""
    global _host_rng
    _host_rng = np.random.default_rng(seed)


def host_rng() -> np.random.Generator:
    """The seeded host generator (shared by every device, so weights match across devices)."""
    return _host_rng


def _device_from_environment() -> None:
    set_default_device(os.environ.get("TINYGRAD_RNN_DEVICE") or "cpu")
