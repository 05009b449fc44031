"""The primitive ops. Each one is a small class: ``forward`` on arrays, ``backward`` beside it.

Notation: ``g`` is the gradient of the loss with respect to the op's output; ``backward`` returns
the gradient with respect to each input (``None`` where no gradient flows, e.g. an index).
Everything above this file — cells, RNNs, losses, models — is built from these ops only.
"""

from __future__ import annotations

from .tensor import Op, Tensor, _new


def unbroadcast(grad, shape):
    """Undo broadcasting: sum ``grad`` down to ``shape`` (the one place this is done)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _needs(op, i):
    """Whether input ``i`` of a recorded op wants a gradient (skip work for constants)."""
    return op.inputs[i].requires_grad


# ---- elementwise arithmetic (broadcasting) -------------------------------------------------------

class Add(Op):
    name = "add"

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, g):
        # g itself where no broadcasting happened (the usual case): no copy, no call.
        (sa, sb), inputs = self.shapes, self.inputs
        return (None if not inputs[0].requires_grad else g if g.shape == sa else unbroadcast(g, sa),
                None if not inputs[1].requires_grad else g if g.shape == sb else unbroadcast(g, sb))


class Sub(Op):
    name = "sub"

    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, g):
        return (unbroadcast(g, self.shapes[0]) if _needs(self, 0) else None,
                unbroadcast(-g, self.shapes[1]) if _needs(self, 1) else None)


class Mul(Op):
    name = "mul"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        return (unbroadcast(g * self.b, self.a.shape) if _needs(self, 0) else None,
                unbroadcast(g * self.a, self.b.shape) if _needs(self, 1) else None)


class Div(Op):
    name = "div"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b
        return (unbroadcast(ga, self.a.shape) if _needs(self, 0) else None,
                unbroadcast(-ga * self.a / self.b, self.b.shape) if _needs(self, 1) else None)


class Neg(Op):
    name = "neg"

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Pow(Op):
    """``a ** p`` for a Python number p: d/da = p · a^(p−1)."""
    name = "pow"

    def forward(self, a, exponent):
        self.a, self.p = a, exponent
        return a ** exponent

    def backward(self, g):
        if self.p == 0:  # a ** 0 = 1 is constant; p · a^(p−1) would be 0 · inf = nan at a = 0
            return self.xp.zeros_like(g)
        return g * self.p * self.a ** (self.p - 1)


class Cast(Op):
    name = "cast"

    def forward(self, a, dtype):
        self.dtype_in = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype_in) if self.dtype_in.kind == "f" else None


# ---- matrix product ------------------------------------------------------------------------------

class MatMul(Op):
    """``a @ b`` for 2-D @ 2-D and batched (…, n, k) @ (k, m) or (…, n, k) @ (…, k, m).

    Backward: ∂L/∂a = g bᵀ, ∂L/∂b = aᵀ g. For (B, T, k) @ (k, m) — one projection of every time
    step — ∂L/∂b is a single (k, B·T) @ (B·T, m) product instead of B·T small ones.
    """
    name = "matmul"

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("matmul needs arrays with at least 2 dimensions")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"inner sizes differ: {a.shape[-1]} != {b.shape[-2]}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b, xp = self.a, self.b, self.xp
        ga = gb = None
        if self.inputs[0].requires_grad:
            if b.ndim == 2:                            # (…, n, m) @ (m, k): nothing was broadcast
                ga = g @ b.T
            else:
                ga = unbroadcast(g @ xp.swapaxes(b, -1, -2), a.shape)
        if self.inputs[1].requires_grad:
            if a.ndim == 2 and b.ndim == 2:
                gb = a.T @ g
            elif b.ndim == 2:
                gb = a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                gb = unbroadcast(xp.swapaxes(a, -1, -2) @ g, b.shape)
        return ga, gb


class AddMM(Op):
    """``c + a @ b`` for 2-D ``a`` (n, k) and ``b`` (k, m); ``c`` broadcasts to (n, m) — like
    ``torch.addmm``. The same math as an ``Add`` of a ``MatMul``, as one op: the product is
    made once and ``c`` is added into it in place, so no (n, m) temporary and one recorded op
    fewer. (An RNN step ``x_t W + b + h_{t-1} V`` is ``addmm(xw_t, h, V)``.)

    Backward: ∂L/∂c = g summed down to c's shape, ∂L/∂a = g bᵀ, ∂L/∂b = aᵀ g.
    """
    name = "addmm"

    def forward(self, c, a, b):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"addmm needs 2-D matrices, got {a.ndim}-D and {b.ndim}-D")
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"inner sizes differ: {a.shape[1]} != {b.shape[0]}")
        self.a, self.b, self.c_shape = a, b, c.shape
        out = a @ b
        if c.dtype == out.dtype:
            out += c            # in place: out is ours, fresh from the product (c may be a bias row);
        else:                   # a c that does not broadcast into out raises ValueError here
            out = c + out       # promotes like c + a @ b (e.g. a float64 c)
            if out.shape != (a.shape[0], b.shape[1]):
                raise ValueError(f"c of shape {c.shape} does not broadcast to {(a.shape[0], b.shape[1])}")
        return out

    def backward(self, g):
        inputs, sc = self.inputs, self.c_shape
        return (None if not inputs[0].requires_grad else g if g.shape == sc else unbroadcast(g, sc),
                g @ self.b.T if inputs[1].requires_grad else None,
                self.a.T @ g if inputs[2].requires_grad else None)


# ---- elementwise functions -----------------------------------------------------------------------

class Tanh(Op):
    """y = tanh(a); dy/da = 1 − y² (computed from the saved output, no extra tanh)."""
    name = "tanh"

    def forward(self, a):
        self.y = self.xp.tanh(a)
        return self.y

    def backward(self, g):
        y = self.y
        d = y * y                                 # one new array, then in place: d = (1 − y²) ⊙ g
        if d.ndim == 0 or d.dtype != g.dtype:     # a NumPy scalar, or no in-place cast of dtypes
            return (1 - d) * g
        self.xp.subtract(1, d, out=d)
        d *= g
        return d


class Sigmoid(Op):
    """y = 1 / (1 + e^(−a)), computed as (1 + tanh(a/2)) / 2 so large |a| never overflows."""
    name = "sigmoid"

    def forward(self, a):
        self.y = 0.5 * (1 + self.xp.tanh(0.5 * a))
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


class Exp(Op):
    name = "exp"

    def forward(self, a):
        self.y = self.xp.exp(a)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Op):
    name = "log"

    def forward(self, a):
        self.a = a
        return self.xp.log(a)

    def backward(self, g):
        return g / self.a


class ReLU(Op):
    """max(a, 0); the derivative at exactly 0 is taken as 0 (as in PyTorch)."""
    name = "relu"

    def forward(self, a):
        self.mask = a > 0
        return a * self.mask

    def backward(self, g):
        return g * self.mask


# ---- reductions ----------------------------------------------------------------------------------

def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % ndim for a in axis))


def _expand_back(g, shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input again."""
    if not keepdims:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class Sum(Op):
    name = "sum"

    def forward(self, a, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = a.shape, _axes(axis, a.ndim), keepdims
        return a.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        g = _expand_back(g, self.shape, self.axes, self.keepdims)
        return self.xp.broadcast_to(g, self.shape)


class Mean(Op):
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


class Max(Op):
    """Maximum over axes. Ties share the gradient equally (so it stays a true subgradient)."""
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


class LogSoftmax(Op):
    """y = a − max(a) − log Σ exp(a − max(a)): stable for logits of ±1e4.

    Backward: ∂L/∂a = g − softmax(a) · Σ g.
    """
    name = "log_softmax"

    def forward(self, a, axis=-1):
        xp = self.xp
        self.axis = axis
        shifted = a - a.max(axis=axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return self.y

    def backward(self, g):
        return g - self.xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)


# ---- shape and indexing --------------------------------------------------------------------------

class Reshape(Op):
    name = "reshape"

    def forward(self, a, shape):
        self.shape = a.shape
        return a.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


class Permute(Op):
    name = "permute"

    def forward(self, a, axes):
        if len(axes) != a.ndim or sorted(x % a.ndim for x in axes) != list(range(a.ndim)):
            raise ValueError(f"axes {axes} are not a permutation of {a.ndim} axes")
        self.axes = tuple(x % a.ndim for x in axes)
        return a.transpose(self.axes)

    def backward(self, g):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return g.transpose(inverse)


class GetItem(Op):
    """``a[index]`` with slices, integers and integer arrays.

    Backward writes ``g`` into zeros of ``a``'s shape; integer arrays may repeat an index, so
    they go through the backend's scatter-add (``np.add.at`` / ``cupyx.scatter_add``).
    """
    name = "getitem"

    def forward(self, a, index):
        self.shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, g):
        out = self.xp.zeros(self.shape, dtype=g.dtype)
        index = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(hasattr(i, "shape") and getattr(i, "ndim", 0) > 0 for i in index):
            self.backend.scatter_add(out, self.index, g)
        else:
            out[self.index] = g
        return out


class Gather(Op):
    """Rows of a table: ``out[..., :] = table[ids[...], :]`` — the embedding lookup.

    Backward scatter-adds each row's gradient back to its id (repeated ids add up).
    """
    name = "gather"

    def forward(self, table, ids):
        self.shape, self.ids = table.shape, ids
        return table[ids]

    def backward(self, g):
        out = self.xp.zeros(self.shape, dtype=g.dtype)
        self.backend.scatter_add(out, self.ids.reshape(-1), g.reshape(-1, self.shape[-1]))
        return out, None


def _axis_first(a, axis):
    """A view of ``a`` with ``axis`` moved to the front (``moveaxis`` without its argument checks)."""
    return a if axis == 0 else a.transpose((axis,) + tuple(i for i in range(a.ndim) if i != axis))


class Stack(Op):
    """Same-shaped arrays along a new ``axis`` (the RNN's T states -> outputs (B, T, H))."""
    name = "stack"

    def forward(self, *arrays, axis=0):
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise ValueError(f"all arrays need one shape, got {sorted({a.shape for a in arrays})}")
        self.axis = axis % (len(shape) + 1)
        # Written into place one by one: cheaper than xp.stack's checks and expand_dims per array.
        out = self.xp.empty(shape[:self.axis] + (len(arrays),) + shape[self.axis:],
                            dtype=self.xp.result_type(*arrays))
        pieces = _axis_first(out, self.axis)
        for i, a in enumerate(arrays):
            pieces[i] = a
        return out

    def backward(self, g):
        moved = _axis_first(g, self.axis)          # views of g, one per input: no copies
        return tuple(moved[i] for i in range(moved.shape[0]))


class Concat(Op):
    name = "concatenate"

    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return self.xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        bounds = []
        total = 0
        for n in self.sizes[:-1]:
            total += n
            bounds.append(total)
        return tuple(self.xp.split(g, bounds, axis=self.axis))


class Split(Op):
    """Pieces of ``a`` along ``axis`` (``sections``: a count or a list of sizes); several outputs.

    All pieces share one backward, which concatenates their gradients once (zeros for unused
    pieces) — so splitting T time steps costs O(T), not T full-size zero arrays.
    """
    name = "split"

    def forward(self, a, sections, axis=0):
        self.axis = axis % a.ndim
        n = a.shape[self.axis]
        if isinstance(sections, int):
            if sections <= 0 or n % sections:
                raise ValueError(f"cannot split {n} along axis {axis} into {sections} equal pieces")
            sizes = [n // sections] * sections
        else:
            sizes = list(sections)
            if sum(sizes) != n:
                raise ValueError(f"piece sizes {sizes} do not add up to {n}")
        self.shape, self.sizes = a.shape, sizes
        bounds, total = [], 0
        for s in sizes[:-1]:
            total += s
            bounds.append(total)
        return tuple(self.xp.split(a, bounds, axis=self.axis))

    def backward(self, grads):
        xp = self.xp
        dtype = next(g for g in grads if g is not None).dtype
        pieces = []
        for g, size in zip(grads, self.sizes):
            if g is None:
                shape = list(self.shape)
                shape[self.axis] = size
                g = xp.zeros(shape, dtype=dtype)
            pieces.append(g)
        return xp.concatenate(pieces, axis=self.axis)


class Unbind(Op):
    """The slices ``a[:, t]`` along ``axis`` as separate outputs; one stacked backward for all."""
    name = "unbind"

    def forward(self, a, axis=0):
        self.axis = axis % a.ndim
        self.shape = a.shape
        moved = _axis_first(a, self.axis)
        return tuple(moved[i] for i in range(a.shape[self.axis]))

    def backward(self, grads):
        xp = self.xp
        dtype = next(g for g in grads if g is not None).dtype
        # Written in the input's own layout, so the gradient is contiguous: a reshape after it
        # (the RNN's (B, T, H) -> (B·T, H) input projection) is then a view, not a copy.
        out = xp.empty(self.shape, dtype=dtype)
        steps = _axis_first(out, self.axis)       # a view: steps[i] is out[:, i] for axis 1
        for i, g in enumerate(grads):
            steps[i] = 0 if g is None else g
        return out


class Where(Op):
    """``where(mask, a, b)``: a where mask is true, else b. The mask gets no gradient."""
    name = "where"

    def forward(self, mask, a, b):
        self.mask, self.shapes = mask, (a.shape, b.shape)
        return self.xp.where(mask, a, b)

    def backward(self, g):
        zero = self.xp.zeros((), dtype=g.dtype)
        return (None,
                unbroadcast(self.xp.where(self.mask, g, zero), self.shapes[0]) if _needs(self, 1) else None,
                unbroadcast(self.xp.where(self.mask, zero, g), self.shapes[1]) if _needs(self, 2) else None)


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
    to (n, m). Same values and gradients as ``c + a @ b``, with one op and one array fewer."""
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


def gather_rows(table: Tensor, ids) -> Tensor:
    """``table[ids]`` for an integer tensor of ids: the embedding lookup.

    Every id is checked against ``[0, len(table))`` first, on every device: NumPy would wrap a
    negative id and CuPy silently wraps any out-of-range id. (The check reads one boolean back
    from the device — one sync per lookup, not per time step.)
    """
    ids = ids if isinstance(ids, Tensor) else Tensor(ids, device=table._backend)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be integers, got {ids.dtype}")
    n = table.shape[0]
    data = ids._data
    bad = (data < 0) | (data >= n)
    if bool(bad.any()):
        first = int(ids._backend.to_host(data[bad].reshape(-1)[:1])[0])
        raise IndexError(f"id {first} is out of range for a table of {n} rows (valid ids: 0..{n - 1})")
    return Gather.apply(table, ids)


def detach(t: Tensor) -> Tensor:
    return t.detach()
