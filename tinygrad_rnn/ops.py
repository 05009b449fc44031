"""The primitive ops. Each one is a small class: ``forward`` on arrays, ``backward`` beside it.

Notation: ``g`` is the gradient of the loss with respect to the op's output; ``backward`` returns
the gradient with respect to each input (``None`` where no gradient flows, e.g. an index, or where
``self.needs_grad(i)`` says input i is a constant). Each backward is its formula, written out.

Forward mode (``forward.py``): ``jvp`` beside the backward is the op's tangent rule. It gets one
tangent per input (ȧ for input a; ``None`` where the input is a constant or an index) and returns
the output's tangent(s) (``None``: zero). Every tangent carries a leading axis of P directions,
shape (P,) + the primal's shape, so one pass pushes P directions at once; a rule therefore works
behind that axis: an ``axis`` parameter shifts by one (``_shift``), broadcasting ops first give a
tangent as many axes as the output (``_lead``), and matrix products broadcast over it.

Everything differentiable above this file — cells, RNNs, losses, models — is built from these
ops only. Code that needs no gradient uses the array module ``xp`` directly instead: greedy and
beam decoding (``models/seq2seq.py``) keep scores and pick tokens as raw arrays under
``no_grad``, and the optimizers and ``clip_grad_norm_`` update arrays in place.
"""

from __future__ import annotations

import numpy as np

from .tensor import Op, ShapeError, Tensor

AxisError: type[Exception]
try:
    AxisError = np.exceptions.AxisError
except AttributeError:  # NumPy < 1.25
    AxisError = np.AxisError  # type: ignore[attr-defined]  # (gone from NumPy 2's namespace)


def normalize_axis(axis, ndim: int) -> int:
    """``axis`` in ``[0, ndim)``, counting negative axes from the end; out of range raises
    ``AxisError`` (an IndexError and ValueError) naming the axis and ndim, as NumPy does."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"an axis must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise AxisError(int(axis), ndim)
    return int(axis) % ndim


def unbroadcast(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape`` (the one place this is done)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _lead(t, ndim: int):
    """A tangent (P, …) with 1s inserted after the directions' axis so that it has ``ndim + 1``
    axes: it then broadcasts like a primal of ``ndim`` axes would. ``None`` (zero) stays None."""
    if t is None or t.ndim == ndim + 1:
        return t
    return t.reshape((t.shape[0],) + (1,) * (ndim + 1 - t.ndim) + t.shape[1:])


def _sum(*tangents):
    """The sum of the tangents that are not None (None: all are zero)."""
    total = None
    for t in tangents:
        if t is not None:
            total = t if total is None else total + t
    return total


def _shift(axes) -> tuple:
    """A primal's axes as a tangent's: one further right, behind the directions' axis."""
    return tuple(a + 1 for a in axes)


# ---- elementwise arithmetic (broadcasting) -------------------------------------------------------


class Add(Op):
    """a + b; ∂L/∂a = g, ∂L/∂b = g (each summed down to its input's shape).

    Tangent: ṫ = ȧ + ḃ.
    """

    __slots__ = ("shapes",)
    name = "add"
    broadcasts = True

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        sa, sb = self.shapes
        return (
            unbroadcast(g, sa) if self.needs_grad(0) else None,
            unbroadcast(g, sb) if self.needs_grad(1) else None,
        )

    def jvp(self, ta, tb):
        n = max(len(self.shapes[0]), len(self.shapes[1]))
        return _sum(_lead(ta, n), _lead(tb, n))


class Sub(Op):
    """a − b; ∂L/∂a = g, ∂L/∂b = −g. Tangent: ṫ = ȧ − ḃ."""

    __slots__ = ("shapes",)
    name = "sub"
    broadcasts = True

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        sa, sb = self.shapes
        return (
            unbroadcast(g, sa) if self.needs_grad(0) else None,
            unbroadcast(-g, sb) if self.needs_grad(1) else None,
        )

    def jvp(self, ta, tb):
        n = max(len(self.shapes[0]), len(self.shapes[1]))
        return _sum(_lead(ta, n), None if tb is None else -_lead(tb, n))


class Mul(Op):
    """a ⊙ b; ∂L/∂a = g ⊙ b, ∂L/∂b = g ⊙ a. Tangent: ṫ = ȧ ⊙ b + a ⊙ ḃ."""

    __slots__ = ("a", "b")
    name = "mul"
    broadcasts = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        return (
            unbroadcast(g * b, a.shape) if self.needs_grad(0) else None,
            unbroadcast(g * a, b.shape) if self.needs_grad(1) else None,
        )

    def jvp(self, ta, tb):
        a, b = self.a, self.b
        n = max(a.ndim, b.ndim)
        return _sum(None if ta is None else _lead(ta, n) * b, None if tb is None else a * _lead(tb, n))


class Div(Op):
    """a / b; ∂L/∂a = g / b, ∂L/∂b = −g ⊙ a / b². Tangent: ṫ = ȧ / b − a ⊙ ḃ / b²."""

    __slots__ = ("a", "b")
    name = "div"
    broadcasts = True

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        return (
            unbroadcast(g / b, a.shape) if self.needs_grad(0) else None,
            unbroadcast(-g * a / (b * b), b.shape) if self.needs_grad(1) else None,
        )

    def jvp(self, ta, tb):
        a, b = self.a, self.b
        n = max(a.ndim, b.ndim)
        return _sum(
            None if ta is None else _lead(ta, n) / b, None if tb is None else -_lead(tb, n) * a / (b * b)
        )


class Neg(Op):
    """−a; ∂L/∂a = −g. Tangent: ṫ = −ȧ."""

    __slots__ = ()
    name = "neg"

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g

    def jvp(self, ta):
        return -ta


class Pow(Op):
    """``a ** p`` for a Python number p: ∂L/∂a = g · p · a^(p−1).

    Tangent: ṫ = p · a^(p−1) ⊙ ȧ (0 for p = 0).
    """

    __slots__ = ("a", "p")
    name = "pow"

    def forward(self, a, exponent):
        self.a, self.p = a, exponent
        return a**exponent

    def backward(self, g):
        if self.p == 0:  # a ** 0 = 1 is constant; p · a^(p−1) would be 0 · inf = nan at a = 0
            return self.xp.zeros_like(g)
        return g * self.p * self.a ** (self.p - 1)

    def jvp(self, ta):
        if self.p == 0:
            return self.xp.zeros_like(ta)
        return ta * (self.p * self.a ** (self.p - 1))


class Cast(Op):
    """``a`` as another dtype; the gradient is cast back (none flows into an integer input).

    Tangent: ȧ cast to the output's dtype (none for an integer output).
    """

    __slots__ = ("dtype_in", "dtype_out")
    name = "cast"

    def forward(self, a, dtype):
        self.dtype_in, self.dtype_out = a.dtype, np.dtype(dtype)
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype_in) if self.dtype_in.kind == "f" else None

    def jvp(self, ta):
        return ta.astype(self.dtype_out) if self.dtype_out.kind == "f" else None


# ---- matrix product ------------------------------------------------------------------------------


class MatMul(Op):
    """``a @ b`` for 2-D @ 2-D and batched (…, n, k) @ (k, m) or (…, n, k) @ (…, k, m).

    Backward: ∂L/∂a = g bᵀ, ∂L/∂b = aᵀ g. For (B, T, k) @ (k, m) — one projection of every time
    step — ∂L/∂b = Σ over all B·T rows, one (k, B·T) @ (B·T, m) product instead of B·T small ones.

    Tangent: ṫ = ȧ b + a ḃ.
    """

    __slots__ = ("a", "b")
    name = "matmul"

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ShapeError("matmul needs arrays with at least 2 dimensions")
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"inner sizes differ: {a.shape[-1]} != {b.shape[-2]}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b, xp = self.a, self.b, self.xp
        ga = gb = None
        if self.needs_grad(0):
            ga = unbroadcast(g @ xp.swapaxes(b, -1, -2), a.shape)
        if self.needs_grad(1):
            if b.ndim == 2:  # every row of a met the same b: one product
                gb = a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = unbroadcast(xp.swapaxes(a, -1, -2) @ g, b.shape)
        return ga, gb

    def jvp(self, ta, tb):
        a, b = self.a, self.b
        n = max(a.ndim, b.ndim)  # the directions stay in front of the batch axes
        return _sum(None if ta is None else _lead(ta, n) @ b, None if tb is None else a @ _lead(tb, n))


class AddMM(Op):
    """``c + a @ b`` for 2-D ``a`` (n, k) and ``b`` (k, m); ``c`` broadcasts to (n, m) — like
    ``torch.addmm``. The same math as an ``Add`` of a ``MatMul``, as one op: one recorded op fewer,
    and the product ``a @ b`` is not kept for a backward that does not need it. (An RNN step
    ``x_t W + b + h_{t-1} V`` is ``addmm(xw_t, h, V)``.)

    Backward: ∂L/∂c = g summed down to c's shape, ∂L/∂a = g bᵀ, ∂L/∂b = aᵀ g.

    Tangent: ṫ = ċ + ȧ b + a ḃ.
    """

    __slots__ = ("a", "b", "c_shape")
    name = "addmm"

    def forward(self, c, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ShapeError(f"addmm needs 2-D matrices, got {a.ndim}-D and {b.ndim}-D")
        if a.shape[1] != b.shape[0]:
            raise ShapeError(f"inner sizes differ: {a.shape[1]} != {b.shape[0]}")
        if not _broadcasts_to(c.shape, (a.shape[0], b.shape[1])):
            raise ShapeError(f"c of shape {c.shape} does not broadcast to {(a.shape[0], b.shape[1])}")
        self.a, self.b, self.c_shape = a, b, c.shape
        return c + a @ b

    def backward(self, g):
        return (
            unbroadcast(g, self.c_shape) if self.needs_grad(0) else None,
            g @ self.b.T if self.needs_grad(1) else None,
            self.a.T @ g if self.needs_grad(2) else None,
        )

    def jvp(self, tc, ta, tb):
        return _sum(_lead(tc, 2), None if ta is None else ta @ self.b, None if tb is None else self.a @ tb)


# ---- elementwise functions -----------------------------------------------------------------------


class Tanh(Op):
    """y = tanh(a); ∂L/∂a = g ⊙ (1 − y²), from the saved output (no second tanh).

    Tangent: ẏ = (1 − y²) ⊙ ȧ.
    """

    __slots__ = ("y",)
    name = "tanh"

    def forward(self, a):
        self.y = self.xp.tanh(a)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)

    def jvp(self, ta):
        return ta * (1 - self.y * self.y)


class Sigmoid(Op):
    """y = σ(a) = 1 / (1 + e^(−a)); ∂L/∂a = g ⊙ σ(a) σ(−a).

    With z = e^(−|a|) ∈ (0, 1]: σ(a) = e^min(a, 0) / (1 + z) — that is 1 / (1 + z) for a ≥ 0
    and z / (1 + z) for a < 0 — and σ(a) σ(−a) = z / (1 + z)². Nothing overflows and nothing
    cancels, so forward and backward are exact to rounding for every a (σ(−40) ≈ 4.2e−18, not 0;
    σ'(40) ≈ 4.2e−18, not 0). (e^min(a, 0) picks the numerator with arithmetic: choosing it with
    ``where(a >= 0, …)`` costs more than all the rest, the sign of a being unpredictable.)

    Tangent: ẏ = σ(a) σ(−a) ⊙ ȧ.
    """

    __slots__ = ("slope",)
    name = "sigmoid"

    def forward(self, a):
        xp = self.xp
        z = xp.exp(-xp.abs(a))
        r = 1 / (1 + z)
        self.slope = z * r * r  # σ(a) σ(−a): one array kept for the backward, not z and r
        return xp.exp(xp.minimum(a, 0)) * r

    def backward(self, g):
        return g * self.slope

    def jvp(self, ta):
        return ta * self.slope


class Exp(Op):
    """y = e^a; ∂L/∂a = g ⊙ y. Tangent: ẏ = y ⊙ ȧ."""

    __slots__ = ("y",)
    name = "exp"

    def forward(self, a):
        self.y = self.xp.exp(a)
        return self.y

    def backward(self, g):
        return g * self.y

    def jvp(self, ta):
        return ta * self.y


class Log(Op):
    """y = log a; ∂L/∂a = g / a. Tangent: ẏ = ȧ / a."""

    __slots__ = ("a",)
    name = "log"

    def forward(self, a):
        self.a = a
        return self.xp.log(a)

    def backward(self, g):
        return g / self.a

    def jvp(self, ta):
        return ta / self.a


class ReLU(Op):
    """max(a, 0); ∂L/∂a = g where a > 0, else 0 (0 at exactly 0, as in PyTorch). relu(−inf) = 0.

    Tangent: ȧ where a > 0, else 0.
    """

    __slots__ = ("mask",)
    name = "relu"

    def forward(self, a):
        self.mask = a > 0
        return self.xp.where(self.mask, a, self.xp.zeros((), dtype=a.dtype))

    def backward(self, g):
        return g * self.mask

    def jvp(self, ta):
        return ta * self.mask


# ---- reductions ----------------------------------------------------------------------------------


def _axes(axis, ndim):
    """The reduced axes as a sorted tuple in [0, ndim); out-of-range or repeated axes raise."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(normalize_axis(a, ndim) for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis))
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis {tuple(axis)} repeats an axis (of an array with {ndim} dimensions)")
    return tuple(sorted(axes))


def _expand_back(g, shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input again."""
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class Sum(Op):
    """Σ over axes; ∂L/∂a = g broadcast back over the summed axes.

    Tangent: Σ of ȧ over the same axes.
    """

    __slots__ = ("shape", "axes", "keepdims")
    name = "sum"

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, _axes(axis, a.ndim), keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(g, self.shape)

    def jvp(self, ta):
        return ta.sum(axis=_shift(self.axes), keepdims=self.keepdims)


class Mean(Op):
    """Σ over axes / n; ∂L/∂a = g / n broadcast back (n: elements per mean).

    Tangent: the mean of ȧ over the same axes.
    """

    __slots__ = ("shape", "axes", "keepdims", "count")
    name = "mean"

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, _axes(axis, a.ndim), keepdims
        self.count = 1
        for i in self.axes:
            self.count *= a.shape[i]
        return a.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(g / self.count, self.shape)

    def jvp(self, ta):
        return ta.sum(axis=_shift(self.axes), keepdims=self.keepdims) / self.count


class Max(Op):
    """Maximum over axes. Ties share the gradient equally (so it stays a true subgradient).

    Tangent: Σ over the axes of ȧ ⊙ share, share = 1/m at each of the m maxima (the transpose
    of backward's rule).
    """

    __slots__ = ("axes", "keepdims", "mask")
    name = "max"

    def forward(self, a, axis=None, keepdims=False):
        self.axes, self.keepdims = _axes(axis, a.ndim), keepdims
        out = a.max(axis=self.axes, keepdims=True)
        self.mask = a == out
        return out if keepdims else out.reshape([n for i, n in enumerate(out.shape) if i not in self.axes])

    def backward(self, g):
        g = _expand_back(g, self.mask.shape, self.axes, self.keepdims)
        share = self.mask.astype(g.dtype)  # in g's dtype: bool / int would give float64
        return g * (share / share.sum(axis=self.axes, keepdims=True))

    def jvp(self, ta):
        share = self.mask.astype(ta.dtype)
        share = share / share.sum(axis=self.axes, keepdims=True)
        return (ta * share).sum(axis=_shift(self.axes), keepdims=self.keepdims)


class LogSoftmax(Op):
    """y = a − max(a) − log Σ exp(a − max(a)): stable for logits of ±1e4.

    Backward: ∂L/∂a = g − softmax(a) · Σ g.

    Tangent: ẏ = ȧ − Σ softmax(a) ⊙ ȧ (the sum along ``axis``).
    """

    __slots__ = ("axis", "y")
    name = "log_softmax"

    def forward(self, a, axis=-1):
        xp = self.xp
        self.axis = normalize_axis(axis, a.ndim)
        shifted = a - a.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, g):
        return g - self.xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)

    def jvp(self, ta):
        return ta - (self.xp.exp(self.y) * ta).sum(axis=self.axis + 1, keepdims=True)


# ---- shape and indexing --------------------------------------------------------------------------


class Reshape(Op):
    """Tangent: ȧ reshaped the same way (behind the directions)."""

    __slots__ = ("shape", "target")
    name = "reshape"

    def forward(self, a, shape):
        known = [n for n in shape if n != -1]
        size = 1
        for n in known:
            size *= n
        free = len(shape) - len(known)
        if (
            free > 1
            or any(n < 0 for n in known)
            or (size != a.size if free == 0 else (size == 0 or a.size % size))
        ):
            raise ShapeError(f"cannot reshape {a.size} elements into shape {tuple(shape)}")
        self.shape, self.target = a.shape, tuple(shape)
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)

    def jvp(self, ta):
        return ta.reshape((ta.shape[0],) + self.target)


class Permute(Op):
    """Tangent: ȧ with the same axes permuted (behind the directions)."""

    __slots__ = ("axes",)
    name = "permute"

    def forward(self, a, axes):
        if len(axes) != a.ndim:
            raise ShapeError(f"axes {tuple(axes)} are not a permutation of {a.ndim} axes")
        self.axes = tuple(normalize_axis(x, a.ndim) for x in axes)
        if sorted(self.axes) != list(range(a.ndim)):
            raise ShapeError(f"axes {tuple(axes)} are not a permutation of {a.ndim} axes")
        return a.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return g.transpose(inverse)

    def jvp(self, ta):
        return ta.transpose((0,) + _shift(self.axes))


def _integer_arrays(index):
    """The integer-array parts of an index (``x[rows, cols]``), with the axis each indexes."""
    items = index if isinstance(index, tuple) else (index,)
    axis, found = 0, []
    for item in items:
        if item is Ellipsis:
            break  # arrays after ``...`` would need the axis counted from the end; none here
        is_array = hasattr(item, "dtype") and getattr(item, "ndim", 0) > 0
        if is_array and item.dtype.kind in "iu":
            found.append((axis, item))
        if item is not None:
            axis += item.ndim if is_array and item.dtype.kind == "b" else 1  # a mask spans its ndim axes
    return found


class GetItem(Op):
    """``a[index]`` with slices, integers and integer arrays.

    Integer arrays are checked against ``[−n, n)`` of their axis first, on every device: CuPy
    wraps an out-of-range index silently (one boolean read per array; callers whose indices are
    valid by construction pass ``checked=False`` and say why). Backward writes ``g`` into zeros of
    ``a``'s shape; integer arrays may repeat an index, so they go through scatter-add.

    Tangent: ȧ indexed the same way (behind the directions).
    """

    __slots__ = ("shape", "index", "scatter")
    name = "getitem"

    def forward(self, a, index, checked=True):
        arrays = _integer_arrays(index)
        if checked:
            for axis, ids in arrays:
                if axis >= a.ndim:
                    break  # NumPy's own IndexError (too many indices) follows
                n = a.shape[axis]
                bad = (ids < -n) | (ids >= n)
                if bool(bad.any()):
                    first = int(self.backend.to_host(ids[bad].reshape(-1)[:1])[0])
                    raise IndexError(f"index {first} is out of bounds for axis {axis} with size {n}")
        self.shape, self.index, self.scatter = a.shape, index, bool(arrays)
        return a[index]

    def backward(self, g):
        out = self.xp.zeros(self.shape, dtype=g.dtype)
        if self.scatter:
            self.backend.scatter_add(out, self.index, g)  # repeated indices add up
        else:
            out[self.index] = g
        return out

    def jvp(self, ta):
        index = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(i is Ellipsis for i in index):  # ``...`` would swallow the directions' axis
            return ta[(slice(None),) + index]  # (no integer arrays after ``...`` here)
        # Directions moved last: integer arrays anywhere in ``index`` then place their axes as on a.
        moved = ta.transpose(tuple(range(1, ta.ndim)) + (0,))[index]
        return moved.transpose((moved.ndim - 1,) + tuple(range(moved.ndim - 1)))


class Gather(Op):
    """Rows of a table: ``out[..., :] = table[ids[...], :]`` — the embedding lookup.

    Backward scatter-adds each row's gradient back to its id (repeated ids add up). The ids are
    checked by :func:`gather_rows`, the one function that applies this op.

    Tangent: the rows ``ids`` of the table's tangent.
    """

    __slots__ = ("shape", "ids")
    name = "gather"

    def forward(self, table, ids):
        self.shape, self.ids = table.shape, ids
        return table[ids]

    def backward(self, g):
        out = self.xp.zeros(self.shape, dtype=g.dtype)
        self.backend.scatter_add(out, self.ids.reshape(-1), g.reshape(-1, self.shape[-1]))
        return out, None

    def jvp(self, ttable, tids):
        return ttable[:, self.ids]


def _axis_first(a, axis):
    """A view of ``a`` with ``axis`` moved to the front (``moveaxis`` without its argument checks)."""
    return a if axis == 0 else a.transpose((axis,) + tuple(i for i in range(a.ndim) if i != axis))


class Stack(Op):
    """Same-shaped arrays along a new ``axis`` (the RNN's T states -> outputs (B, T, H)).

    Backward: input i gets the slice i of g along ``axis`` (a view, no copy).

    Tangent: the inputs' tangents stacked along ``axis`` (zeros for constants).
    """

    __slots__ = ("axis",)
    name = "stack"

    def forward(self, *arrays, axis=0):
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise ShapeError(f"all arrays need one shape, got {sorted({a.shape for a in arrays})}")
        self.axis = normalize_axis(axis, len(shape) + 1)
        return self.xp.stack(arrays, axis=self.axis)

    def backward(self, g):
        moved = _axis_first(g, self.axis)
        return tuple(moved[i] for i in range(moved.shape[0]))

    def jvp(self, *ts):
        zero = self.xp.zeros_like(next(t for t in ts if t is not None))
        return self.xp.stack([zero if t is None else t for t in ts], axis=self.axis + 1)


def _bounds(sizes):
    """Cut points between consecutive pieces of the given sizes: [3, 2, 4] -> [3, 5]."""
    bounds, total = [], 0
    for n in sizes[:-1]:
        total += n
        bounds.append(total)
    return bounds


class Concat(Op):
    """Arrays joined along an existing ``axis``; backward splits g back into the pieces.

    Tangent: the inputs' tangents joined along ``axis`` (zeros for constants).
    """

    __slots__ = ("axis", "sizes")
    name = "concatenate"

    def forward(self, *arrays, axis=0):
        ndim = arrays[0].ndim
        if ndim == 0:
            raise ShapeError("cannot concatenate 0-d arrays")
        self.axis = normalize_axis(axis, ndim)
        rest = [a.shape[: self.axis] + a.shape[self.axis + 1 :] for a in arrays]
        if any(a.ndim != ndim for a in arrays) or any(r != rest[0] for r in rest):
            raise ShapeError(f"shapes differ outside axis {axis}")
        self.sizes = [a.shape[self.axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=self.axis)

    def backward(self, g):
        return tuple(self.xp.split(g, _bounds(self.sizes), axis=self.axis))

    def jvp(self, *ts):
        return _concatenate_or_zeros(self.xp, ts, self.sizes, self.axis + 1)  # tangents: axis 0 is P


def _concatenate_or_zeros(xp, arrays, sizes, axis: int):
    """``arrays`` joined along ``axis``, a block of zeros of the piece's size standing in for each
    None (a piece no gradient or tangent reached); shape and dtype from the first array given."""
    like = next(a for a in arrays if a is not None)
    pieces = []
    for a, size in zip(arrays, sizes):
        if a is None:
            shape = list(like.shape)
            shape[axis] = size
            a = xp.zeros(shape, dtype=like.dtype)
        pieces.append(a)
    return xp.concatenate(pieces, axis=axis)


class Split(Op):
    """Pieces of ``a`` along ``axis`` (``sections``: a count or a list of sizes); several outputs.

    All pieces share one backward, which concatenates their gradients once (zeros for unused
    pieces) — so splitting T time steps costs O(T), not T full-size zero arrays.

    Tangent: ȧ split the same way.
    """

    __slots__ = ("axis", "sizes")
    name = "split"

    def forward(self, a, sections, axis=0):
        self.axis = normalize_axis(axis, a.ndim)
        n = a.shape[self.axis]
        if isinstance(sections, (int, np.integer)):
            if sections <= 0 or n % sections:
                raise ShapeError(f"cannot split {n} along axis {axis} into {sections} equal pieces")
            sizes = [n // sections] * sections
        else:
            sizes = [int(s) for s in sections]
            if any(s < 0 for s in sizes):
                raise ShapeError(f"piece sizes {sizes} must not be negative")
            if sum(sizes) != n:
                raise ShapeError(f"piece sizes {sizes} do not add up to {n}")
        self.sizes = sizes
        return tuple(self.xp.split(a, _bounds(sizes), axis=self.axis))

    def backward(self, grads):
        return _concatenate_or_zeros(self.xp, grads, self.sizes, self.axis)

    def jvp(self, ta):
        return tuple(self.xp.split(ta, _bounds(self.sizes), axis=self.axis + 1))


class Unbind(Op):
    """The slices ``a[:, t]`` along ``axis`` as separate outputs; backward stacks their gradients
    (zeros for unused slices) back along ``axis``.

    Tangent: the slices of ȧ along ``axis``.
    """

    __slots__ = ("axis", "shape")
    name = "unbind"
    # The backward walk may instead copy each output's gradient into one array of a's shape as
    # it arrives (tensor._Gathered; the same values): output i is the slice ``at(i)`` of a.
    gathers = True

    def at(self, i: int) -> tuple:
        return (slice(None),) * self.axis + (i,)

    def forward(self, a, axis=0):
        self.axis = normalize_axis(axis, a.ndim)
        self.shape = a.shape
        moved = _axis_first(a, self.axis)
        return tuple(moved[i] for i in range(a.shape[self.axis]))

    def backward(self, grads):
        xp = self.xp
        dtype = next(g for g in grads if g is not None).dtype
        step_shape = self.shape[: self.axis] + self.shape[self.axis + 1 :]
        zero = None
        pieces = []
        for g in grads:
            if g is None:
                zero = xp.zeros(step_shape, dtype=dtype) if zero is None else zero
                g = zero
            pieces.append(g)
        return xp.stack(pieces, axis=self.axis)

    def jvp(self, ta):
        moved = self.xp.moveaxis(ta, self.axis + 1, 1)
        return tuple(moved[:, i] for i in range(moved.shape[1]))


class Where(Op):
    """``where(mask, a, b)``: a where mask is true, else b. ∂L/∂a = g where mask, ∂L/∂b = g
    elsewhere; the mask gets no gradient.

    Tangent: ``where(mask, ȧ, ḃ)``.
    """

    __slots__ = ("mask", "shapes")
    name = "where"
    broadcasts = True

    def forward(self, mask, a, b):
        self.mask, self.shapes = mask, (a.shape, b.shape)
        return self.xp.where(mask, a, b)

    def backward(self, g):
        zero = self.xp.zeros((), dtype=g.dtype)
        return (
            None,
            unbroadcast(self.xp.where(self.mask, g, zero), self.shapes[0]) if self.needs_grad(1) else None,
            unbroadcast(self.xp.where(self.mask, zero, g), self.shapes[1]) if self.needs_grad(2) else None,
        )

    def jvp(self, tmask, ta, tb):
        n = max(self.mask.ndim, len(self.shapes[0]), len(self.shapes[1]))
        zero = self.xp.zeros((), dtype=(ta if ta is not None else tb).dtype)
        return self.xp.where(
            self.mask, zero if ta is None else _lead(ta, n), zero if tb is None else _lead(tb, n)
        )


def _broadcasts_to(shape, target) -> bool:
    """Whether ``shape`` broadcasts *to* ``target`` (NumPy's rule, one way: the result is ``target``)."""
    return len(shape) <= len(target) and all(m in (1, n) for m, n in zip(reversed(shape), reversed(target)))


# ---- functions over several tensors --------------------------------------------------------------


def _tensors(items, like=None):
    items = list(items)
    if not items:
        raise ValueError("expected at least one tensor")
    first = next((t for t in items if isinstance(t, Tensor)), None)
    if first is None:
        return [Tensor(t) for t in items]
    return [t if isinstance(t, Tensor) else first._lift(t) for t in items]


def stack(tensors, axis=0) -> Tensor:
    """Join same-shaped tensors along a new axis (a shape mismatch raises ShapeError naming them)."""
    return Stack.apply(*_tensors(tensors), axis=axis)


def concatenate(tensors, axis=0) -> Tensor:
    """Join tensors along an existing axis."""
    return Concat.apply(*_tensors(tensors), axis=axis)


cat = concatenate


def addmm(c, a, b) -> Tensor:
    """``c + a @ b`` as one op (``torch.addmm``): 2-D ``a`` (n, k), ``b`` (k, m), ``c`` broadcasting
    to (n, m). Same values and gradients as ``c + a @ b``, recorded as one op instead of two."""
    if isinstance(c, Tensor) and isinstance(a, Tensor) and isinstance(b, Tensor):  # the RNN's hot path
        return AddMM.apply(c, a, b)
    ref = next((t for t in (c, a, b) if isinstance(t, Tensor)), None)
    if ref is None:
        raise TypeError("addmm needs at least one tensor")
    return AddMM.apply(ref._lift(c), ref._lift(a), ref._lift(b))


def where(mask, a, b) -> Tensor:
    """Elementwise choice: ``a`` where ``mask`` holds, else ``b`` (scalars allowed for a or b)."""
    ref = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if ref is None:
        raise TypeError("where needs a tensor as a or b")
    mask = mask if isinstance(mask, Tensor) else ref._lift(mask)
    return Where.apply(mask, ref._lift(a), ref._lift(b))


def gather_rows(table: Tensor, ids, *, checked: bool = True) -> Tensor:
    """``table[ids]`` for an integer tensor of ids: the embedding lookup.

    Every id is checked against ``[0, len(table))`` first, on every device: NumPy would wrap a
    negative id and CuPy silently wraps any out-of-range id. (The check reads one boolean back
    from the device — one sync per lookup, not per time step.) ``checked=False`` skips it, only
    for ids valid by construction (e.g. taken by argmax over the table's rows): say why there.
    """
    ids = ids if isinstance(ids, Tensor) else Tensor(ids, device=table._backend)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got {ids.dtype}")
    if checked:
        n = table.shape[0]
        data = ids._data
        bad = (data < 0) | (data >= n)
        if bool(bad.any()):
            first = int(ids._backend.to_host(data[bad].reshape(-1)[:1])[0])
            raise IndexError(f"id {first} is out of range for a table of {n} rows (valid ids: 0..{n - 1})")
    return Gather.apply(table, ids)


def detach(t: Tensor) -> Tensor:
    return t.detach()
