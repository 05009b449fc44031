"""Check analytic gradients (autograd) against finite differences, in float64.

``gradcheck(fn, inputs)`` compares ∂/∂x of ``L = Σ u ⊙ fn(inputs)`` — ``u`` a random upstream
gradient, never all ones — computed two ways:

* ``mode="direction"`` (default, Chainer's ``check_backward``): one random unit direction ``d``
  over all inputs at once, every component non-negligible. The numeric directional derivative
  ``(L(x + εd) − L(x − εd)) / 2ε`` must equal ``Σ ⟨∂L/∂x, d⟩``. Two extra forward passes, whatever
  the input size — which is what makes a whole unrolled RNN checkable.
* ``mode="full"``: central differences for every element of every input (small inputs only).

It also fails when ``fn`` changes its inputs, or when two backward passes disagree.
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor

FLOAT32_DEFAULTS = {"eps": 1e-3, "atol": 1e-2, "rtol": 1e-2}


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree; the message says where and by how much."""


def _as_outputs(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _loss(fn, inputs, upstream) -> float:
    """L = Σ_k Σ u_k ⊙ out_k, as a host float64 number."""
    total = 0.0
    for out, u in zip(_as_outputs(fn(*inputs)), upstream):
        total += float(np.sum(out.numpy().astype(np.float64) * u))
    return total


def _analytic(fn, inputs, upstream):
    for t in inputs:
        t.grad = None
    outs = _as_outputs(fn(*inputs))
    for out, u in zip(outs, upstream):
        if out.requires_grad:
            out.backward(Tensor(u, device=out.device, dtype=out.dtype))
    return [np.zeros(t.shape) if t.grad is None else t.backend.to_host(t.grad).astype(np.float64)
            for t in inputs]


def _describe(i, t):
    label = f"input {i}" + (f" ({t.name})" if getattr(t, "name", None) else "")
    return f"{label} of shape {t.shape}"


def gradcheck(fn, inputs, *, eps=None, atol=None, rtol=None, mode="direction", seed=None,
              allow_float32=False) -> bool:
    """Return True if autograd matches finite differences, else raise :class:`GradcheckError`.

    ``fn(*inputs)`` returns a tensor (or a tuple of tensors). Only inputs with
    ``requires_grad=True`` are checked. A pass means ``|numeric − analytic| ≤ atol + rtol·|numeric|``.
    Defaults: eps=1e-6, atol=1e-5, rtol=1e-3 for float64. float32 inputs are refused unless
    ``allow_float32=True``, which loosens the defaults to eps=1e-3, atol=1e-2, rtol=1e-2
    (float32's 7 digits leave little room for differences).
    """
    if mode not in ("direction", "full"):
        raise ValueError(f"mode must be 'direction' or 'full', got {mode!r}")
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, nothing to check")
    is32 = any(inputs[i].dtype != np.float64 for i in checked)
    if is32 and not allow_float32:
        bad = ", ".join(f"input {i}: {inputs[i].dtype}" for i in checked if inputs[i].dtype != np.float64)
        raise TypeError(f"gradcheck needs float64 inputs ({bad}); finite differences in float32 are "
                        "too coarse. Pass allow_float32=True to check anyway with looser tolerances.")
    defaults = FLOAT32_DEFAULTS if is32 else {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}
    eps = defaults["eps"] if eps is None else eps
    atol = defaults["atol"] if atol is None else atol
    rtol = defaults["rtol"] if rtol is None else rtol
    rng = np.random.default_rng(seed)

    before = [t.numpy() for t in inputs if isinstance(t, Tensor)]
    outs = _as_outputs(fn(*inputs))
    upstream = [rng.standard_normal(o.shape) for o in outs]
    grads = _analytic(fn, inputs, upstream)
    again = _analytic(fn, inputs, upstream)
    for i in checked:
        if not np.array_equal(grads[i], again[i], equal_nan=True):  # a NaN is a mismatch below, not this
            worst = np.unravel_index(np.argmax(np.abs(grads[i] - again[i])), grads[i].shape)
            raise GradcheckError(
                f"two backward passes disagree on {_describe(i, inputs[i])} at element {worst}: "
                f"{grads[i][worst]!r} then {again[i][worst]!r}")
    after = [t.numpy() for t in inputs if isinstance(t, Tensor)]
    for k, (b, a) in enumerate(zip(before, after)):
        if not np.array_equal(b, a, equal_nan=True):
            raise GradcheckError(f"fn changed its input {k} in place (shape {b.shape}); it must not")

    def compare(numeric, analytic, where):
        err = abs(numeric - analytic)
        if not err <= atol + rtol * abs(numeric):
            rel = err / max(abs(numeric), 1e-300)
            raise GradcheckError(
                f"gradient mismatch at {where}: numeric {numeric:.10g}, analytic {analytic:.10g}, "
                f"abs error {err:.3g} (atol {atol:g}), rel error {rel:.3g} (rtol {rtol:g}), eps {eps:g}")

    if mode == "direction":
        directions = {}
        for i in checked:
            # |d| in [0.5, 1] before normalising: every component moves, none by a negligible bit
            d = rng.uniform(0.5, 1.0, inputs[i].shape) * rng.choice([-1.0, 1.0], inputs[i].shape)
            directions[i] = d
        norm = np.sqrt(sum(float(np.sum(d * d)) for d in directions.values()))
        directions = {i: d / norm for i, d in directions.items()}
        try:
            _check_direction(fn, inputs, upstream, grads, directions, eps, compare,
                             f"a random direction over inputs {checked} (seed {seed})")
        except GradcheckError:
            for i in checked:  # find which input is wrong, to name it in the report
                _check_direction(fn, inputs, upstream, grads, {i: directions[i]}, eps, compare,
                                 f"a random direction over {_describe(i, inputs[i])} (seed {seed})")
            raise
    else:
        for i in checked:
            t = inputs[i]
            base = t.data
            host = t.numpy()
            for idx in np.ndindex(*t.shape):
                plus, minus = host.copy(), host.copy()
                plus[idx] += eps
                minus[idx] -= eps
                try:
                    t.data = plus
                    f_plus = _loss(fn, inputs, upstream)
                    t.data = minus
                    f_minus = _loss(fn, inputs, upstream)
                finally:
                    t.data = base                    # even if fn fails: the input is left as it was
                compare((f_plus - f_minus) / (2 * eps), float(grads[i][idx]),
                        f"{_describe(i, t)}, element {idx}")
    return True


def _check_direction(fn, inputs, upstream, grads, directions, eps, compare, where):
    bases = {i: inputs[i].data for i in directions}
    hosts = {i: inputs[i].numpy().astype(np.float64) for i in directions}
    dtype = {i: inputs[i].dtype for i in directions}

    def shifted(sign):
        for i, d in directions.items():
            inputs[i].data = (hosts[i] + sign * eps * d).astype(dtype[i])
        try:
            return _loss(fn, inputs, upstream)
        finally:
            for i in directions:
                inputs[i].data = bases[i]

    numeric = (shifted(+1) - shifted(-1)) / (2 * eps)
    analytic = sum(float(np.sum(grads[i] * d)) for i, d in directions.items())
    compare(numeric, analytic, where)
