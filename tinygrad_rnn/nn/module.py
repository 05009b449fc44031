"""``Module`` and ``Parameter``: the bookkeeping that turns a few tensors into a model.

A :class:`Parameter` is a :class:`~tinygrad_rnn.tensor.Tensor` that wants a gradient and that a
:class:`Module` finds by itself: any attribute holding a Parameter, a Module, or a list/tuple of
them is part of the model, with a stable dotted name (``cells.0.W``) given by the order in which
the attributes were first set. Nothing else is magic — ``forward`` is plain Tensor code.

``state_dict()`` returns host NumPy copies (device-independent, ready for ``np.savez``);
``load_state_dict`` checks *everything* (names, shapes, dtypes) before it writes *anything*, so a
bad state dict leaves the model as it was.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..backend import backend_of_array, get_backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that is a learnable weight of a :class:`Module` (``requires_grad=True``).

    Like ``Tensor(data)`` it copies ``data``: two Parameters never share an array, so an optimizer
    step on one cannot change the values a graph recorded through the other."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True, device=None, dtype=None):
        super().__init__(data, requires_grad=requires_grad, device=device, dtype=dtype)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor") :]


class StateDictError(ValueError):
    """A state dict does not fit the model; the message lists every missing/unexpected/bad key."""


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _host_array(value) -> np.ndarray:
    """A NumPy array from a NumPy/CuPy array, a Tensor, or a nested list."""
    if isinstance(value, Tensor):
        return value.numpy()
    source = backend_of_array(value) if hasattr(value, "shape") and hasattr(value, "dtype") else None
    return source.to_host(value) if source is not None else np.asarray(value)


def _move_(tensor: Tensor, backend, dtype) -> None:
    """Move a leaf tensor (and its ``.grad``) to ``backend``/``dtype`` *in place*.

    In place, so that an optimizer holding this very Parameter keeps working after ``model.to()``.
    """

    def convert(array):
        host = tensor.backend.to_host(array) if backend is not tensor.backend else array
        if dtype is not None:
            host = host.astype(dtype, copy=False)
        return backend.asarray(host)

    tensor._replace_data(convert(tensor._data))  # bumps the version: recorded graphs are stale
    if tensor.grad is not None:
        tensor.grad = convert(tensor.grad)
    tensor._backend = backend


class Module:
    """Base class of every layer and model. Subclasses set attributes and define ``forward``.

    Example (the two Linear layers, in a list, are found automatically)::

        class Tiny(Module):
            def __init__(self):
                self.layers = [Linear(3, 4), Linear(4, 2)]    # parameters layers.0.W, layers.0.b, ...
            def forward(self, x):
                return self.layers[1](self.layers[0](x).tanh())
    """

    training = True  # class default, so subclasses need not call super().__init__(); read by Dropout

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ---- finding parameters and submodules --------------------------------------------------
    def _members(self):
        """(name, Parameter or Module) for each attribute, lists/tuples expanded as ``name.i``."""
        for name, value in vars(self).items():
            if isinstance(value, (Parameter, Module)):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Parameter, Module)):
                        yield f"{name}.{i}", item

    def _walk(self, prefix: str = ""):
        """(dotted name, Module or Parameter) for this module and everything below it, depth-first
        in attribute order; an object reachable twice (a shared layer or weight) comes once."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, value = stack.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            yield name, value
            if isinstance(value, Module):
                members = [(f"{name}.{n}" if name else n, m) for n, m in value._members()]
                stack.extend(reversed(members))  # popped in attribute order

    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module (name ``""``) and every submodule, each once."""
        return ((name, m) for name, m in self._walk(prefix) if isinstance(m, Module))

    def modules(self):
        return [m for _, m in self.named_modules()]

    def children(self):
        return [m for _, m in self._members() if isinstance(m, Module)]

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) depth-first in attribute order; a shared Parameter is listed once."""
        return ((name, p) for name, p in self._walk(prefix) if isinstance(p, Parameter))

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget accumulated gradients (``backward()`` adds to ``.grad``, as in PyTorch)."""
        for p in self.parameters():
            p.grad = None

    # ---- modes, devices, dtypes -------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (``mode=True``) or evaluation mode for this module and all below it:
        layers that act differently in training (``Dropout``) read ``self.training``."""
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: ``Dropout`` becomes the identity (gradients are still recorded;
        use ``no_grad()`` for that)."""
        return self.train(False)

    @property
    def device(self):
        """The device of the first parameter (``None`` for a module without parameters)."""
        first = next(self.named_parameters(), None)  # read per batch: no walk of the whole model
        return first[1].device if first is not None else None

    def to(self, device=None, dtype=None) -> Module:
        """Move every parameter (and its gradient) to ``device`` and/or cast it to ``dtype``.

        The Parameter objects stay the same (only their arrays change), so an optimizer built
        before ``to()`` still updates them.
        """
        backend = get_backend(device) if device is not None else None
        dtype = np.dtype(dtype) if dtype is not None else None
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"parameters must be floating point, not {dtype}")
        for p in self.parameters():
            _move_(p, backend or p.backend, dtype)
        return self

    def double(self) -> Module:
        return self.to(dtype=np.float64)

    def float(self) -> Module:
        return self.to(dtype=np.float32)

    # ---- saving and loading -----------------------------------------------------------------
    def state_dict(self) -> dict:
        """{dotted name: NumPy copy of the parameter}, in ``named_parameters()`` order."""
        return {name: p.numpy() for name, p in self.named_parameters()}

    def _prepare_load(self, state_dict, strict: bool = True):
        """Check ``state_dict`` against this model; return (assignments, incompatible keys).

        Raises :class:`StateDictError` listing every problem. Nothing is written here: the
        caller assigns only once everything (possibly several models and an optimizer) fits.
        """
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        bad = []
        assignments = []
        for name, p in params.items():
            if name not in state_dict:
                continue
            try:
                value = _host_array(state_dict[name])
            except Exception as e:  # anything that is not an array
                bad.append(f"{name}: not an array ({type(state_dict[name]).__name__}: {e})")
                continue
            if value.shape != p.shape:
                bad.append(f"{name}: shape {value.shape} in the state dict, {p.shape} in the model")
            elif value.dtype.kind not in "fiu":
                bad.append(f"{name}: dtype {value.dtype} is not numeric")
            else:
                assignments.append((p, p.backend.asarray(value.astype(p.dtype, copy=False))))
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        problems += bad
        if problems:
            raise StateDictError(
                f"state dict does not fit {type(self).__name__} (model left unchanged):\n  "
                + "\n  ".join(problems)
            )
        return assignments, IncompatibleKeys(missing, unexpected)

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters (onto each parameter's device and dtype).

        ``strict=True``: the names must match exactly. Shapes must always match. On any problem
        a :class:`StateDictError` lists them all and no parameter is changed.
        """
        assignments, incompatible = self._prepare_load(state_dict, strict)
        for p, array in assignments:
            p._replace_data(array)  # new values, version bumped: a graph recorded before is stale
        return incompatible

    # ---- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        children = [(n, m) for n, m in self._members() if isinstance(m, Module)]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in children]
        return head + "\n" + "\n".join(lines) + "\n)"
