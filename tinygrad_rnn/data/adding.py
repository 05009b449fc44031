"""The adding problem (Hochreiter & Schmidhuber 1997): a test of memory over long time lags.

Every example is a sequence of T steps with two input channels, ``x_t = (v_t, m_t)``:

* ``v_t ~ U(0, 1)``, a random value at every step;
* ``m_t ∈ {0, 1}``, a marker that is 1 at exactly two steps.

The target is the sum of the two marked values, ``y = Σ_t m_t v_t``. Only two of the T steps
matter, and the first marker can be far from the end, so the gradient ∂L/∂h_t must survive many
steps of h_t = tanh(x_t W + h_{t-1} V + b) to learn it — exactly what vanishes in a vanilla RNN.

Variant (the common one of Le et al. 2015 and Arjovsky et al. 2016, not the original paper's
exact protocol): the first marker is uniform over the first half, steps ``0 .. T//2 - 1``, the
second uniform over the second half, ``T//2 .. T-1``.

Baseline: always predicting the mean ``E[y] = 1`` gives ``MSE = Var(v₁ + v₂) = 2 · 1/12 = 1/6
≈ 0.167`` (:data:`ADDING_BASELINE_MSE`); a model has learnt something only below that.
"""

from __future__ import annotations

import numpy as np

ADDING_BASELINE_MSE = 1.0 / 6.0


def adding_problem(n: int, length: int, *, seed: int = 0, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples of ``length`` steps: ``inputs`` ``(n, length, 2)`` and ``targets`` ``(n, 1)``.

    ``inputs[..., 0]`` are the values, ``inputs[..., 1]`` the markers. The targets are
    ``(n, 1)``, the shape of a ``Linear(hidden, 1)`` output, so ``prediction - targets`` cannot
    silently broadcast to ``(n, n)``. Same seed → same data.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2 (one marker per half), got {length}")
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)  # one marker in the first half
    second = rng.integers(half, length, size=n)  # one in the second half
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = np.stack([values, markers], axis=-1).astype(dtype)
    targets = (values[rows, first] + values[rows, second]).reshape(n, 1).astype(dtype)
    return inputs, targets
