"""``Tensor``: an array on a device plus the op that made it — reverse-mode autodiff.

Every differentiable computation is a chain of :class:`Op` s (see ``ops.py``). Each op records its
inputs and a creation number; ``loss.backward()`` visits the recorded ops from the newest back to
the oldest — a reverse topological order, taken from a heap in a loop, never by recursion, so a
10,000-step chain is fine — and hands each op the gradient of its outputs.
For an unrolled RNN this walk from the loss back to t = 1 *is* backpropagation through time.

The walk is plumbing and may take a shortcut where the op's formula would waste memory: the
gradients of Unbind's slices (one per time step) are copied into one array the engine owns as
they arrive, instead of being kept until the op's backward stacks them (:class:`_Gathered`).
Inside ``textbook_backward()`` every op's own ``backward`` runs; the tests compare the two.

Gradients accumulate across ``backward()`` calls, as in PyTorch: between steps call the
optimizer's or the model's ``zero_grad()`` (``opt.zero_grad()``, ``model.zero_grad()``), or set
``t.grad = None`` on a tensor.

In-place updates: every change the library makes to a tensor's values — an optimizer step,
``Module.load_state_dict``, ``Module.to``, assigning ``t.data`` — bumps the tensor's version
(``t._version``). An op records the versions of the leaf tensors it was given; ``backward()``
raises :class:`InPlaceModificationError`, naming the op and the tensor, when one has changed
since, instead of computing a gradient from values that are gone.

Tensors that share one array share one version counter, as in PyTorch: ``t.detach()`` and the
views an op returns (``t.T``, ``t[0]``, ``t.reshape(..)``, also under ``no_grad()``) count with
``t``, so an optimizer step on ``W`` is caught in a graph that used ``W.detach()`` or ``W.T``.
``Tensor(t)`` and ``Parameter(t)`` copy the values: a new leaf with a version of its own.
Assigning ``t.data``, ``load_state_dict`` and ``Module.to`` put a new array in ``t``; aliases
made before keep the old one (its values did not change), and their graphs stay valid.
Not detected: writing into an array yourself (``t.data[0] = 1``, or into a raw array given to
an op, as in ``x + arr``), and an optimizer step on ``h.detach()`` of an op's output ``h`` that a
recorded op had already used (ops record the versions of leaves and of views of leaves).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from typing import Any

import numpy as np

from .backend import Backend, DeviceError, backend_of_array, get_backend, get_default_device, host_rng

DEFAULT_FLOAT = np.dtype(np.float32)

_grad_enabled = True
_op_numbers = itertools.count()  # creation number of each recorded op (see _run_backward)
# The op number drawn at the latest in-place change of any tensor (``bump_version``): an op with
# a higher number was recorded after every change so far, and the walk skips its version check.
_last_change = -1

# The step-by-step recorder of ``bptt.trace()`` while one runs, else None: one check per op.
_tracer: Any = None
# Forward-mode autodiff (``forward.jvp``) while it runs, else None: it pushes tangents through
# every op applied (``Op.jvp``). One check per op, like ``_tracer``.
_forward: Any = None


def mark_time_step(t: int | None) -> None:
    """Tell a running ``bptt.trace()`` that the ops recorded next belong to time step ``t``
    (1-based; ``None``: outside the recurrence). Unrollers call this; without a trace it does nothing.
    """
    if _tracer is not None:
        _tracer.on_step(t)


def no_grad():
    """Inside this block ops record nothing, so no graph is kept (evaluation, decoding)."""
    return grad_mode(False)


@contextlib.contextmanager
def grad_mode(enabled: bool):
    """Inside this block ops record (``True``) or not (``False``), whatever they did outside;
    checkpointing's rerun records inside a ``no_grad`` forward with it."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, enabled
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class ShapeError(ValueError):
    """Shapes that do not fit together; the message names all of them."""


class InPlaceModificationError(RuntimeError):
    """A tensor that a recorded op used was changed in place before ``backward()`` reached the op."""


class _Version:
    """How many times an array was changed in place (optimizer steps). Every tensor that shares
    the array — the tensor, its ``detach()``, views of it — holds the same ``_Version``."""

    __slots__ = ("count",)

    def __init__(self, count: int = 0):
        self.count = count


# Held by every tensor that has never been changed nor aliased, so that an op's output costs no
# new object; never incremented (a tensor takes its own counter first, see Tensor._shared_counter).
_UNCHANGED = _Version()


class Op:
    """One primitive: ``forward`` on backend arrays, ``backward`` from output grads to input grads.

    Subclasses set ``name`` and implement ``forward(*arrays, **params)`` and ``backward(grad)``.
    ``backward`` returns one gradient (or ``None``) per tensor input; an op whose ``forward``
    returns a tuple (``multi_output``, even a 1-tuple such as unbinding an axis of size 1)
    receives a list of output gradients, ``None`` for unused outputs.
    ``self.xp`` is the array module of the device the op runs on; ``self.needs_grad(i)`` says
    whether input ``i`` wants a gradient (skip the work for constants).
    A ``forward`` that finds shapes that do not fit raises :class:`ShapeError`; ``apply`` adds
    the input shapes to the message. Ops that broadcast set ``broadcasts = True``: a ValueError
    from their forward is then reported as a ShapeError when the shapes do not broadcast.
    """

    __slots__ = ("inputs", "versions", "xp", "backend", "seq", "__dict__")
    # Set on each op by apply: the array module and backend it ran on; when recorded, its inputs
    # (leaves, or _Edge stand-ins), their versions then, and its creation number.
    xp: Any
    backend: Backend
    inputs: list
    versions: list
    seq: int
    name = "op"
    broadcasts = False
    # Class-level defaults, so the common case (one output, nothing retained) costs no writes.
    n_outputs: int = 1
    multi_output: bool = False
    retained: dict[int, Tensor] | None = None
    gathers = False  # a slicing op whose output gradients the walk may gather itself (_Gathered)

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def jvp(self, *tangents):
        """The tangent rule (forward mode, see ``forward.py``): input tangents → output tangent(s)."""
        raise NotImplementedError(f"{self.name} has no tangent rule (jvp)")

    def needs_grad(self, i: int) -> bool:
        """Whether input ``i`` of this recorded op wants a gradient."""
        return self.inputs[i].requires_grad

    @classmethod
    def apply(cls, *inputs: Tensor, **params):
        """Run the op on tensors: check devices, compute, and record it if a gradient is needed.

        This runs for every op of every time step; each step of it is a named helper below."""
        backend, arrays, requires_grad = _arrays_of(cls, inputs)
        op = cls.__new__(cls)
        op.xp, op.backend = backend.xp, backend
        try:
            out = op.forward(*arrays, **params)
        except ValueError as e:
            _raise_shape_error(cls, arrays, e)  # a ShapeError naming the shapes, else e itself
        if requires_grad:
            _record(op, inputs)
        if _tracer is not None:
            _tracer.on_forward(op, inputs, out, requires_grad)
        result = _outputs(op, out, backend, requires_grad, inputs)
        if _forward is not None:  # forward mode: the outputs' tangents from the inputs'
            _forward.on_apply(op, inputs, result)
        return result

    def check_versions(self) -> None:
        """Raise if a leaf this op was given has been changed in place since it was recorded."""
        for i, (t, version) in enumerate(zip(self.inputs, self.versions)):
            if t._counter.count != version:
                what = f"{t.name!r}" if getattr(t, "name", None) else f"of shape {tuple(t.shape)}"
                raise InPlaceModificationError(
                    f"backward through {self.name}: its input {i} (a tensor {what}) was changed in "
                    f"place (version {version} -> {t._counter.count}, e.g. by an optimizer step or "
                    "load_state_dict) after the forward pass; the gradient would use the new values. "
                    "Run backward() before changing the tensor, or redo the forward pass."
                )


# ---- recording: the steps of Op.apply ------------------------------------------------------------


def _arrays_of(cls, inputs) -> tuple:
    """``(backend, arrays, requires_grad)`` of an op's input tensors, in one pass: all on one
    device (else a DeviceError naming them), and whether any of them wants a gradient (never
    under ``no_grad``)."""
    backend = inputs[0]._backend
    arrays, requires_grad = [], False
    for t in inputs:
        if t._backend is not backend:
            names = ", ".join(f"{x.device} {tuple(x.shape)}" for x in inputs)
            raise DeviceError(
                f"{cls.name}: tensors on different devices ({names}); "
                "move them to one device with .to(device)"
            )
        arrays.append(t._data)
        if t.requires_grad:
            requires_grad = _grad_enabled
    return backend, arrays, requires_grad


def _raise_shape_error(cls, arrays, error: ValueError) -> None:
    """Re-raise a forward's ValueError as a ShapeError naming the input shapes when it is one (a
    ShapeError, or an op that broadcasts given shapes that do not); otherwise re-raise it as it is."""
    shapes = [tuple(a.shape) for a in arrays]
    if isinstance(error, ShapeError) or (cls.broadcasts and not _broadcast_together(shapes)):
        names = " and ".join(str(s) for s in shapes)
        raise ShapeError(f"{cls.name}: shapes {names} do not fit: {error}") from error
    raise error


def _record(op: Op, inputs) -> None:
    """Put ``op`` on the tape: its inputs (leaves as themselves, other tensors as an :class:`_Edge`),
    the versions they have now (see ``check_versions``) and its creation number (see
    :func:`_run_backward`)."""
    op.inputs = [t if t._op is None else _Edge(t) for t in inputs]
    op.versions = [t._counter.count for t in inputs]
    op.seq = next(_op_numbers)


def _outputs(op: Op, out, backend, requires_grad: bool, inputs):
    """The op's output array(s) as tensors made by ``op`` (when recorded); a tuple for an op whose
    forward returns one (``multi_output``)."""
    maker = op if requires_grad else None
    if isinstance(out, tuple):
        op.multi_output, op.n_outputs = True, len(out)
        return tuple([_new(o, backend, requires_grad, maker, i, inputs) for i, o in enumerate(out)])
    return _new(out, backend, requires_grad, maker, 0, inputs)


def _broadcast_together(shapes) -> bool:
    """Whether all ``shapes`` broadcast against each other (NumPy's rule, checked explicitly)."""
    ndim = max(len(s) for s in shapes)
    for k in range(1, ndim + 1):
        sizes = {s[-k] for s in shapes if len(s) >= k} - {1}
        if len(sizes) > 1:
            return False
    return True


class _Edge:
    """How a recorded op remembers an input made by another op: where its gradient goes, not its values.

    Keeping the input *tensors* would keep every intermediate array alive as long as the graph
    (in an RNN step, ``h V`` and ``x_t W + h V`` are needed by no backward: only ``h`` is, and
    the ops that need it saved it themselves). So an op records such an input as this stand-in:
    the producing op, which of its outputs, and the shape (for tools that draw the graph).
    Leaves (parameters, data) are recorded as themselves: backward fills in their ``.grad``.
    """

    __slots__ = ("_op", "_index", "requires_grad", "shape", "_counter")

    def __init__(self, t):
        self._op = t._op
        self._index = t._index
        self.requires_grad = t.requires_grad
        self.shape = t._data.shape
        # The library never changes an op's output in place (optimizers take leaves only); but a
        # view of a leaf (x[:, t] of the input x) counts with that leaf, so keep its counter.
        self._counter = t._counter


def _as_array(x, backend):
    """``x`` as a backend array: NumPy returns 0-d results as scalars (``np.float64``), not arrays."""
    return x if isinstance(x, backend.array_type) else backend.asarray(x)


def _new(array, backend, requires_grad, op, index, inputs=()):
    """Make a tensor without re-checking its inputs (the hot path of every op).

    An output that is a view of one of the op's ``inputs`` (reshape, slice, transpose) shares
    that input's version counter: an optimizer step on the input changes the view's values too.
    """
    if not isinstance(array, backend.array_type):  # NumPy gives 0-d results as scalars
        array = backend.asarray(array)
    t = Tensor.__new__(Tensor)
    t._data = array
    t._backend = backend
    t.grad = None
    t.requires_grad = requires_grad
    t._op = op
    t._index = index
    t.name = None
    t._counter = _UNCHANGED
    if inputs:
        try:
            base = array.base  # NumPy and CuPy views name the array they view
        except AttributeError:  # an array type without views (the tests' strict device)
            base = None
        if base is not None:
            for s in inputs:
                if base is s._data or base is getattr(s._data, "base", None):
                    t._counter = s._shared_counter()
                    break
    return t


def _may_share_memory(a, b) -> bool:
    """Whether two arrays may share memory: NumPy says so exactly; elsewhere compare the arrays
    they view (``.base``, which NumPy and CuPy set to the array that owns the memory)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return bool(np.may_share_memory(a, b))
    if type(a) is not type(b):
        return False
    root_a, root_b = getattr(a, "base", None), getattr(b, "base", None)
    return (a if root_a is None else root_a) is (b if root_b is None else root_b)


def _is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, Tensor)


class Tensor:
    """An n-dimensional array on a device (``cpu``: NumPy, ``cuda``: CuPy) with autodiff.

    ``Tensor(data, requires_grad=False, device=None, dtype=None)`` takes lists, scalars, NumPy or
    CuPy arrays. Python floats become float32 (the default); arrays keep their dtype unless
    ``dtype`` is given; integers stay integers (token ids). Without ``device``, host data (lists,
    scalars, NumPy arrays) goes to the default device and a CuPy array stays on its GPU.
    The values are always copied (as ``torch.tensor`` does): the new tensor is a leaf of its own,
    which no in-place change of ``data`` (an array or another tensor) can reach.
    """

    __slots__ = (
        "_data",
        "_backend",
        "grad",
        "requires_grad",
        "_op",
        "_index",
        "name",
        "_counter",
        "__weakref__",
    )
    __array_priority__ = 1000  # numpy_array + tensor -> Tensor.__radd__, not elementwise objects

    def __init__(self, data, requires_grad=False, device=None, dtype=None, name=None):
        if isinstance(data, Tensor):
            device = data._backend if device is None else device  # a tensor's copy stays on its device
            data = data._data
        source = backend_of_array(data) if _is_array(data) else None
        if device is None:
            # a device array (CuPy) stays on its device; host data (lists, NumPy) goes to the default
            on_device = source is not None and not isinstance(data, np.ndarray)
            backend = source if on_device else get_backend(get_default_device())
        else:
            backend = get_backend(device)
        if source is not None and source is not backend:
            data = source.to_host(data)  # explicit hop through the host between devices
        if dtype is not None:
            dtype = np.dtype(dtype)
        elif not _is_array(data):
            probe = np.asarray(data)
            if probe.dtype.kind == "f" or probe.dtype == object:
                dtype = DEFAULT_FLOAT
        array = backend.asarray(data, dtype=dtype)
        if _is_array(data) and _may_share_memory(array, data):
            array = array.copy()  # never an alias: steps on the source could not be seen here
        self._data = array
        self._backend = backend
        self.grad = None
        self.requires_grad = False
        self._op = None
        self._index = 0
        self.name = name
        self._counter = _UNCHANGED
        if requires_grad:
            self.requires_grad_(True)

    # ---- the array and where it lives -------------------------------------------------------
    @property
    def data(self):
        """The backend array (NumPy or CuPy). Assigning replaces the values (e.g. loaded weights)
        and bumps the version (see the module docstring); writing into the array itself
        (``t.data[0] = 1``) is invisible to the library and is not tracked."""
        return self._data

    @data.setter
    def data(self, value):
        if isinstance(value, Tensor):
            value = value._data
        source = backend_of_array(value) if _is_array(value) else None
        if source is not None and source is not self._backend:
            value = source.to_host(value)
        self._replace_data(self._backend.asarray(value))

    def bump_version(self) -> None:
        """Record that this tensor's values changed in place (optimizers and loaders call this):
        every graph recorded through it or an alias of its array (``detach()``, views) is stale."""
        global _last_change
        self._shared_counter().count += 1
        _last_change = next(_op_numbers)

    @property
    def _version(self) -> int:
        """How many times the values were changed in place (shared with aliases of the array)."""
        return self._counter.count

    def _shared_counter(self) -> _Version:
        """This tensor's version counter, made its own first if it still holds ``_UNCHANGED``."""
        if self._counter is _UNCHANGED:
            self._counter = _Version()
        return self._counter

    def _replace_data(self, array) -> None:
        """Put a new array in place of the old one (assigning ``data``, loading, ``Module.to``)
        and bump the version. Aliases of the old array keep it — their values did not change —
        so unless ``array`` shares memory with it, this tensor counts on with a counter of its own.
        """
        old = self._data
        if not _may_share_memory(array, old):
            self._counter = _Version(self._counter.count)
        self._data = array
        self.bump_version()

    @property
    def device(self) -> str:
        return self._backend.name

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def xp(self):
        """The array module of this tensor's device (``numpy`` or ``cupy``)."""
        return self._backend.xp

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def shape(self) -> tuple:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return int(self._data.size)

    def __len__(self):
        return self.shape[0]

    def to(self, device) -> Tensor:
        """This tensor on ``device`` (itself if already there). The copy is a new leaf."""
        backend = get_backend(device)
        if backend is self._backend:
            return self
        t = _new(backend.asarray(self._backend.to_host(self._data)), backend, False, None, 0)
        return t.requires_grad_(True) if self.requires_grad else t

    def numpy(self) -> np.ndarray:
        """A NumPy copy on the host (explicit: this is a device→host transfer on cuda)."""
        return self._backend.to_host(self._data)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def astype(self, dtype) -> Tensor:
        """This tensor as ``dtype``. A cast to a non-float dtype is outside the graph: rounding to
        integers has no useful gradient, and integer tensors never require one."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            with no_grad():
                return ops.Cast.apply(self, dtype=dtype)
        return ops.Cast.apply(self, dtype=dtype)

    def float(self) -> Tensor:
        return self.astype(DEFAULT_FLOAT)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op.name}" if self._op is not None else ""
        return f"Tensor({self.numpy()!r}, device={self.device!r}{grad}{op})"

    def __bool__(self):
        if self.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    # ---- autodiff ---------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self._data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, not {self._data.dtype}")
        self.requires_grad = flag
        return self

    def retain_grad(self) -> Tensor:
        """Keep ``.grad`` of this intermediate tensor after ``backward()`` (e.g. ∂L/∂h_t)."""
        if self._op is not None:
            if self._op.retained is None:
                self._op.retained = {}
            self._op.retained[self._index] = self
        return self

    @property
    def is_leaf(self) -> bool:
        return self._op is None

    def detach(self) -> Tensor:
        """The same values, cut from the graph: no gradient flows back through the result.

        The result shares this tensor's array and version counter (as in PyTorch): an optimizer
        step on either is seen by graphs recorded through the other."""
        t = _new(self._data, self._backend, False, None, 0)
        t._counter = self._shared_counter()
        return t

    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) · grad into every leaf's ``.grad`` that requires it.

        ``grad`` defaults to 1 for a scalar; other tensors need an explicit upstream gradient.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph to walk)")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar, got shape {self.shape}; "
                    "pass t.backward(grad) with grad of the same shape"
                )
            grad = self.xp.ones_like(self._data)
        else:
            if isinstance(grad, Tensor) and grad._backend is not self._backend:
                raise DeviceError(
                    f"backward: gradient on {grad.device} for a tensor on {self.device}; "
                    "move it with .to(device)"
                )
            # host data (lists, NumPy) moves to the device, like Tensor(data); another device's array does not
            source = (
                backend_of_array(grad)
                if _is_array(grad) and not isinstance(grad, (Tensor, np.ndarray))
                else None
            )
            if source is not None and source is not self._backend:
                raise DeviceError(
                    f"backward: gradient array on {source.name} for a tensor on "
                    f"{self.device}; move it to {self.device} first"
                )
            grad = grad._data if isinstance(grad, Tensor) else self._backend.asarray(grad, dtype=self.dtype)
            if tuple(grad.shape) != self.shape:
                raise ShapeError(
                    f"backward: gradient of shape {tuple(grad.shape)} for tensor of shape {self.shape}"
                )
        if self._op is None:
            _accumulate_leaf(self, grad)
            return
        _run_backward(self._op, self._index, grad)

    # ---- operators (each a thin call into ops.py) --------------------------------------------
    def _lift(self, other) -> Tensor:
        """Scalars and raw arrays become constant tensors on this tensor's device and dtype."""
        if isinstance(other, Tensor):
            return other
        if _is_array(other) and not isinstance(other, np.generic):  # NumPy scalars: like Python ones
            source = backend_of_array(other)
            if source is not None and source is not self._backend:
                raise DeviceError(
                    f"cannot combine a {self.device} tensor with an array on {source.name}; "
                    "move one of them with .to(device)"
                )
            return _new(self._backend.asarray(other), self._backend, False, None, 0)
        return _new(
            self._backend.asarray(other, dtype=self.dtype if self.dtype.kind == "f" else None),
            self._backend,
            False,
            None,
            0,
        )

    def __add__(self, other):
        return ops.Add.apply(self, self._lift(other))

    def __radd__(self, other):
        return ops.Add.apply(self._lift(other), self)

    def __sub__(self, other):
        return ops.Sub.apply(self, self._lift(other))

    def __rsub__(self, other):
        return ops.Sub.apply(self._lift(other), self)

    def __mul__(self, other):
        return ops.Mul.apply(self, self._lift(other))

    def __rmul__(self, other):
        return ops.Mul.apply(self._lift(other), self)

    def __truediv__(self, other):
        return ops.Div.apply(self, self._lift(other))

    def __rtruediv__(self, other):
        return ops.Div.apply(self._lift(other), self)

    def __matmul__(self, other):
        return ops.MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return ops.MatMul.apply(self._lift(other), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or _is_array(exponent):
            raise TypeError("only powers by a Python number are supported (x ** 2, x ** 0.5)")
        return ops.Pow.apply(self, exponent=exponent)

    # comparisons: plain boolean tensors, never part of the graph
    def _compare(self, other, fn):
        other = self._lift(other)
        if other._backend is not self._backend:
            ops.Op.apply(self, other)  # raises the device error
        return _new(fn(self._data, other._data), self._backend, False, None, 0)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def eq(self, other):
        return self._compare(other, lambda a, b: a == b)

    def ne(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = object.__hash__  # tensors are graph nodes: hash by identity, compare with .eq()

    def any(self) -> bool:
        return bool(self.xp.any(self._data))

    def all(self) -> bool:
        return bool(self.xp.all(self._data))

    # ---- elementwise and reductions ----------------------------------------------------------
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def relu(self):
        return ops.ReLU.apply(self)

    def sqrt(self):
        return self**0.5

    def matmul(self, other):
        return self @ other

    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def log_softmax(self, axis=-1):
        return ops.LogSoftmax.apply(self, axis=axis)

    def argmax(self, axis=None) -> Tensor:
        return _new(self.xp.argmax(self._data, axis=axis), self._backend, False, None, 0)

    # ---- shape ------------------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Permute.apply(self, axes=axes)

    def transpose(self, axis0=None, axis1=None):
        """``t.transpose()`` reverses all axes; ``t.transpose(a, b)`` swaps two (like PyTorch)."""
        axes = list(range(self.ndim))
        if axis0 is None and axis1 is None:
            axes.reverse()
        elif axis0 is None or axis1 is None:
            raise TypeError(
                f"transpose takes no axes (reverse all) or two axes to swap, got {axis0}, {axis1}"
            )
        else:
            i, j = ops.normalize_axis(axis0, self.ndim), ops.normalize_axis(axis1, self.ndim)
            axes[i], axes[j] = axes[j], axes[i]
        return ops.Permute.apply(self, axes=tuple(axes))

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index_arrays(index, self._backend))

    def split(self, sections, axis=0):
        """Pieces along ``axis``: ``sections`` is a piece count or a list of piece sizes."""
        return ops.Split.apply(self, sections=sections, axis=axis)

    def unbind(self, axis=0):
        """The slices ``t[.., i, ..]`` along ``axis`` — one op, one backward for all of them."""
        return ops.Unbind.apply(self, axis=axis)


def _index_arrays(index, backend):
    """Tensors inside an index become backend arrays (integer-array indexing)."""
    if isinstance(index, tuple):
        return tuple(_index_arrays(i, backend) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, (list, np.ndarray)):
        return backend.asarray(index)  # host index arrays move to the device explicitly
    return index


# ---- the backward pass ---------------------------------------------------------------------------


def _accumulate_leaf(t: Tensor, grad) -> None:
    """``t.grad += grad`` for a leaf, in the leaf's dtype; the first gradient is copied, since an
    op's backward may hand on an array that is shared (``g`` itself, or a view of it)."""
    if not isinstance(grad, t._backend.array_type):
        grad = t._backend.asarray(grad)  # a 0-d NumPy scalar becomes an array
    if grad.dtype != t._data.dtype:  # e.g. a float64 constant promoted a float32 graph
        grad = grad.astype(t._data.dtype)
    if t.grad is None:
        t.grad = grad.copy()
    else:
        t.grad += grad


def _run_backward(root: Op, index: int, grad) -> None:
    """Walk the ops from ``root`` back to the leaves, summing gradients where paths meet.

    Ops are numbered as they are made (``op.seq``) and an op's inputs always exist before it,
    so taking ops from the highest number down visits every consumer of a tensor before the op
    that made it: a reverse topological order with no separate graph walk. :class:`_Pending`
    hands out the highest-numbered op that has received a gradient, with the gradients of its
    outputs (summed where several paths meet: the multivariate chain rule); ops no gradient
    reaches are never visited.
    """
    pending = _Pending()
    add, pop, heap = pending.add, pending.pop, pending.heap  # bound once: this loop runs per op
    add(root, index, grad)
    while heap:
        op, out_grads = pop()
        # Only an op recorded before the latest in-place change can see a changed input.
        if op.seq < _last_change and [t._counter.count for t in op.inputs] != op.versions:
            op.check_versions()  # raises, naming the changed input
        for t, g in zip(op.inputs, _input_grads(op, out_grads)):
            if g is not None and t.requires_grad:
                if t._op is None:
                    _accumulate_leaf(t, g)
                else:
                    add(t._op, t._index, g)


def _input_grads(op: Op, out_grads) -> tuple:
    """The gradients of ``op``'s inputs from those of its outputs: ``op.backward`` (its formula),
    or the array the engine gathered them in (:class:`_Gathered`); retained gradients kept first."""
    if op.retained:
        _keep_retained(op, out_grads)
    if type(out_grads) is _Gathered:
        return (out_grads.result(),)
    in_grads = op.backward(out_grads if op.multi_output else out_grads[0])
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    if _tracer is not None:
        _tracer.on_backward(op, out_grads, in_grads)
    return in_grads


def _keep_retained(op: Op, out_grads) -> None:
    """Store the gradient of each output of ``op`` that asked for it (``retain_grad``) in its ``.grad``."""
    for i, t in (op.retained or {}).items():
        if out_grads[i] is not None:
            g = _as_array(out_grads[i], t._backend)
            t.grad = g.copy() if t.grad is None else _as_array(t.grad + g, t._backend)


class _Pending:
    """The ops that have received a gradient and wait for their turn: a heap by creation number
    (highest first) and, per op, the gradients of its outputs so far (``None`` until one arrives;
    where paths meet, the sum). A slicing op (``gathers``, e.g. Unbind) may instead get a
    :class:`_Gathered`: its outputs' gradients written into one array of its input's shape."""

    __slots__ = ("heap", "grads")

    def __init__(self):
        self.heap, self.grads = [], {}

    def add(self, op: Op, i: int, g) -> None:
        """Output ``i`` of ``op`` receives the gradient ``g`` (added to what it has already)."""
        slots = self.grads.get(op)
        if slots is None:
            slots = self.grads[op] = _Gathered(op) if op.gathers and _gathering(op) else [None] * op.n_outputs
            heapq.heappush(self.heap, (-op.seq, op))
        if type(slots) is list:
            slots[i] = g if slots[i] is None else slots[i] + g
        else:
            slots.add(i, g)

    def pop(self) -> tuple:
        """The highest-numbered op with a gradient, and its outputs' gradients."""
        op = heapq.heappop(self.heap)[1]
        return op, self.grads.pop(op)


# ---- engine-owned gradient buffers (docs/performance.md) -----------------------------------------

_textbook = False  # True inside textbook_backward(): every op's own backward, no shortcut


@contextlib.contextmanager
def textbook_backward():
    """Inside this block the backward walk takes no shortcut: every op's gradient comes from its
    own ``backward`` (the formula in ops.py). The shortcuts (see :class:`_Gathered`) give the
    same gradients; the tests compare the two."""
    global _textbook
    previous, _textbook = _textbook, True
    try:
        yield
    finally:
        _textbook = previous


def _gathering(op: Op) -> bool:
    """Whether the walk gathers ``op``'s output gradients itself: not in ``textbook_backward()``,
    nor while a tracer looks at every backward, nor when an output's gradient is retained."""
    return not _textbook and _tracer is None and not op.retained


class _Gathered:
    """The input gradient of a slicing op (``op.gathers``: output i is the slice ``op.at(i)`` of
    its one input), assembled in place as the outputs' gradients arrive.

    The op's ``backward`` would keep every output's gradient until the last one arrives and then
    copy them all into a new array (Unbind: T arrays of (B, H), then one (B, T, H) stack). Here
    each gradient is copied into one array the engine owns as soon as it arrives and can then be
    freed: the same copies, one input-sized array fewer at the peak. Slices no gradient reached
    are zero, as in the op's backward.
    """

    __slots__ = ("op", "buffer", "filled")

    def __init__(self, op: Any):  # an op with ``gathers = True``: it has ``shape`` and ``at(i)``
        self.op = op
        self.buffer: Any = None  # the input-sized gradient, made when the first slice arrives
        self.filled = [False] * op.n_outputs

    def add(self, i: int, g) -> None:
        if self.buffer is None:
            self.buffer = self.op.xp.empty(self.op.shape, dtype=g.dtype)
        if self.filled[i]:
            self.buffer[self.op.at(i)] += g
        else:
            self.buffer[self.op.at(i)] = g
            self.filled[i] = True

    def result(self):
        for i, done in enumerate(self.filled):
            if not done:
                self.buffer[self.op.at(i)] = 0
        return self.buffer


# ---- functions that make tensors -----------------------------------------------------------------


def _factory(make, shape, dtype, device, requires_grad):
    backend = get_backend(device or get_default_device())
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    data = make(backend, shape, np.dtype(dtype) if dtype is not None else DEFAULT_FLOAT)
    t = _new(data, backend, False, None, 0)  # a new array: no copy needed, unlike Tensor(data)
    return t.requires_grad_(True) if requires_grad else t


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _factory(lambda b, s, d: b.xp.zeros(s, dtype=d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _factory(lambda b, s, d: b.xp.ones(s, dtype=d), shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False, rng=None) -> Tensor:
    """Standard normal values drawn on the host (seeded), then moved: identical on every device."""
    rng = rng or host_rng()
    return _factory(
        lambda b, s, d: b.asarray(rng.standard_normal(s).astype(d)), shape, dtype, device, requires_grad
    )


def uniform(*shape, low=0.0, high=1.0, dtype=None, device=None, requires_grad=False, rng=None) -> Tensor:
    """U(low, high) values drawn on the host (seeded), then moved: identical on every device."""
    rng = rng or host_rng()
    return _factory(
        lambda b, s, d: b.asarray(rng.uniform(low, high, s).astype(d)), shape, dtype, device, requires_grad
    )


from . import ops  # noqa: E402  (ops build on Tensor; Tensor's methods call ops)
