"""Array comparisons the hand-derived-BPTT tests share."""

import numpy as np


def assert_relative(actual, expected, name, tol=1e-10):
    """max |actual − expected| ≤ tol · max |expected| (exact agreement where expected is all 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} vs {expected.shape}"
    err, scale = np.abs(actual - expected).max(), np.abs(expected).max()
    assert err <= tol * scale or err == 0, (
        f"{name}: max abs difference {err:.3g} at {np.unravel_index(np.argmax(np.abs(actual - expected)), actual.shape)}"
        f" exceeds {tol:g} × max |reference| = {tol * scale:.3g}")
