"""One call to check an op, or any function of tensors, on many drawn inputs.

::

    from tinygrad_rnn.testing import check_op
    check_op(Softplus, reference=lambda a: np.logaddexp(0, a))

draws float64 inputs with Hypothesis and, for every drawn input, checks that

1. the forward pass equals ``reference`` (when one is given), element by element, within
   ``forward_rtol=1e-7``, ``forward_atol=1e-10``;
2. one backward pass with a random upstream gradient: every op's ``backward`` returns, for each
   input that wants one, a gradient of that input's shape and dtype — checked on what the
   backward returns, before the engine sums or casts it (a backward computing in float32 is
   caught, though the leaf's ``.grad`` would come out float64) — and every ``.grad`` is an array
   of its input's device;
3. :func:`~tinygrad_rnn.gradcheck.gradcheck` passes in each of ``modes`` (both by default),
   float64, ``eps=1e-6``, ``atol=1e-5``, ``rtol=1e-3`` (``eps``, ``atol``, ``rtol`` change them):

   * ``"direction"``: one random direction over all inputs at once, two extra forward passes.
     Catches a wrong formula, a missing transpose or sum, a wrong sign — anything that moves the
     directional derivative by more than the tolerance. Misses an error confined to one element
     of a large input: 0.25 % off in one element of a (30, 30) input stays under rtol.
   * ``"full"``: central differences for every element, ``2·size`` forward passes. Catches an
     error in any single element above 0.1 % relative (1e-5 absolute).

   Both use a random upstream gradient (a bug that an all-ones upstream hides is caught), both
   count the rounding of large outputs (see :mod:`tinygrad_rnn.gradcheck`), and neither sees
   an error below the tolerance or behaviour only float32 shows.

What is drawn (see :mod:`tinygrad_rnn.testing.strategies`):

* shapes: by default one input of 0 to 3 axes, each of size 1 to 4; ``shapes=n`` draws ``n``
  shapes that broadcast together (sizes of 1, missing leading axes), the way to ask for
  broadcasting; fixed shapes, or any strategy: ``shapes=strategies.shapes(max_dims=4,
  max_side=8)``, ``shapes=strategies.broadcastable_shapes(2, max_side=6)``;
* values: floats in [−3, 3], kept ``GAP`` = 0.05 from every point of ``avoid``; widen with
  ``values=lambda shape: floats(shape, -10, 10)``, one function per input for different ranges;
* examples: 25 under the test suite's ``ci`` profile; in general the active Hypothesis
  profile's ``max_examples`` (100 under Hypothesis's default), or ``max_examples=``.

So nothing outside the draw range is checked: values near a point in ``avoid``, beyond ±3, or
shapes larger than 4 per axis.

Each example's upstream gradient and direction are seeded from the drawn arrays, so Hypothesis
replays a failure identically. On the first failure it shrinks the input to a small failing one
and raises the error — a :class:`~tinygrad_rnn.gradcheck.GradcheckError` naming the mode, the
input, the element, the numeric and the analytic value — with the drawn arrays in a note
("Falsifying example: …"). When it finds several distinct failures, the first GradcheckError
is raised, with a note saying how many there were. Outputs too large for any eps tried raise
:class:`~tinygrad_rnn.gradcheck.GradcheckInconclusive` instead.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure

from .. import tensor as _engine
from ..gradcheck import GradcheckError, gradcheck
from ..tensor import Op, Tensor
from . import strategies as S

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup as _ExceptionGroup
else:  # Python 3.10: Hypothesis depends on the backport
    from exceptiongroup import BaseExceptionGroup as _ExceptionGroup

MODES = ("direction", "full")


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check_op` checked: its printout is one sentence."""

    name: str
    examples: int
    modes: tuple
    reference: bool
    device: str

    def __str__(self):
        what = ["forward = reference"] if self.reference else []
        what += [
            f"gradients are {self.device} arrays of the inputs' shapes and dtypes",
            f"gradcheck ({' + '.join(self.modes)}) passed" if self.modes else "no gradcheck",
        ]
        return f"{self.name}: {self.examples} drawn inputs on {self.device}: {', '.join(what)}"

    __repr__ = __str__


def _as_shape(x):
    """``x`` as a shape tuple if it is one (a sequence of non-negative ints, ``()`` included)."""
    if isinstance(x, (tuple, list)) and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in x
    ):
        if any(n < 0 for n in x):
            raise ValueError(f"a shape has non-negative sides, got {tuple(x)}")
        return tuple(int(n) for n in x)
    return None


def _shape_tuple(drawn) -> tuple:
    """One shape, or a sequence of shapes, as a tuple of shapes (one per input)."""
    one = _as_shape(drawn)
    if one is not None:
        return (one,)
    shapes = tuple(_as_shape(s) for s in drawn)
    if not shapes or any(s is None for s in shapes):
        raise ValueError(f"shapes must be a shape like (2, 3) or a list of them, got {drawn!r}")
    return shapes


def _shapes_strategy(shapes):
    """A strategy for the input shapes, one tuple per example (see :func:`check_op`)."""
    if shapes is None:
        return S.shapes().map(_shape_tuple)
    if isinstance(shapes, int) and not isinstance(shapes, bool):
        if shapes < 1:
            raise ValueError(f"shapes=n needs n >= 1 inputs, got {shapes}")
        return S.broadcastable_shapes(shapes)
    if isinstance(shapes, st.SearchStrategy):
        return shapes.map(_shape_tuple)
    return st.just(_shape_tuple(shapes))


@st.composite
def _drawn_arrays(draw, shapes, values):
    """One array per drawn shape, from ``values`` (one function for all inputs, or one each)."""
    shape_tuple = draw(shapes)
    if not callable(values) and len(values) != len(shape_tuple):
        raise ValueError(
            f"values gives {len(values)} functions for {len(shape_tuple)} inputs (shapes {shape_tuple})"
        )
    return tuple(draw((values if callable(values) else values[i])(s)) for i, s in enumerate(shape_tuple))


def _as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _compare_forward(name, k, actual, expected, rtol, atol):
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: output {k} has shape {actual.shape}, the reference {expected.shape}")
    close = np.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
    if not close.all():
        bad = np.argwhere(~close)
        worst = tuple(bad[0])
        raise AssertionError(
            f"{name}: output {k} differs from the reference at {len(bad)} of {actual.size} elements; "
            f"first at element {worst}: got {actual[worst]!r}, reference {expected[worst]!r} "
            f"(rtol {rtol:g}, atol {atol:g})"
        )


def _seed_of(arrays) -> int:
    """A seed drawn from the input itself: Hypothesis replays a failing input with the same
    upstream gradient and direction, so a failure is a failure every time (never "flaky")."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return int.from_bytes(h.digest()[:8], "little")


class _BackwardAudit:
    """Looks at what every op's ``backward`` returns, before the engine casts or sums anything.

    Installed as the engine's tracer for one backward pass (the hook ``bptt.trace()`` uses; an
    outer trace still gets every call): a gradient for an input must have that input's shape and
    dtype — the engine would silently cast a float32 gradient of a float64 leaf.
    """

    def __init__(self, name, outer):
        self.name, self.outer, self.inputs, self.problem = name, outer, {}, None

    def on_step(self, t):
        if self.outer is not None:
            self.outer.on_step(t)

    def on_forward(self, op, inputs, out, requires_grad):
        if requires_grad:
            self.inputs[id(op)] = (op, [(tuple(t.shape), t.dtype) for t in inputs])
        if self.outer is not None:
            self.outer.on_forward(op, inputs, out, requires_grad)

    def on_backward(self, op, out_grads, in_grads):
        if self.outer is not None:
            self.outer.on_backward(op, out_grads, in_grads)
        recorded = self.inputs.get(id(op))
        if recorded is None or self.problem is not None:
            return
        grads = in_grads if isinstance(in_grads, tuple) else (in_grads,)
        if len(grads) != len(recorded[1]):
            self.problem = (
                f"{self.name}: the backward of {op.name} returned {len(grads)} gradients "
                f"for {len(recorded[1])} inputs"
            )
            return
        for i, (g, (shape, dtype)) in enumerate(zip(grads, recorded[1])):
            if g is None or not op.inputs[i].requires_grad:
                continue
            g_shape, g_dtype = tuple(getattr(g, "shape", ())), getattr(g, "dtype", None)
            if g_shape != shape or g_dtype != dtype:
                self.problem = (
                    f"{self.name}: the backward of {op.name} returns the gradient of input {i} "
                    f"with shape {g_shape} and dtype {g_dtype}; want the input's shape {shape} "
                    f"and dtype {dtype} (checked before the engine casts it)"
                )
                return


def _first_failure(group):
    """The first GradcheckError in a (nested) exception group, else its first exception."""
    leaves = []

    def walk(e):
        if isinstance(e, _ExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    first = next((e for e in leaves if isinstance(e, GradcheckError)), leaves[0] if leaves else group)
    return first, len(leaves)


def check_op(
    op,
    shapes=None,
    *,
    values=None,
    avoid=(),
    inputs=None,
    params=None,
    reference=None,
    modes=MODES,
    device="cpu",
    max_examples=None,
    seed=0,
    eps=None,
    atol=None,
    rtol=None,
    forward_rtol=1e-7,
    forward_atol=1e-10,
) -> CheckResult:
    """Check ``op`` on drawn inputs (see the module docstring); raise on the first failure.

    ``op``: an :class:`~tinygrad_rnn.Op` subclass (run as ``op.apply(*tensors, **params)``) or a
    function of tensors (run as ``op(*tensors, **params)``) returning a tensor or a tuple of them.

    The inputs (float64 arrays, differentiable; integer arrays are constants such as ids):

    * ``shapes``: None (default) one input of a drawn shape of up to 3 axes; an int ``n``, ``n``
      inputs of drawn shapes that broadcast together; a shape ``(2, 3)`` or a list of shapes
      ``[(2, 3), (3, 4)]`` (fixed); or a Hypothesis strategy drawing either.
    * ``values``: a function ``shape -> strategy of arrays`` for every input, or a list with one
      per input (e.g. ``[floats, nonzero_floats]`` for a division). Default: :func:`floats` in
      [−3, 3] kept ``GAP`` from every point of ``avoid`` (e.g. ``avoid=(0,)`` for relu).
    * ``inputs``: instead of all that, a strategy drawing the tuple of arrays itself.

    ``reference(*arrays, **params)``: the expected forward output(s) in NumPy, compared with
    ``forward_rtol``/``forward_atol``. ``modes``: the gradcheck modes (``eps``, ``atol``, ``rtol``
    go to :func:`~tinygrad_rnn.gradcheck.gradcheck`; its float64 defaults when None).
    ``max_examples``: default :func:`examples(25) <tinygrad_rnn.testing.strategies.examples>`,
    which follows the active Hypothesis profile. ``seed``: Hypothesis's seed (default 0: the same
    inputs on every run, so a result can be reproduced; None: fresh random inputs every run).
    Failing inputs are not saved (no example database; Hypothesis may still keep its own small
    cache in ``.hypothesis/``).

    Returns a :class:`CheckResult`, whose printout says what passed. Raises the first failure:
    a :class:`~tinygrad_rnn.gradcheck.GradcheckError` for a wrong gradient, an AssertionError
    for a wrong forward or a gradient of the wrong shape, dtype or device,
    :class:`~tinygrad_rnn.gradcheck.GradcheckInconclusive` where finite differences cannot decide.
    """
    params = dict(params or {})
    modes = tuple(modes)
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"modes must be taken from {MODES}, got {mode!r}")
    if isinstance(op, type) and issubclass(op, Op):
        name = op.__name__ if op.name == Op.name else op.name
        fn = functools.partial(op.apply, **params)
    elif isinstance(op, Op):
        raise TypeError(f"pass the Op class ({type(op).__name__}), not an instance of it")
    elif callable(op):
        name = getattr(op, "__name__", None) or repr(op)
        fn = functools.partial(op, **params) if params else op
    else:
        raise TypeError(f"check_op needs an Op subclass or a function of tensors, got {op!r}")

    if inputs is not None:
        if shapes is not None or values is not None or avoid:
            raise ValueError("inputs= draws the arrays itself: give it alone, without shapes/values/avoid")
        drawn = inputs.map(lambda a: tuple(a) if isinstance(a, (tuple, list)) else (a,))
    else:
        if values is None:
            values = functools.partial(S.floats, avoid=tuple(avoid))
        elif avoid:
            raise ValueError("give avoid= or values=, not both (pass avoid to your values function)")
        elif not callable(values):
            values = list(values)
        drawn = _drawn_arrays(_shapes_strategy(shapes), values)

    count = [0]

    def check_one(arrays):
        count[0] += 1
        arrays = tuple(np.asarray(a) for a in arrays)
        seed = _seed_of(arrays)
        tensors = [Tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
        if not any(t.requires_grad for t in tensors):
            raise ValueError(f"{name}: no float input to differentiate (dtypes {[a.dtype for a in arrays]})")
        rng = np.random.default_rng(seed)
        audit = _BackwardAudit(name, _engine._tracer)  # sees the ops recorded, then their backward
        _engine._tracer = audit
        try:
            outs = _as_list(fn(*tensors))
            for k, out in enumerate(outs):
                if not isinstance(out, Tensor):
                    raise TypeError(f"{name}: output {k} is a {type(out).__name__}, not a Tensor")
            if reference is not None:
                expected = _as_list(reference(*arrays, **params))
                if len(expected) != len(outs):
                    raise AssertionError(
                        f"{name} returned {len(outs)} outputs, the reference {len(expected)}"
                    )
                for k, (out, exp) in enumerate(zip(outs, expected)):
                    _compare_forward(name, k, out.numpy(), exp, forward_rtol, forward_atol)

            # One backward pass: each gradient must be an array of the input's device, shape and
            # dtype, both as the op's backward returns it and as it lands in .grad.
            if not any(out.requires_grad for out in outs):
                raise AssertionError(
                    f"{name}: no output requires grad although its inputs do "
                    "(the op was not recorded on the tape)"
                )
            for out in outs:
                if out.requires_grad:
                    out.backward(Tensor(rng.standard_normal(out.shape), device=device, dtype=out.dtype))
        finally:
            _engine._tracer = audit.outer
        if audit.problem is not None:
            raise AssertionError(audit.problem)
        for i, t in enumerate(tensors):
            g = t.grad
            if g is None:
                continue  # no path to this input; gradcheck then expects a zero gradient
            if not isinstance(g, t.backend.array_type) or tuple(g.shape) != t.shape or g.dtype != t.dtype:
                raise AssertionError(
                    f"{name}: the gradient of input {i} is a {type(g).__name__} of shape "
                    f"{tuple(getattr(g, 'shape', ()))} and dtype {getattr(g, 'dtype', '?')}; want a "
                    f"{t.backend.array_type.__name__} of shape {t.shape} and dtype {t.dtype} on {t.device}"
                )

        for mode in modes:
            try:
                gradcheck(fn, tensors, mode=mode, seed=seed, eps=eps, atol=atol, rtol=rtol)
            except GradcheckError as e:
                raise GradcheckError(f"{name}, gradcheck mode {mode!r}: {e}") from None

    budget = S.examples(25) if max_examples is None else max_examples
    profile = settings.default
    assert profile is not None  # Hypothesis loads a profile when it is imported
    # No example database on disk; no "explain" phase (line numbers of gradcheck.py say nothing
    # about the op, and finding them re-runs the failing example many times).
    run = settings(
        max_examples=budget,
        deadline=None,
        database=None,
        phases=[p for p in profile.phases if p is not Phase.explain],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(arrays=drawn)(check_one))
    if seed is not None:
        run = hypothesis_seed(seed)(run)
    try:
        run()
    except _ExceptionGroup as group:
        # Several distinct failures, or one that did not replay: the user catches one error.
        first, n = _first_failure(group)
        if first is group:
            raise
        if isinstance(group, FlakyFailure):  # the checks are seeded from the input: fn itself varies
            note = (
                f"{name}: Hypothesis could not replay this failure (it passed on a second run "
                "of the same input): is the op deterministic?"
            )
        elif n > 1:
            note = (
                f"{name}: Hypothesis found {n} distinct failures; this is the first "
                f"{'GradcheckError' if isinstance(first, GradcheckError) else 'of them'}."
            )
        else:
            note = None
        if note:
            first.__notes__ = [*getattr(first, "__notes__", []), note]  # add_note, also on 3.10
        raise first from None
    return CheckResult(
        name=name, examples=count[0], modes=modes, reference=reference is not None, device=str(device)
    )
