"""The backward pass visits an op only after every op that consumes its outputs.

Regression: the graph walk once marked ops as seen when *pushed*, so an op reached first from a
near consumer and again along a deeper path was ordered before that deeper consumer; gradients
arriving later were silently dropped (x·2 feeding both the sum and x·2·3 gave 2 instead of 8,
and the input projection of an unrolled RNN lost the gradient of most time steps).
"""

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.gradcheck import gradcheck


def test_diamond_with_paths_of_different_depth():
    x = tg.Tensor([1.0, 2.0], requires_grad=True, dtype="float64")
    b = x * 2
    a = b * 3
    (b + a).sum().backward()
    np.testing.assert_array_equal(x.grad, [8.0, 8.0], err_msg="d(2x + 6x)/dx must be 8")


def test_unbind_of_a_projection_feeding_every_step():
    """x @ W for all steps, unbind over time, h_t = tanh(xW_t + h_{t-1} V + b): the unbind op has
    T consumers at T different depths."""
    rng = np.random.default_rng(3)
    B, T, E, H = 2, 5, 3, 4
    x = tg.Tensor(rng.normal(size=(B, T, E)))
    params = [tg.Tensor(rng.normal(0, 0.5, s), requires_grad=True) for s in [(E, H), (H, H), (H,)]]

    def last_state(W, V, b):
        h = None
        for p in (x @ W).unbind(axis=1):
            h = (p + b if h is None else p + h @ V + b).tanh()
        return h

    assert gradcheck(last_state, params, mode="full", seed=3)
