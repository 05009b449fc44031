"""The one registry of ops: name, tensor function, NumPy reference, input strategy.

Every entry drives all of its tests (``test_ops.py``: forward vs NumPy, gradient checks in both
modes, gradients as device arrays; ``test_devices.py``: CPU parity on ``strict`` and ``cuda``).
``test_jvp.py``: tangents (forward mode) against finite differences and against the backward.
To test a new op, add one :class:`OpSpec` to ``OPS`` — nothing else; ``test_registry_complete.py``
fails for an ``Op`` subclass of the package that no spec names in its ``ops`` or that has no
tangent rule (``jvp``), and for a spec that does not run the ops it names. ``ERRORS`` lists inputs
an op must refuse on every device.

An entry's ``cases`` strategy draws a :class:`Case`: host arrays plus static parameters (axes,
exponents, indices). Tests move the arrays onto a device as tensors and call
``spec.fn(*tensors, **case.params)``; the reference gets the NumPy arrays:
``spec.ref(*case.arrays, **case.params)``. Float arrays are float64 and differentiable unless
listed in ``Case.constant``; integer and boolean arrays (ids, masks) are constants.
"""

from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_rnn as tg
from tinygrad_rnn import tensor as _tensor_module
from tinygrad_rnn.ops import addmm
from tinygrad_rnn.testing import strategies as S


@dataclass(frozen=True)
class Case:
    """One drawn input: host arrays (float64 = differentiable unless in ``constant``) and params."""

    arrays: tuple
    params: dict = field(default_factory=dict)
    constant: frozenset = frozenset()

    def differentiable(self, i: int) -> bool:
        return self.arrays[i].dtype.kind == "f" and i not in self.constant

    def tensors(self, device: str, requires_grad: bool = True) -> list:
        """The arrays as tensors on ``device``; differentiable ones require grad."""
        return [
            tg.Tensor(a, device=device, requires_grad=requires_grad and self.differentiable(i))
            for i, a in enumerate(self.arrays)
        ]


@dataclass(frozen=True)
class OpSpec:
    """An op under test.

    ``fn(*tensors, **params)`` returns a tensor or a tuple of tensors; ``ref(*arrays, **params)``
    the same values computed with NumPy. ``differentiable=False`` marks ops whose output must not
    be part of the graph (detach, comparisons, argmax). ``grad_kwargs`` loosen gradcheck where an
    op's output is inherently coarse (a cast to float32); ``tangent_rtol`` is the tolerance of the
    tangent tests (``test_jvp.py``) for the same reason.
    """

    name: str
    fn: Callable
    ref: Callable
    cases: st.SearchStrategy
    ops: tuple = ()  # the Op classes this spec exercises (names, as in ops.py);
    # every drawn case runs at least one of them
    differentiable: bool = True
    grad_kwargs: dict = field(default_factory=dict)
    grad_modes: tuple = ("direction", "full")
    tangent_rtol: float = 1e-10

    def __repr__(self):
        return f"OpSpec({self.name})"


@dataclass(frozen=True)
class ErrorSpec:
    """An input an op must refuse, on every device: ``fn(device)`` raises ``error`` matching ``match``."""

    name: str
    fn: Callable
    error: type
    match: str
    ops: tuple = ()

    def __repr__(self):
        return f"ErrorSpec({self.name})"


def as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


# ---- case strategies ---------------------------------------------------------------------------------


def _unary(values=S.floats, min_dims=0, **kwargs):
    """One float array of a drawn shape, values from ``values(shape, **kwargs)``."""
    return S.shapes(min_dims=min_dims).flatmap(lambda s: values(s, **kwargs)).map(lambda x: Case((x,)))


@st.composite
def _binary(draw, b_values=S.floats):
    """Two float arrays whose shapes broadcast; the second from ``b_values`` (e.g. nonzero)."""
    sa, sb = draw(S.broadcastable_shapes(2))
    return Case((draw(S.floats(sa)), draw(b_values(sb))))


_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@st.composite
def _mixed_operands(draw):
    """A tensor with a Python scalar or a raw device array, on either side of + - * /."""
    shape = draw(S.shapes())
    a = draw(S.nonzero_floats(shape))  # nonzero: it may be the denominator
    b = draw(S.nonzero_floats(draw(st.sampled_from([shape, shape[1:], ()]))))
    scalar = draw(st.sampled_from([-1.5, -0.5, 0.5, 2.0, 3]))
    return Case(
        (a, b),
        dict(
            op=draw(st.sampled_from(sorted(_OPERATORS))),
            scalar=scalar,
            form=draw(st.sampled_from(["t op s", "s op t", "t op arr", "arr op t"])),
        ),
        constant=frozenset({1}),
    )


def _mixed_fn(a, b, op, scalar, form):
    f = _OPERATORS[op]
    return {
        "t op s": lambda: f(a, scalar),
        "s op t": lambda: f(scalar, a),
        "t op arr": lambda: f(a, b.data),
        "arr op t": lambda: f(b.data, a),
    }[form]()


def _mixed_ref(a, b, op, scalar, form):
    f = _OPERATORS[op]
    return {
        "t op s": lambda: f(a, scalar),
        "s op t": lambda: f(scalar, a),
        "t op arr": lambda: f(a, b),
        "arr op t": lambda: f(b, a),
    }[form]()


@st.composite
def _pow(draw):
    """``x ** p``: any base for p in {0, 1, 2, 3}; nonzero base for p < 0; positive for fractions."""
    p = draw(st.sampled_from([0, 1, 2, 3, -1, -2, 0.5, 1.5, -0.5]))
    shape = draw(S.shapes())
    if p == int(p) and p >= 0:
        x = draw(S.floats(shape, -2.0, 2.0))
    elif p == int(p):
        x = draw(S.nonzero_floats(shape))
    else:
        x = draw(S.positive_floats(shape))
    return Case((x,), dict(p=p))


@st.composite
def _matmul(draw, batch: str):
    """``2d``: (n,k)@(k,m); ``3d@2d``: (B,n,k)@(k,m); ``batched``: batch dims that broadcast."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    if batch == "2d":
        sa, sb = (n, k), (k, m)
    elif batch == "3d@2d":
        sa, sb = (draw(st.integers(1, 3)), n, k), (k, m)
    else:
        ba, bb = draw(S.broadcastable_shapes(2, min_dims=1, max_dims=2, max_side=3))
        sa, sb = ba + (n, k), bb + (k, m)
    return Case((draw(S.floats(sa, -2.0, 2.0)), draw(S.floats(sb, -2.0, 2.0))))


@st.composite
def _addmm(draw):
    """``c + a @ b``: (n,k) @ (k,m) plus c of (n,m) or a shape that broadcasts to it (a bias row)."""
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    sc = draw(st.sampled_from([(n, m), (m,), (1, m), (n, 1), ()]))
    return Case((draw(S.floats(sc)), draw(S.floats((n, k), -2.0, 2.0)), draw(S.floats((k, m), -2.0, 2.0))))


@st.composite
def _reduction(draw, values=S.floats):
    shape = draw(S.shapes())
    return Case((draw(values(shape)),), dict(axis=draw(S.axes(len(shape))), keepdims=draw(st.booleans())))


@st.composite
def _reshape(draw):
    shape = draw(S.shapes())
    n = int(np.prod(shape))
    last = shape[-1] if shape else 1
    target = draw(st.sampled_from([(n,), (-1,), (1, n), (n, 1), tuple(reversed(shape)), (-1, last)]))
    return Case((draw(S.floats(shape)),), dict(shape=target))


@st.composite
def _permute(draw):
    shape = draw(S.shapes(min_dims=1))
    return Case((draw(S.floats(shape)),), dict(axes=tuple(draw(st.permutations(range(len(shape)))))))


@st.composite
def _transpose(draw):
    shape = draw(S.shapes(min_dims=1))
    nd = len(shape)
    form = draw(st.sampled_from(["swap", "reverse", ".T"]))
    pair = (draw(st.integers(-nd, nd - 1)), draw(st.integers(-nd, nd - 1)))
    return Case((draw(S.floats(shape)),), dict(form=form, pair=pair))


def _transpose_fn(x, form, pair):
    return {"swap": lambda: x.transpose(*pair), "reverse": lambda: x.transpose(), ".T": lambda: x.T}[form]()


def _transpose_ref(x, form, pair):
    return {"swap": lambda: np.swapaxes(x, *pair), "reverse": lambda: x.transpose(), ".T": lambda: x.T}[
        form
    ]()


@st.composite
def _basic_index(draw):
    """Integers and slices (negative, stepped, maybe empty) on leading axes, or ``...`` then one."""
    shape = draw(S.shapes(min_dims=1))

    def item(n):
        if draw(st.booleans()):
            return draw(st.integers(-n, n - 1))
        bound = st.none() | st.integers(-n - 1, n + 1)
        return slice(draw(bound), draw(bound), draw(st.sampled_from([None, 1, 2, -1])))

    if draw(st.booleans()):
        index = (Ellipsis, item(shape[-1]))
    else:
        k = draw(st.integers(1, len(shape)))
        index = tuple(item(n) for n in shape[:k])
    return Case((draw(S.floats(shape)),), dict(index=index))


@st.composite
def _array_index(draw):
    """Integer-array indexing with repeated (and negative) indices: ``x[ids]`` or ``x[:, ids]``."""
    shape = draw(S.shapes(min_dims=1))
    where = draw(st.sampled_from(["first", "second"] if len(shape) > 1 else ["first"]))
    n = shape[0] if where == "first" else shape[1]
    ids = draw(S.id_arrays(2 * n))  # ids in [0, 2n) ...
    ids = ids - n  # ... shifted to [-n, n): negative ids count from the end
    return Case((draw(S.floats(shape)), ids), dict(where=where))


def _array_index_fn(x, ids, where):
    return x[ids] if where == "first" else x[:, ids]


def _array_index_ref(x, ids, where):
    return x[ids] if where == "first" else x[:, ids]


@st.composite
def _stack(draw):
    shape = draw(S.shapes())
    count = draw(st.integers(1, 3))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(tuple(draw(S.floats(shape)) for _ in range(count)), dict(axis=axis))


@st.composite
def _concatenate(draw):
    shape = draw(S.shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    arrays = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = draw(st.integers(1, 3))
        arrays.append(draw(S.floats(tuple(s))))
    return Case(tuple(arrays), dict(axis=axis))


@st.composite
def _split(draw):
    """``sections``: a piece count dividing the axis, or a list of sizes; ``keep``: pieces returned."""
    shape = draw(S.shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if draw(st.booleans()):
        sections = draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
        count = sections
    else:
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
        sections = [b - a for a, b in zip([0] + cuts, cuts + [n])]  # sizes, zeros allowed
        count = len(sections)
    keep = tuple(draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=count, unique=True)))
    return Case((draw(S.floats(shape)),), dict(sections=sections, axis=axis, keep=keep))


def _split_ref(x, sections, axis, keep):
    n = x.shape[axis]
    sizes = [n // sections] * sections if isinstance(sections, int) else sections
    pieces = np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    return tuple(pieces[i] for i in keep)


@st.composite
def _unbind(draw):
    shape = draw(S.shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    keep = tuple(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)))
    return Case((draw(S.floats(shape)),), dict(axis=axis, keep=keep))


@st.composite
def _gather(draw):
    rows, width = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    return Case((draw(S.floats((rows, width))), draw(S.id_arrays(rows))))


@st.composite
def _where(draw):
    sm, sa, sb = draw(S.broadcastable_shapes(3))
    mask = draw(hnp.arrays(np.bool_, sm))
    return Case((mask, draw(S.floats(sa)), draw(S.floats(sb))))


@st.composite
def _where_scalar(draw):
    sm, sa = draw(S.broadcastable_shapes(2))
    mask = draw(hnp.arrays(np.bool_, sm))
    return Case(
        (mask, draw(S.floats(sa))),
        dict(scalar=draw(st.sampled_from([0.0, -1.5, 2])), tensor_first=draw(st.booleans())),
    )


@st.composite
def _log_softmax(draw):
    shape = draw(S.shapes(min_dims=1))
    scale = draw(st.sampled_from([1.0, 10.0, 100.0]))
    return Case((draw(S.floats(shape)) * scale,), dict(axis=draw(st.integers(-len(shape), len(shape) - 1))))


def _log_softmax_ref(x, axis):
    # log of the softmax (a different formula from the op's), in float64: safe for |x| ≤ 300
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
    return np.log(e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


@st.composite
def _cast(draw):
    shape = draw(S.shapes())
    return Case((draw(S.floats(shape)),), dict(dtype=draw(st.sampled_from(["float32", "float64"]))))


_COMPARISONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}


@st.composite
def _compare(draw):
    sa, sb = draw(S.broadcastable_shapes(2))
    a = draw(hnp.arrays(np.float64, sa, elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0])))  # ties
    b = draw(hnp.arrays(np.float64, sb, elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0])))
    return Case((a, b), dict(op=draw(st.sampled_from(sorted(_COMPARISONS))), scalar_rhs=draw(st.booleans())))


def _compare_fn(a, b, op, scalar_rhs):
    rhs = 0.5 if scalar_rhs else b
    return getattr(a, op)(rhs) if op in ("eq", "ne") else _COMPARISONS[op](a, rhs)


def _compare_ref(a, b, op, scalar_rhs):
    return _COMPARISONS[op](a, 0.5 if scalar_rhs else b)


@st.composite
def _argmax(draw):
    shape = draw(S.shapes(min_dims=1))
    axis = draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    return Case((draw(S.distinct_floats(shape)),), dict(axis=axis))


@st.composite
def _max_ties(draw):
    """Exactly two equal maxima in every reduced slice: each gets half of the gradient, which is
    what central differences of single elements give (so ``full`` gradcheck applies; a random
    direction does not: max is not differentiable at a tie)."""
    shape = draw(S.shapes(min_dims=1).filter(lambda s: s[-1] >= 2))
    x = draw(S.distinct_floats(shape))
    axis = draw(st.sampled_from([None, -1]))
    if axis is None:
        flat = x.reshape(-1)
        flat[np.argmin(flat)] = flat.max()
    else:
        rows = x.reshape(-1, shape[-1])
        rows[np.arange(len(rows)), rows.argmin(axis=1)] = rows.max(axis=1)
    return Case((x,), dict(axis=axis, keepdims=draw(st.booleans())))


@st.composite
def _rows_cols(draw):
    """``x[rows, cols]``: one element per row (the pick of cross_entropy and last_state), with
    rows that may repeat and negative columns."""
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    k = draw(st.integers(1, 6))
    rows = draw(hnp.arrays(np.int64, k, elements=st.integers(0, n - 1)))
    cols = draw(hnp.arrays(np.int64, k, elements=st.integers(-m, m - 1)))
    return Case((draw(S.floats((n, m))), rows, cols))


@st.composite
def _cast_to_int(draw):
    shape = draw(S.shapes())
    return Case((draw(S.floats(shape, -5.0, 5.0)),), dict(dtype=draw(st.sampled_from(["int32", "int64"]))))


@st.composite
def _addmm_mixed(draw):
    """``c + a @ b`` with one float32 operand (a constant) among float64 ones: promotes like NumPy."""
    case = draw(_addmm())
    low = draw(st.integers(0, 2))
    arrays = tuple(a.astype(np.float32) if i == low else a for i, a in enumerate(case.arrays))
    return Case(arrays, constant=frozenset({low}))


# ---- the registry ------------------------------------------------------------------------------------

OPS = [
    # elementwise arithmetic, broadcasting
    OpSpec("add", lambda a, b: a + b, np.add, _binary(), ops=("Add",)),
    OpSpec("sub", lambda a, b: a - b, np.subtract, _binary(), ops=("Sub",)),
    OpSpec("mul", lambda a, b: a * b, np.multiply, _binary(), ops=("Mul",)),
    OpSpec("div", lambda a, b: a / b, np.divide, _binary(b_values=S.nonzero_floats), ops=("Div",)),
    OpSpec(
        "operators_with_scalars_and_arrays",
        _mixed_fn,
        _mixed_ref,
        _mixed_operands(),
        ops=("Add", "Sub", "Mul", "Div"),
    ),
    OpSpec("neg", lambda a: -a, np.negative, _unary(), ops=("Neg",)),
    OpSpec("pow", lambda a, p: a**p, lambda a, p: a**p, _pow(), ops=("Pow",)),
    # matrix products
    OpSpec("matmul_2d", lambda a, b: a @ b, np.matmul, _matmul("2d"), ops=("MatMul",)),
    OpSpec("matmul_3d_2d", lambda a, b: a @ b, np.matmul, _matmul("3d@2d"), ops=("MatMul",)),
    OpSpec("matmul_batched", lambda a, b: a.matmul(b), np.matmul, _matmul("batched"), ops=("MatMul",)),
    OpSpec("addmm", addmm, lambda c, a, b: c + a @ b, _addmm(), ops=("AddMM",)),
    # elementwise functions, kept away from their kinks and poles
    OpSpec("tanh", lambda a: a.tanh(), np.tanh, _unary(), ops=("Tanh",)),
    OpSpec(
        "sigmoid",
        lambda a: a.sigmoid(),
        lambda a: 1 / (1 + np.exp(-a)),
        _unary(low=-8.0, high=8.0),
        ops=("Sigmoid",),
    ),
    OpSpec("exp", lambda a: a.exp(), np.exp, _unary(), ops=("Exp",)),
    OpSpec("log", lambda a: a.log(), np.log, _unary(S.positive_floats, low=0.1, high=5.0), ops=("Log",)),
    OpSpec("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0.0), _unary(avoid=(0.0,)), ops=("ReLU",)),
    # reductions over axes
    OpSpec(
        "sum",
        lambda a, axis, keepdims: a.sum(axis=axis, keepdims=keepdims),
        np.sum,
        _reduction(),
        ops=("Sum",),
    ),
    OpSpec(
        "mean",
        lambda a, axis, keepdims: a.mean(axis=axis, keepdims=keepdims),
        np.mean,
        _reduction(),
        ops=("Mean",),
    ),
    OpSpec(
        "max",
        lambda a, axis, keepdims: a.max(axis=axis, keepdims=keepdims),
        np.max,
        _reduction(values=S.distinct_floats),
        ops=("Max",),
    ),
    OpSpec(
        "log_softmax",
        lambda a, axis: a.log_softmax(axis=axis),
        _log_softmax_ref,
        _log_softmax(),
        ops=("LogSoftmax",),
    ),
    # shapes and indexing
    OpSpec("reshape", lambda a, shape: a.reshape(shape), np.reshape, _reshape(), ops=("Reshape",)),
    OpSpec("permute", lambda a, axes: a.permute(*axes), np.transpose, _permute(), ops=("Permute",)),
    OpSpec("transpose", _transpose_fn, _transpose_ref, _transpose(), ops=("Permute",)),
    OpSpec(
        "getitem_slices",
        lambda a, index: a[index],
        lambda a, index: a[index],
        _basic_index(),
        ops=("GetItem",),
    ),
    OpSpec("getitem_int_array", _array_index_fn, _array_index_ref, _array_index(), ops=("GetItem",)),
    OpSpec(
        "stack",
        lambda *ts, axis: tg.stack(ts, axis=axis),
        lambda *xs, axis: np.stack(xs, axis=axis),
        _stack(),
        ops=("Stack",),
    ),
    OpSpec(
        "concatenate",
        lambda *ts, axis: tg.concatenate(ts, axis=axis),
        lambda *xs, axis: np.concatenate(xs, axis=axis),
        _concatenate(),
        ops=("Concat",),
    ),
    OpSpec(
        "split",
        lambda a, sections, axis, keep: tuple(a.split(sections, axis=axis)[i] for i in keep),
        _split_ref,
        _split(),
        ops=("Split",),
    ),
    OpSpec(
        "unbind",
        lambda a, axis, keep: tuple(a.unbind(axis=axis)[i] for i in keep),
        lambda a, axis, keep: tuple(np.moveaxis(a, axis, 0)[i] for i in keep),
        _unbind(),
        ops=("Unbind",),
    ),
    OpSpec("gather_rows", tg.gather_rows, lambda table, ids: table[ids], _gather(), ops=("Gather",)),
    OpSpec("where", tg.where, np.where, _where(), ops=("Where",)),
    OpSpec(
        "where_scalar",
        lambda m, a, scalar, tensor_first: tg.where(m, a, scalar) if tensor_first else tg.where(m, scalar, a),
        lambda m, a, scalar, tensor_first: np.where(m, a, scalar) if tensor_first else np.where(m, scalar, a),
        _where_scalar(),
        ops=("Where",),
    ),
    OpSpec(
        "cast",
        lambda a, dtype: a.astype(dtype),
        lambda a, dtype: a.astype(dtype),
        _cast(),
        grad_kwargs=dict(eps=1e-3, atol=1e-3, rtol=1e-2),
        tangent_rtol=1e-5,
        ops=("Cast",),
    ),  # float32 output: coarse differences
    # outside the graph
    OpSpec("detach", lambda a: a.detach(), lambda a: a, _unary(), differentiable=False),
    OpSpec("compare", _compare_fn, _compare_ref, _compare(), differentiable=False),
    OpSpec(
        "argmax",
        lambda a, axis: a.argmax(axis=axis),
        lambda a, axis: np.argmax(a, axis=axis),
        _argmax(),
        differentiable=False,
    ),
    # the paths the losses and casts take
    OpSpec(
        "max_ties",
        lambda a, axis, keepdims: a.max(axis=axis, keepdims=keepdims),
        np.max,
        _max_ties(),
        ops=("Max",),
        grad_modes=("full",),
    ),
    OpSpec(
        "getitem_rows_cols",
        lambda x, rows, cols: x[rows, cols],
        lambda x, rows, cols: x[rows, cols],
        _rows_cols(),
        ops=("GetItem",),
    ),
    OpSpec(
        "cast_to_int",
        lambda a, dtype: a.astype(dtype),
        lambda a, dtype: a.astype(dtype),
        _cast_to_int(),
        ops=("Cast",),
        differentiable=False,
    ),
    OpSpec(
        "addmm_mixed_dtypes",
        addmm,
        lambda c, a, b: c + a @ b,
        _addmm_mixed(),
        ops=("AddMM",),
        tangent_rtol=1e-5,
    ),  # a float32 operand: its products are float32-coarse
    # recomputed in the backward: b reaches fn through a closure, a as its argument
    OpSpec(
        "checkpoint",
        lambda a, b: tg.checkpoint(lambda x: (x * b.tanh(), (x - b).exp()), a),
        lambda a, b: (a * np.tanh(b), np.exp(a - b)),
        _binary(),
        ops=("Checkpoint",),
    ),
]


class _OpRecorder:
    """Stands in for ``bptt.trace()``'s recorder: notes the class name of every op applied."""

    def __init__(self):
        self.seen = set()

    def on_step(self, t):
        pass

    def on_forward(self, op, inputs, out, requires_grad):
        self.seen.add(type(op).__name__)

    def on_backward(self, op, out_grads, in_grads):
        pass


@contextlib.contextmanager
def recording_ops():
    """``with recording_ops() as seen:`` — ``seen`` collects the names of the Op classes applied."""
    recorder, previous = _OpRecorder(), _tensor_module._tracer
    _tensor_module._tracer = recorder
    try:
        yield recorder.seen
    finally:
        _tensor_module._tracer = previous


def forward_backward(spec: OpSpec, case: Case, device: str, seed: int):
    """Run ``spec`` on ``device`` and backpropagate a seeded random upstream gradient.

    Returns ``(inputs, outputs)`` as tensors: ``inputs[i].grad`` holds ∂L/∂input_i for
    L = Σ_k Σ u_k ⊙ output_k, with the same ``u`` on every device for the same ``seed``.
    """
    inputs = case.tensors(device)
    outputs = as_tuple(spec.fn(*inputs, **case.params))
    rng = np.random.default_rng(seed)
    for out in outputs:
        upstream = rng.standard_normal(out.shape)
        if out.requires_grad:
            out.backward(upstream)
    return inputs, outputs


# ---- inputs every device must refuse (CuPy would wrap an out-of-range index silently) ---------------


def _table(device):
    return tg.Tensor(np.arange(8.0).reshape(4, 2), device=device, requires_grad=True)


ERRORS = [
    ErrorSpec(
        "gather_rows_id_past_the_end",
        lambda d: tg.gather_rows(_table(d), tg.Tensor([0, 4], device=d)),
        IndexError,
        r"id 4 is out of range .* 0\.\.3",
        ops=("Gather",),
    ),
    ErrorSpec(
        "gather_rows_negative_id",
        lambda d: tg.gather_rows(_table(d), tg.Tensor([-1], device=d)),
        IndexError,
        r"id -1 is out of range",
        ops=("Gather",),
    ),
    ErrorSpec(
        "getitem_int_array_past_the_end",
        lambda d: _table(d)[tg.Tensor([1, 4], device=d)],
        IndexError,
        r"index 4 is out of bounds for axis 0 with size 4",
        ops=("GetItem",),
    ),
    ErrorSpec(
        "getitem_int_array_below_minus_n",
        lambda d: _table(d)[tg.Tensor([-5], device=d)],
        IndexError,
        r"index -5 is out of bounds for axis 0 with size 4",
        ops=("GetItem",),
    ),
    ErrorSpec(
        "getitem_rows_cols_column_out_of_range",
        lambda d: _table(d)[tg.Tensor([0, 1], device=d), tg.Tensor([1, 2], device=d)],
        IndexError,
        r"index 2 is out of bounds for axis 1 with size 2",
        ops=("GetItem",),
    ),
]

BY_NAME = {spec.name: spec for spec in OPS}
assert len(BY_NAME) == len(OPS), "op names in the registry must be unique"
