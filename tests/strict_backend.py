"""A test-only accelerator: the ``strict`` device, a stand-in for CuPy that runs on the CPU.

CI has no GPU, yet the suite must prove that the core never treats a device array as a NumPy
array. The ``strict`` device does what CuPy does, only more strictly:

* its arrays are :class:`StrictArray` — *not* ``numpy.ndarray`` subclasses — and refuse implicit
  conversion to NumPy (``numpy.asarray(a)`` raises ``TypeError``, like a ``cupy.ndarray``);
* they refuse to mix with host NumPy arrays in arithmetic, indexing or assignment (Python numbers
  and NumPy scalars are fine, as on CuPy);
* NumPy functions called on them (``np.exp(a)``, ``np.sum(a)``) are refused: device code must go
  through the backend's array module ``xp``, a namespace that wraps NumPy's functions so they
  take and return :class:`StrictArray` s;
* reductions return 0-d arrays, never Python or NumPy scalars (as CuPy does);
* host copies are explicit (``xp.asnumpy``);
* like CuPy — and unlike NumPy — integer-array indices out of range *wrap* silently
  (``a[ids]``, ``a[ids] = v``, ``xp.add.at``), so a missing range check shows up as a wrong
  number here too; scalar integer indices still raise, as on CuPy;
* ``xp`` offers only functions CuPy has (``CUPY_FUNCTIONS``), and of the ufunc methods only
  ``xp.add.at`` (CuPy ≥ 12), for the dtypes CuPy's scatter-add supports (``SCATTER_ADD_DTYPES``).

The backend object itself is the real :class:`tinygrad_rnn.backend.CupyBackend` built over this
fake ``cupy`` module, so the code path that runs on a GPU is the one tested here.
Call :func:`register` (the test suite's ``conftest.py`` does) to make ``device="strict"`` usable.
"""

from __future__ import annotations

import numbers
import types

import numpy as np

from tinygrad_rnn import backend as _backend_module
from tinygrad_rnn.backend import CupyBackend, register_backend

DEVICE = "strict"

# Array methods and attributes a device array offers (the subset of CuPy's the project may use).
_METHODS = frozenset(
    """
    reshape transpose swapaxes sum mean max min argmax argmin any all astype copy item ravel
    flatten squeeze clip cumsum prod std var fill nonzero take repeat dot round tolist
""".split()
)
_PROPERTIES = frozenset("shape dtype ndim size itemsize nbytes".split())


def _refuse_host(what: str):
    raise TypeError(
        f"strict device: {what} got a host numpy.ndarray; device arrays do not mix with host "
        "arrays (CuPy refuses them in arithmetic). Move it with backend.asarray(...) first."
    )


def _operand(x, what="operation"):
    """The NumPy value to compute with: device arrays unwrap, scalars pass, host arrays refuse."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray):
        _refuse_host(what)
    if isinstance(x, (numbers.Number, np.generic)) or x is None:
        return x
    return NotImplemented


def _index(index, what="indexing"):
    """Unwrap an index: device arrays inside it unwrap, host arrays refuse, the rest passes."""
    if isinstance(index, tuple):
        return tuple(_index(i, what) for i in index)
    if isinstance(index, StrictArray):
        return index._a
    if isinstance(index, np.ndarray):
        _refuse_host(what)
    return index


def _wrapped(index, shape):
    """An unwrapped index with every integer array taken modulo its axis size: CuPy's behaviour
    for out-of-range integer-array indices (it does not check them; NumPy raises)."""
    items = index if isinstance(index, tuple) else (index,)
    out, axis = [], 0
    for k, item in enumerate(items):
        if item is Ellipsis:  # axes after ``...`` count from the end
            rest = items[k + 1 :]
            used = sum(
                1 if not isinstance(i, np.ndarray) or i.dtype != bool else i.ndim
                for i in rest
                if i is not None
            )
            axis = len(shape) - used
            out.append(item)
            continue
        if isinstance(item, np.ndarray) and item.dtype.kind in "iu" and axis < len(shape) and shape[axis]:
            item = item % shape[axis]
        out.append(item)
        if item is not None:
            axis += item.ndim if isinstance(item, np.ndarray) and item.dtype == bool else 1
    return tuple(out) if isinstance(index, tuple) else out[0]


def _wrap(result):
    """NumPy results back onto the device: arrays and scalars become StrictArrays (0-d too)."""
    if isinstance(result, np.ndarray):
        return StrictArray(result)
    if isinstance(result, np.generic):
        return StrictArray(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


def _unwrap_args(value, what):
    """Arguments of an ``xp`` function: device arrays unwrap (also inside lists and tuples)."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse_host(what)
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap_args(v, what) for v in value)
    return value


class StrictArray:
    """An array on the ``strict`` device: a NumPy array inside a wrapper that behaves like CuPy."""

    __slots__ = ("_a",)
    __hash__ = None  # arrays are not hashable (like numpy and cupy)

    def __init__(self, array: np.ndarray):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"StrictArray wraps a numpy.ndarray, got {type(array).__name__}")
        self._a = array

    # ---- the conversions CuPy refuses --------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed (strict device, like CuPy). "
            "Use backend.to_host(array) or Tensor.numpy() to copy to the host explicitly."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # NumPy scalars on the left (np.float64(2) * a) land here, as on CuPy: allow those.
        # A NumPy ufunc applied to device arrays only (np.exp(a)) is refused: use backend.xp.
        what = f"numpy.{ufunc.__name__}"
        if any(isinstance(x, np.ndarray) for x in inputs):
            _refuse_host(what)
        if method == "__call__" and not kwargs and any(isinstance(x, np.generic) for x in inputs):
            args = [_operand(x, what) for x in inputs]
            if not any(a is NotImplemented for a in args):
                return _wrap(ufunc(*args))
        raise TypeError(
            f"strict device: numpy.{ufunc.__name__}.{method} called on a device array; "
            f"use the backend's array module (backend.xp.{ufunc.__name__}) instead"
        )

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(
            f"strict device: numpy.{func.__name__} called on a device array; "
            f"use the backend's array module (backend.xp.{func.__name__}) instead"
        )

    def get(self) -> np.ndarray:
        """An explicit host copy (``cupy.ndarray.get``)."""
        return self._a.copy()

    # ---- attributes ----------------------------------------------------------------------------
    def __getattr__(self, name):
        if name in _PROPERTIES:
            return getattr(self._a, name)
        if name in _METHODS:
            method = getattr(self._a, name)

            def call(*args, **kwargs):
                what = f"StrictArray.{name}"
                return _wrap(
                    method(*_unwrap_args(args, what), **{k: _unwrap_args(v, what) for k, v in kwargs.items()})
                )

            return call
        # Includes __array_interface__ / __array_struct__: NumPy must not find a back door.
        raise AttributeError(f"StrictArray has no attribute {name!r}")

    @property
    def T(self):
        return _wrap(self._a.T)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(x) for x in self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    # Reading one value back to Python is allowed (CuPy syncs and allows it too).
    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    # ---- indexing ------------------------------------------------------------------------------
    def __getitem__(self, index):
        return _wrap(self._a[_wrapped(_index(index), self._a.shape)])

    def __setitem__(self, index, value):
        value = _operand(value, "item assignment")
        if value is NotImplemented:
            raise TypeError(f"strict device: cannot assign a {type(value).__name__} into a device array")
        self._a[_wrapped(_index(index), self._a.shape)] = value

    # ---- operators -----------------------------------------------------------------------------
    def _binary(self, other, fn):
        other = _operand(other)
        if other is NotImplemented:
            return NotImplemented  # e.g. a Tensor: let its reflected operator run
        return _wrap(fn(self._a, other))

    def _inplace(self, other, fn):
        other = _operand(other, "in-place operation")
        if other is NotImplemented:
            return NotImplemented
        fn(self._a, other)
        return self

    def __add__(self, o):
        return self._binary(o, lambda a, b: a + b)

    def __radd__(self, o):
        return self._binary(o, lambda a, b: b + a)

    def __sub__(self, o):
        return self._binary(o, lambda a, b: a - b)

    def __rsub__(self, o):
        return self._binary(o, lambda a, b: b - a)

    def __mul__(self, o):
        return self._binary(o, lambda a, b: a * b)

    def __rmul__(self, o):
        return self._binary(o, lambda a, b: b * a)

    def __truediv__(self, o):
        return self._binary(o, lambda a, b: a / b)

    def __rtruediv__(self, o):
        return self._binary(o, lambda a, b: b / a)

    def __floordiv__(self, o):
        return self._binary(o, lambda a, b: a // b)

    def __mod__(self, o):
        return self._binary(o, lambda a, b: a % b)

    def __pow__(self, o):
        return self._binary(o, lambda a, b: a**b)

    def __rpow__(self, o):
        return self._binary(o, lambda a, b: b**a)

    def __matmul__(self, o):
        return self._binary(o, lambda a, b: a @ b)

    def __rmatmul__(self, o):
        return self._binary(o, lambda a, b: b @ a)

    def __and__(self, o):
        return self._binary(o, lambda a, b: a & b)

    def __rand__(self, o):
        return self._binary(o, lambda a, b: b & a)

    def __or__(self, o):
        return self._binary(o, lambda a, b: a | b)

    def __ror__(self, o):
        return self._binary(o, lambda a, b: b | a)

    def __xor__(self, o):
        return self._binary(o, lambda a, b: a ^ b)

    def __lt__(self, o):
        return self._binary(o, lambda a, b: a < b)

    def __le__(self, o):
        return self._binary(o, lambda a, b: a <= b)

    def __gt__(self, o):
        return self._binary(o, lambda a, b: a > b)

    def __ge__(self, o):
        return self._binary(o, lambda a, b: a >= b)

    def __eq__(self, o):
        return self._binary(o, lambda a, b: a == b)

    def __ne__(self, o):
        return self._binary(o, lambda a, b: a != b)

    def __iadd__(self, o):
        return self._inplace(o, np.ndarray.__iadd__)

    def __isub__(self, o):
        return self._inplace(o, np.ndarray.__isub__)

    def __imul__(self, o):
        return self._inplace(o, np.ndarray.__imul__)

    def __itruediv__(self, o):
        return self._inplace(o, np.ndarray.__itruediv__)

    def __neg__(self):
        return _wrap(-self._a)

    def __pos__(self):
        return _wrap(+self._a)

    def __abs__(self):
        return _wrap(abs(self._a))

    def __invert__(self):
        return _wrap(~self._a)


# ---- the fake ``cupy`` module: NumPy's functions, taking and returning device arrays -------------


def _host_to_device(data, dtype=None, copy=True):
    """``xp.asarray`` / ``xp.array``: the one explicit door from the host onto the device."""
    if isinstance(data, StrictArray):
        a = data._a if dtype is None else data._a.astype(dtype, copy=False)
        return StrictArray(a.copy() if copy else a)
    return StrictArray(np.array(data, dtype=dtype, copy=True))  # a transfer never aliases host memory


def _asnumpy(a):
    """``cupy.asnumpy``: an explicit device-to-host copy."""
    return a.get() if isinstance(a, StrictArray) else np.array(a, copy=True)


# The functions, dtypes and constants of ``cupy`` that device code may use: all exist in CuPy 12+.
CUPY_FUNCTIONS = frozenset(
    """
    abs absolute add all any arange argmax argmin argsort array asarray ascontiguousarray asnumpy
    broadcast_to clip concatenate cos cumsum divide dot einsum empty empty_like equal exp
    expand_dims eye flatnonzero floor full full_like greater greater_equal isfinite isinf isnan
    less less_equal log log1p logical_and logical_not logical_or matmul max maximum mean min
    minimum moveaxis multiply negative nonzero not_equal ones ones_like power prod repeat reshape
    sign sin split sqrt square squeeze stack subtract sum swapaxes take tanh tile transpose
    where zeros zeros_like array_split vstack hstack atleast_1d atleast_2d ravel round sort
    count_nonzero linspace log2 log10 exp2 expm1 mod remainder floor_divide true_divide
    fmax fmin isclose array_equal result_type can_cast promote_types cosh sinh
    bool_ int8 int16 int32 int64 uint8 uint32 uint64 float16 float32 float64 dtype ndarray
    newaxis inf nan pi e
""".split()
)

# Dtypes CuPy's scatter-add (``cupy.add.at`` / ``cupyx.scatter_add``) accepts: CUDA's atomicAdd
# types. Not int64 nor bool: a scatter-add of those fails on a GPU.
SCATTER_ADD_DTYPES = frozenset(
    np.dtype(d) for d in ("int32", "uint32", "uint64", "float16", "float32", "float64")
)


def _add_at(target, indices, values):
    """``cupy.add.at``: ``target[indices] += values`` with repeated indices adding up; indices
    out of range wrap (as on CuPy), and only CuPy's scatter-add dtypes are accepted."""
    if not isinstance(target, StrictArray):
        raise TypeError(f"add.at needs a device array target, got {type(target).__name__}")
    if target.dtype not in SCATTER_ADD_DTYPES:
        raise TypeError(
            f"strict device: add.at (scatter-add) does not support dtype {target.dtype} "
            "on CuPy; use float32, float64, int32, uint32 or uint64"
        )
    values = _operand(values, "add.at")
    np.add.at(target._a, _wrapped(_index(indices, "add.at"), target._a.shape), values)


class _Function:
    """A NumPy function (or ufunc) seen from the device: unwraps arguments, wraps results."""

    def __init__(self, fn, name):
        self._fn, self.__name__ = fn, name

    def __call__(self, *args, **kwargs):
        what = f"xp.{self.__name__}"
        return _wrap(
            self._fn(*_unwrap_args(args, what), **{k: _unwrap_args(v, what) for k, v in kwargs.items()})
        )

    def __getattr__(self, name):  # ufunc methods: of these, CuPy has add.at (since v12)
        if (self.__name__, name) == ("add", "at"):
            return _add_at
        raise AttributeError(
            f"strict device: xp.{self.__name__}.{name} is not offered (CuPy lacks it "
            "or the project does not need it)"
        )


class _Namespace(types.SimpleNamespace):
    """A module-like view of NumPy whose functions live on the strict device (CuPy's names only)."""

    def __init__(self, module, **overrides):
        super().__init__(**overrides)
        self._module = module

    def __getattr__(self, name):
        if name not in CUPY_FUNCTIONS:
            raise AttributeError(
                f"strict device: xp.{name} is not offered: CuPy has no such function "
                "(or it is not in strict_backend.CUPY_FUNCTIONS yet)"
            )
        obj = getattr(self._module, name)
        if isinstance(obj, type):
            return obj  # dtypes and classes (xp.float64, xp.dtype) are shared with NumPy
        elif callable(obj):
            wrapped = _Function(obj, name)
        else:
            return obj  # constants: xp.pi, xp.newaxis, xp.inf
        setattr(self, name, wrapped)
        return wrapped


class _Stream:
    @staticmethod
    def synchronize():
        """Nothing is queued on a CPU stand-in."""


strict_cupy = _Namespace(
    np,
    ndarray=StrictArray,
    asarray=lambda data, dtype=None: _host_to_device(data, dtype, copy=False),
    array=lambda data, dtype=None, copy=True: _host_to_device(data, dtype, copy=copy),
    asnumpy=_asnumpy,
    cuda=types.SimpleNamespace(Stream=types.SimpleNamespace(null=_Stream())),
)


def make_backend() -> CupyBackend:
    """The ``strict`` backend: tinygrad_rnn's own CuPy backend class over the fake module."""
    backend = CupyBackend(strict_cupy)
    backend.name = DEVICE
    return backend


def register() -> None:
    """Make ``device="strict"`` available (idempotent: an existing strict backend is kept)."""
    if _backend_module._FACTORIES.get(DEVICE) is not make_backend:
        register_backend(DEVICE, make_backend)
