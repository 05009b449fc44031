"""Forward-mode autodiff (:func:`jvp`) and gradient checkpointing (:func:`checkpoint`).

**Forward mode.** Reverse mode (``Tensor.backward``) pushes one output gradient back to every
input: a row of the Jacobian J per pass. Forward mode pushes an input *tangent* v (a direction
in input space) forward with the values: after the last op it holds J v, a column per pass. Every
op of ``ops.py`` has its tangent rule ``jvp`` beside its ``backward``; while :func:`jvp` runs,
``Op.apply`` hands each op its inputs' tangents and stores the outputs' (one check per op, and
nothing at all when forward mode is off).

Tangents may carry a leading axis of P directions (``batched=True``: shape (P,) + the primal's
shape), as ``jax.vmap`` over ``jvp`` would: one pass then gives J V for P directions V at once.
That is how real-time recurrent learning (``bptt.rtrl``) advances the influence ∂h_t/∂θ of every
parameter in one pass per time step.

**Checkpointing.** :func:`checkpoint` runs a function without recording its ops, keeping only
its inputs and outputs; the backward runs it again, recording, and walks that record back. The
memory of everything in between is traded for one more forward pass.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any, Callable

from . import tensor as _engine
from .backend import host_rng
from .tensor import Op, Tensor, _new, _record, grad_mode, no_grad

# ---- forward mode --------------------------------------------------------------------------------


class _ForwardMode:
    """The tangents of the tensors of one :func:`jvp` call, each (P,) + the tensor's shape.

    Keyed weakly by tensor: an intermediate whose tensor is gone takes its tangent with it.
    """

    def __init__(self):
        self.tangents = weakref.WeakKeyDictionary()

    def on_apply(self, op, inputs, result) -> None:
        """Called by ``Op.apply`` after every op: the outputs' tangents from the inputs' (op.jvp)."""
        tangents = [self.tangents.get(t) for t in inputs]
        if all(t is None for t in tangents):
            return  # no input moves: the outputs do not either
        out_tangents = op.jvp(*tangents)
        outputs = result if isinstance(result, tuple) else (result,)
        if not isinstance(out_tangents, tuple):
            out_tangents = (out_tangents,)
        P = next(t for t in tangents if t is not None).shape[0]
        for out, t in zip(outputs, out_tangents):
            if t is None or out.dtype.kind != "f":
                continue
            if tuple(t.shape) != (P,) + out.shape:  # e.g. a + b where only b (smaller) moves
                t = out.xp.broadcast_to(t, (P,) + out.shape)
            if t.dtype != out.dtype:
                t = t.astype(out.dtype)
            self.tangents[out] = t


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def jvp(fn, inputs, tangents, *, batched: bool = False, record: bool = False):
    """``fn``'s outputs and their tangents J v: forward-mode autodiff, like ``torch.func.jvp``.

    ``inputs``: a tuple of tensors; ``tangents``: one direction per input (tensors or arrays of
    the input's shape; with ``batched=True`` each has a leading axis of P directions, shape
    (P,) + the input's shape, the same P for all). Returns ``(outputs, output_tangents)``: the
    outputs as ``fn`` returned them (a tensor or a tuple) and their tangents in the same form, as
    constant tensors (zeros for an output no input reaches).

    The tangents belong to the input tensors themselves: ``fn`` may reach them through its
    arguments or through a closure (a cell's ``step`` reading ``self.V``) alike; every other
    tensor is a constant. ``fn`` runs under ``no_grad`` — forward mode records no graph — unless
    ``record=True``, which records it as usual (to run a backward through the outputs too).
    """
    inputs, tangents = _as_tuple(inputs), _as_tuple(tangents)
    if len(inputs) != len(tangents):
        raise ValueError(
            f"jvp: {len(inputs)} inputs but {len(tangents)} tangents; give one tangent per input"
        )
    if len({id(t) for t in inputs}) != len(inputs):
        raise ValueError("jvp: an input tensor appears twice; its tangent would be ambiguous")
    mode, P = _ForwardMode(), None
    for i, (x, v) in enumerate(zip(inputs, tangents)):
        if not isinstance(x, Tensor) or x.dtype.kind != "f":
            raise TypeError(
                f"jvp: input {i} must be a floating-point Tensor, got "
                f"{x.dtype if isinstance(x, Tensor) else type(x).__name__}"
            )
        array = v._data if isinstance(v, Tensor) else v
        array = x.backend.asarray(array, dtype=x.dtype)
        want = x.shape if not batched else (array.shape[0],) + x.shape if array.ndim else None
        if tuple(array.shape) != want:
            form = "(P,) + its shape" if batched else "its shape"
            raise ValueError(
                f"jvp: tangent {i} has shape {tuple(array.shape)}, input {i} has shape "
                f"{x.shape}; a tangent must have {form}"
            )
        if batched:
            if P is not None and array.shape[0] != P:
                raise ValueError(f"jvp: tangent {i} has {array.shape[0]} directions, tangent 0 has {P}")
            P = array.shape[0]
        mode.tangents[x] = array if batched else array[None]
    previous, _engine._forward = _engine._forward, mode
    try:
        with contextlib.nullcontext() if record else no_grad():
            out = fn(*inputs)
    finally:
        _engine._forward = previous
    outputs = _as_tuple(out)
    P = 1 if not batched else P
    out_tangents = []
    for k, o in enumerate(outputs):
        if not isinstance(o, Tensor):
            raise TypeError(f"jvp: fn must return tensors, output {k} is a {type(o).__name__}")
        t = mode.tangents.get(o)
        if t is None:
            t = o.xp.zeros((P,) + o.shape, dtype=o.dtype if o.dtype.kind == "f" else inputs[0].dtype)
        out_tangents.append(_new(t if batched else t[0], o.backend, False, None, 0))
    if isinstance(out, (tuple, list)):
        return out, type(out)(out_tangents) if isinstance(out, tuple) else out_tangents
    return out, out_tangents[0]


# ---- checkpointing -------------------------------------------------------------------------------


class _Captured:
    """Stands in for forward mode while a checkpointed fn runs: notes every tensor that needs a
    gradient and reaches an op without being one of fn's inputs (weights read through a closure)."""

    def __init__(self, inputs):
        self.known = {id(t) for t in inputs}
        self.tensors = []

    def on_apply(self, op, inputs, result) -> None:
        for t in inputs:
            if t.requires_grad and id(t) not in self.known:
                self.known.add(id(t))
                self.tensors.append(t)


@contextlib.contextmanager
def _replaying(state):
    """Run with the host generator at ``state`` (fn's draws repeat), then put it back as it was."""
    rng = host_rng().bit_generator
    now, rng.state = rng.state, state
    try:
        yield
    finally:
        rng.state = now


def _fingerprint(xp, a):
    """What a checkpoint remembers of an output to tell a rerun that differs: shape, dtype and,
    for floats, (Σ a, Σ a²) — bitwise equal for a deterministic rerun, different (but for a
    coincidence) when a random mask or noise was drawn differently. Other arrays are kept whole."""
    summary = xp.stack([a.sum(), (a * a).sum()]) if a.dtype.kind == "f" else a.copy()
    return a.shape, a.dtype, summary


def _same(xp, f, g) -> bool:
    (shape, dtype, summary), (shape2, dtype2, summary2) = f, g
    return (
        shape == shape2
        and dtype == dtype2
        and bool(
            xp.array_equal(summary, summary2, **({"equal_nan": True} if summary.dtype.kind == "f" else {}))
        )
    )


class Checkpoint(Op):
    """``fn(*inputs)`` as one recorded op that keeps only fn's inputs and outputs.

    Forward: fn runs without recording (none of its intermediate arrays is kept). Backward: fn
    runs again from the saved inputs, recording, and that small graph is walked back with the
    output gradients g: ∂L/∂input = the gradient of Σ_k ⟨g_k, out_k⟩ through fn, exactly what
    backpropagation through fn's own ops would have given. The op's inputs are fn's inputs and
    every tensor needing a gradient that fn read through a closure (a cell's weights): their
    gradients reach them through this op, and in-place changes to them are caught as for any op.

    Randomness drawn from ``backend.host_rng()`` (``nn.Dropout``'s default) is replayed: the
    generator is set back to its state at the forward for the rerun. Anything else that makes
    fn give other values the second time (a generator of its own) is refused: a fingerprint of
    each output (Σ o and Σ o², not the output itself: that would cost the memory saved) is kept,
    and a rerun whose outputs do not match it raises.

    Tangent: fn run again in forward mode with the inputs' tangents (the tangent of fn).
    """

    name = "checkpoint"
    # Set by checkpoint() when it records the op: fn, its saved inputs, the host generator's
    # state at the forward (replayed in the rerun) and each output's fingerprint.
    fn: Callable
    arrays: list
    rng_state: Any
    fingerprints: list

    def forward(self, *arrays, fn, n_explicit, captured):
        raise TypeError("Checkpoint is applied by tinygrad_rnn.checkpoint(fn, *inputs), not Op.apply")

    def _rerun(self):
        """fn again, recording, on fresh leaves holding the saved input values (→ (leaves, outputs))."""
        leaves = [_new(a, self.backend, self.needs_grad(i), None, 0) for i, a in enumerate(self.arrays)]
        with _replaying(self.rng_state), grad_mode(True):
            outs = _as_tuple(self.fn(*leaves))
        for k, (o, saved) in enumerate(zip(outs, self.fingerprints)):
            if not _same(self.xp, _fingerprint(self.xp, o._data), saved):
                raise RuntimeError(
                    f"checkpoint: run again, fn gave other values for output {k}: fn must compute the "
                    "same thing twice. Randomness from tinygrad_rnn's host_rng() (e.g. nn.Dropout() "
                    "without rng=) is replayed; a generator of its own (Dropout(rng=...)) is not. "
                    "Draw the randomness outside fn and pass it in, or do not checkpoint fn."
                )
        return leaves, outs

    def backward(self, grads):
        captured = self.captured
        saved = [(t._op, t.grad) for t in captured]
        try:
            for t in captured:  # stand in as leaves for the rerun: their gradients land in .grad
                t._op, t.grad = None, None
            leaves, outs = self._rerun()
            total = None
            for o, g in zip(outs, grads):
                if g is not None and o.requires_grad:
                    term = (o * g).sum()  # ∂/∂o of Σ ⟨g, o⟩ is g, exactly
                    total = term if total is None else total + term
            if total is not None:
                total.backward()
            in_grads = tuple(t.grad for t in leaves) + tuple(t.grad for t in captured)
        finally:
            for t, (op, grad) in zip(captured, saved):
                t._op, t.grad = op, grad
        return in_grads

    def jvp(self, *tangents):
        mode = _engine._forward
        n = len(self.arrays)
        leaves = [_new(a, self.backend, False, None, 0) for a in self.arrays]
        for leaf, t in zip(leaves, tangents[:n]):
            if t is not None:
                mode.tangents[leaf] = t
        # the captured tensors are the very ones fn reads: their tangents are already in ``mode``
        with _replaying(self.rng_state), grad_mode(False):
            outs = _as_tuple(self.fn(*leaves))
        return tuple(mode.tangents.get(o) for o in outs)


def checkpoint(fn, *inputs):
    """``fn(*inputs)`` with its activations recomputed in the backward instead of kept.

    The values and gradients are those of ``fn(*inputs)``; the forward keeps only the inputs
    and the outputs (tensors, or a tuple of them). ``fn`` must compute the same values when run
    again: draws from ``host_rng()`` replay, other randomness is refused (see :class:`Checkpoint`).
    Without gradients (``no_grad``, or nothing needing one) it is ``fn(*inputs)``.
    """
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            raise TypeError(f"checkpoint: input {i} must be a Tensor, got {type(x).__name__}")
    if not _engine._grad_enabled:
        return fn(*inputs)
    rng_state = host_rng().bit_generator.state
    spy, previous = _Captured(inputs), _engine._forward
    _engine._forward = spy
    try:
        with no_grad():
            out = fn(*inputs)
    finally:
        _engine._forward = previous
    outputs = _as_tuple(out)
    for k, o in enumerate(outputs):
        if not isinstance(o, Tensor):
            raise TypeError(f"checkpoint: fn must return tensors, output {k} is a {type(o).__name__}")
    every = tuple(inputs) + tuple(spy.tensors)
    requires_grad = any(t.requires_grad for t in every)
    if not requires_grad and _engine._forward is None:
        return out
    backend = outputs[0].backend
    op = Checkpoint.__new__(Checkpoint)
    op.xp, op.backend, op.fn, op.rng_state = backend.xp, backend, fn, rng_state
    op.arrays = [t._data for t in inputs]
    op.captured = spy.tensors
    op.fingerprints = [_fingerprint(backend.xp, o._data) for o in outputs]
    op.multi_output, op.n_outputs = True, len(outputs)
    if requires_grad:
        _record(op, every)
    result = tuple(
        _new(o._data, backend, requires_grad, op if requires_grad else None, i) for i, o in enumerate(outputs)
    )
    if _engine._tracer is not None:
        _engine._tracer.on_forward(op, every, tuple(o._data for o in outputs), requires_grad)
    if _engine._forward is not None:
        _engine._forward.on_apply(op, every, result)
    return result if isinstance(out, (tuple, list)) else result[0]
