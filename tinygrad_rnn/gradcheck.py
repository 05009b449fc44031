"""Check analytic gradients (autograd) against finite differences, in float64.

``gradcheck(fn, inputs)`` compares ∂/∂x of ``L = Σ u ⊙ fn(inputs)`` — ``u`` a random upstream
gradient, never all ones — computed two ways:

* ``mode="direction"`` (default, Chainer's ``check_backward``): one random unit direction ``d``
  over all inputs at once, every component non-negligible. The numeric directional derivative
  ``Σ u ⊙ (fn(x + εd) − fn(x − εd)) / 2ε`` must equal ``Σ ⟨∂L/∂x, d⟩``. Two extra forward passes,
  whatever the input size — which is what makes a whole unrolled RNN checkable. It catches any
  wrong gradient that moves that one number by more than the tolerance: a wrong formula, a
  missing transpose or sum, a wrong sign. It can miss an error confined to a few elements of a
  large input: each element enters the sum with a weight of about 1/√n (n elements in all), so
  0.25 % off in one element of a (30, 30) input stays below rtol (tests/test_testing_kit.py
  plants exactly that).
* ``mode="full"``: central differences for every element of every input, ``2·size`` forward
  passes (small inputs only). It sees an error in any single element above the tolerance.

The outputs are differenced element by element (``out₊ − out₋``, then weighted by ``u`` and
summed), so one large output cannot swamp the change of the others. What a difference at ``ε``
cannot resolve is counted, not ignored: each output element carries a rounding error of about
``ε_mach·|out|`` (``ε_mach`` = 2.2e-16 in float64, 1.2e-7 in float32), so the numeric derivative
may be off by up to ``b = Σ |u| ε_mach (|out₊| + |out₋|) / 2ε`` over the output elements that
depend on the shifted inputs (those that move at ±ε, and those that did not move but do at a
shift of 1e-3). ``b`` is added to the tolerance. Where ``b`` is larger than the tolerance itself
nothing can be concluded at that ``ε``: with the default ``eps`` the check retries at a larger
one (``b`` shrinks as 1/ε; up to ε = 1e-3 in float64, 1e-2 in float32), else it raises
:class:`GradcheckInconclusive` — not a :class:`GradcheckError` — saying what to try. The inputs'
own rounding (``x + εd`` is not exact for a large ``x``) is accounted for exactly: the step is
the difference of the two shifted inputs as stored.

Tolerances: a pass means ``|numeric − analytic| ≤ atol + rtol·|numeric| + b``, with
``eps=1e-6, atol=1e-5, rtol=1e-3`` in float64 (float32, only with ``allow_float32=True``:
``eps=1e-3, atol=1e-2, rtol=1e-2``).

It also fails when ``fn`` changes its inputs, or when two backward passes disagree. The same
tensor may be passed twice (``gradcheck(fn, [x, x])``): it is checked once, with the gradient
summed over both uses.

Not seen: an error smaller than the tolerance (0.1 % relative, 1e-5 absolute in float64);
rounding inside ``fn`` far above its outputs' magnitude, which no output shows — ``(a + 1e8) −
1e8`` is reported as a wrong gradient; a dependence of an output so weak that even a shift of
1e-3 leaves its last bit unchanged (it then counts as independent).
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor

FLOAT64_DEFAULTS = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}
FLOAT32_DEFAULTS = {"eps": 1e-3, "atol": 1e-2, "rtol": 1e-2}
# With the default eps, an inconclusive comparison is retried at a larger eps up to this one:
# the central difference's own error grows as eps², and stays far below rtol up to here.
MAX_EPS = {"float64": 1e-3, "float32": 1e-2}
# The shift that tells which outputs depend on the shifted inputs at all (see _Measure.derivative):
# large enough to move any output whose dependence could matter, well inside the strategies' GAP.
PROBE = 1e-3


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree; the message says where and by how much."""


class GradcheckInconclusive(Exception):
    """Finite differences at this eps cannot tell a right gradient from a wrong one.

    The outputs are so large that their rounding moves the numeric derivative by more than the
    tolerance. Not a :class:`GradcheckError`: nothing wrong was found, nothing was shown right.
    """


def _as_outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _host_outputs(fn, inputs):
    """fn's outputs as host arrays in their own dtype (for the rounding bound)."""
    return [out.numpy() for out in _as_outputs(fn(*inputs))]


def _analytic(fn, inputs, upstream):
    for t in inputs:
        t.grad = None
    outs = _as_outputs(fn(*inputs))
    for out, u in zip(outs, upstream):
        if out.requires_grad:
            out.backward(Tensor(u, device=out.device, dtype=out.dtype))
    return [
        np.zeros(t.shape) if t.grad is None else t.backend.to_host(t.grad).astype(np.float64) for t in inputs
    ]


def _machine_eps(dtype) -> float:
    return float(np.finfo(dtype).eps) if np.dtype(dtype).kind == "f" else 0.0


class _Measure:
    """Runs fn on shifted inputs and turns the outputs into a numeric derivative and its rounding bound."""

    def __init__(self, fn, inputs, upstream, base_outputs, atol, rtol):
        self.fn, self.inputs, self.upstream, self.base = fn, inputs, upstream, base_outputs
        self.abs_upstream = [np.abs(u) for u in upstream]
        self.sum_abs_upstream = [float(np.sum(a)) for a in self.abs_upstream]
        self.atol, self.rtol = atol, rtol

    def negligible(self, numeric):
        """A rounding bound below this is added as it is, without a closer look: a twentieth of the
        tolerance."""
        return 0.05 * (self.atol + self.rtol * abs(numeric))

    def outputs(self, shifted):
        """fn's host outputs with ``inputs[i].data`` set to ``shifted[i]``; the inputs are restored."""
        bases = {i: self.inputs[i].data for i in shifted}
        try:
            for i, array in shifted.items():
                self.inputs[i].data = array
            return _host_outputs(self.fn, self.inputs)
        finally:  # even if fn fails: the inputs are left as they were
            for i, data in bases.items():
                self.inputs[i].data = data

    def derivative(self, plus, minus, step, probe):
        """``Σ u ⊙ (out₊ − out₋) / step`` and the bound on what the outputs' rounding adds to it.

        Each output element is differenced first, so a large element does not swamp the change
        of a small one. An element carries up to ``ε_mach·|out|`` of rounding on each side; the
        bound sums ``|u| ε_mach (|out₊| + |out₋|) / step`` over the elements that depend on the
        shifted inputs. One that did not move at all may still depend on them (a change below
        its last bit); ``probe()`` — the shifted inputs of a much larger shift — tells which do.
        """
        out_plus, out_minus = self.outputs(plus), self.outputs(minus)
        numeric, quick = 0.0, 0.0
        for p, m, u, total_u in zip(out_plus, out_minus, self.upstream, self.sum_abs_upstream):
            diff = p.astype(np.float64, copy=False) - m  # exact for two nearby floats
            numeric += float(np.sum(u * diff))
            if p.size:  # an upper bound over all elements, cheaply
                quick += (
                    total_u * _machine_eps(p.dtype) * (float(np.max(np.abs(p))) + float(np.max(np.abs(m))))
                )
        numeric /= step
        if not quick / step > self.negligible(numeric):  # the common case: far below the tolerance
            return numeric, quick / step
        moved_bound, still_bound, still = 0.0, 0.0, []
        for p, m, a in zip(out_plus, out_minus, self.abs_upstream):
            tiny = _machine_eps(p.dtype)
            p, m = p.astype(np.float64, copy=False), m.astype(np.float64, copy=False)
            each = a * tiny * (np.abs(p) + np.abs(m))
            moved = p != m
            moved_bound += float(np.sum(each, where=moved))
            still_bound += float(np.sum(each, where=~moved))
            still.append((each, ~moved))
        if still_bound / step > self.negligible(numeric):
            # Could matter: count only the unmoved elements that a larger shift does move.
            with np.errstate(all="ignore"):  # a far shift may leave fn's domain: NaN counts as moved
                far = self.outputs(probe())
            still_bound = sum(
                float(np.sum(each, where=unmoved & (f != b)))
                for f, b, (each, unmoved) in zip(far, self.base, still)
            )
        return numeric, (moved_bound + still_bound) / step


def _describe(i, t, aliases=()):
    label = f"input {i}" + (f" ({t.name})" if getattr(t, "name", None) else "")
    also = (
        f", also passed as input{'s' if len(aliases) > 1 else ''} {', '.join(map(str, aliases))}"
        if aliases
        else ""
    )
    return f"{label} of shape {t.shape}{also}"


def gradcheck(
    fn, inputs, *, eps=None, atol=None, rtol=None, mode="direction", seed=None, allow_float32=False
) -> bool:
    """Return True if autograd matches finite differences, else raise :class:`GradcheckError`.

    ``fn(*inputs)`` returns a tensor (or a tuple of tensors). Only inputs with
    ``requires_grad=True`` are checked; one tensor passed several times is checked once.
    A pass means ``|numeric − analytic| ≤ atol + rtol·|numeric| + b``, ``b`` the bound on the
    outputs' rounding (see the module docstring). Defaults: eps=1e-6, atol=1e-5, rtol=1e-3 for
    float64. float32 inputs are refused unless ``allow_float32=True``, which loosens the defaults
    to eps=1e-3, atol=1e-2, rtol=1e-2 (float32's 7 digits leave little room for differences).
    ``seed`` fixes the upstream gradient and the direction (None: fresh ones on every call).

    Raises :class:`GradcheckInconclusive` where ``b`` exceeds the tolerance even at the largest
    eps tried (outputs far from 1 in magnitude): the message says what to try.
    """
    if mode not in ("direction", "full"):
        raise ValueError(f"mode must be 'direction' or 'full', got {mode!r}")
    inputs = list(inputs)
    checked: list[int] = []  # positions of the tensors to check
    aliases: dict[int, list[int]] = {}  # first position -> later positions of the same tensor
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad:
            first = next((j for j in checked if inputs[j] is t), None)
            if first is None:
                checked.append(i)
            else:  # the same tensor again: one perturbation moves all its uses
                aliases.setdefault(first, []).append(i)
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    is32 = any(inputs[i].dtype != np.float64 for i in checked)
    if is32 and not allow_float32:
        bad = ", ".join(f"input {i}: {inputs[i].dtype}" for i in checked if inputs[i].dtype != np.float64)
        raise TypeError(
            f"gradcheck needs float64 inputs ({bad}); finite differences in float32 are "
            "too coarse. Pass allow_float32=True to check anyway with looser tolerances."
        )
    defaults = FLOAT32_DEFAULTS if is32 else FLOAT64_DEFAULTS
    adaptive = eps is None
    eps = defaults["eps"] if eps is None else eps
    atol = defaults["atol"] if atol is None else atol
    rtol = defaults["rtol"] if rtol is None else rtol
    max_eps = MAX_EPS["float32" if is32 else "float64"]
    rng = np.random.default_rng(seed)

    before = [t.numpy() for t in inputs if isinstance(t, Tensor)]
    base_outputs = _host_outputs(fn, inputs)
    upstream = [rng.standard_normal(o.shape) for o in base_outputs]
    grads = _analytic(fn, inputs, upstream)
    again = _analytic(fn, inputs, upstream)
    for i in checked:
        if not np.array_equal(grads[i], again[i], equal_nan=True):  # a NaN is a mismatch below, not this
            worst = np.unravel_index(np.argmax(np.abs(grads[i] - again[i])), grads[i].shape)
            raise GradcheckError(
                f"two backward passes disagree on {_describe(i, inputs[i])} at element {worst}: "
                f"{grads[i][worst]!r} then {again[i][worst]!r}"
            )
    after = [t.numpy() for t in inputs if isinstance(t, Tensor)]
    for k, (b, a) in enumerate(zip(before, after)):
        if not np.array_equal(b, a, equal_nan=True):
            raise GradcheckError(f"fn changed its input {k} in place (shape {b.shape}); it must not")

    measure = _Measure(fn, inputs, upstream, base_outputs, atol, rtol)
    hosts = {i: inputs[i].numpy().astype(np.float64) for i in checked}

    def verify(where, at):
        """``at(eps) -> (numeric, analytic, rounding bound)``; raise unless they agree."""
        step_eps = eps
        while True:
            numeric, analytic, bound = at(step_eps)
            err = abs(numeric - analytic)
            tol = atol + rtol * abs(numeric)
            rounding = f", rounding bound {bound:.3g}" if bound > 1e-3 * tol else ""
            if not err <= tol + bound:  # also NaN
                rel = err / max(abs(numeric), 1e-300)
                raise GradcheckError(
                    f"gradient mismatch at {where}: numeric {numeric:.10g}, analytic {analytic:.10g}, "
                    f"abs error {err:.3g} (atol {atol:g}), rel error {rel:.3g} (rtol {rtol:g}), "
                    f"eps {step_eps:g}{rounding}"
                )
            if bound <= tol:
                return
            # Right within the rounding, but the rounding is larger than the tolerance itself:
            # the bound shrinks as 1/eps, so a larger eps may resolve it.
            wanted = step_eps * 2 * bound / tol
            if adaptive and step_eps < max_eps:
                step_eps = min(max(wanted, 10 * step_eps), max_eps)
                continue
            raise GradcheckInconclusive(
                f"inconclusive at eps {step_eps:g}: at {where} the outputs' rounding can move the numeric "
                f"derivative by up to {bound:.3g}, more than the tolerance {tol:.3g} (atol {atol:g} + "
                f"rtol {rtol:g}·|numeric|); numeric {numeric:.10g} and analytic {analytic:.10g} agree "
                f"within that, but so would a gradient off by as much. Try eps={wanted:.2g} or larger, "
                "outputs of smaller magnitude (subtract a large constant inside fn, or scale it), "
                "or float64 if fn computes in float32."
            )

    if mode == "direction":
        directions = {}
        for i in checked:
            # |d| in [0.5, 1] before normalising: every component moves, none by a negligible bit
            d = rng.uniform(0.5, 1.0, inputs[i].shape) * rng.choice([-1.0, 1.0], inputs[i].shape)
            directions[i] = d
        norm = np.sqrt(sum(float(np.sum(d * d)) for d in directions.values()))
        directions = {i: d / norm for i, d in directions.items()}

        def along(chosen):
            def at(step_eps):
                plus = {i: (hosts[i] + step_eps * d).astype(inputs[i].dtype) for i, d in chosen.items()}
                minus = {i: (hosts[i] - step_eps * d).astype(inputs[i].dtype) for i, d in chosen.items()}
                numeric, bound = measure.derivative(
                    plus,
                    minus,
                    2 * step_eps,
                    lambda: {
                        i: (hosts[i] + PROBE * d / np.max(np.abs(d))).astype(inputs[i].dtype)
                        for i, d in chosen.items()
                    },
                )
                # the step actually taken, as stored (x + εd is rounded for a large x)
                analytic = sum(
                    float(np.sum(grads[i] * (plus[i].astype(np.float64) - minus[i]))) for i in chosen
                ) / (2 * step_eps)
                return numeric, analytic, bound

            return at

        try:
            verify(f"a random direction over inputs {checked} (seed {seed})", along(directions))
        except GradcheckError:
            for i in checked:  # find which input is wrong, to name it in the report
                try:
                    verify(
                        f"a random direction over {_describe(i, inputs[i], aliases.get(i))} (seed {seed})",
                        along({i: directions[i]}),
                    )
                except GradcheckInconclusive:
                    continue  # this input alone cannot decide; the error over all of them stands
            raise
    else:
        for i in checked:
            t, host, dtype = inputs[i], hosts[i], inputs[i].dtype
            for idx in np.ndindex(*t.shape):

                def at(step_eps, idx=idx):
                    plus, minus = host.astype(dtype), host.astype(dtype)
                    plus[idx] = host[idx] + step_eps
                    minus[idx] = host[idx] - step_eps
                    step = float(plus[idx]) - float(minus[idx])  # the step actually taken

                    def probe():
                        far = host.astype(dtype)
                        far[idx] = host[idx] + PROBE * max(1.0, abs(host[idx]))
                        return {i: far}

                    numeric, bound = measure.derivative({i: plus}, {i: minus}, step, probe)
                    return numeric, float(grads[i][idx]), bound

                verify(f"{_describe(i, t, aliases.get(i))}, element {idx}", at)
    return True
