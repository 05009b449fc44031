"""The recorded graph keeps only what backward needs: intermediate arrays no backward reads are freed.

An op records a non-leaf input as a small edge (producing op, output index, shape), not as the
tensor; ops save the arrays their backward needs themselves. Without that, every intermediate of
an unrolled RNN (h V, x_t W + h V, ...) lived as long as the graph: twice the hand-written memory.
"""

import gc
import weakref

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.bptt.graph import to_dot


def test_an_intermediate_nobody_needs_is_freed_while_the_graph_lives():
    x = tg.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True, dtype="float64")
    mid = x * 2.0  # Exp saves its output, not its input: mid is not needed
    alive = weakref.ref(mid.data)
    y = mid.exp()
    del mid
    gc.collect()
    assert alive() is None, "the graph kept x * 2 alive though no backward reads it"
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(2 * x.numpy()), rtol=1e-12)


def test_a_saved_intermediate_stays_and_backward_twice_accumulates():
    x = tg.Tensor([0.3, -0.7], requires_grad=True, dtype="float64")
    h = (x * 3.0).tanh()  # Tanh saves its output h; the next Mul saves h too
    loss = (h * h).sum()
    del h
    gc.collect()
    loss.backward()
    loss.backward()  # the graph is intact after a first backward
    t = np.tanh(3 * x.numpy())
    np.testing.assert_allclose(x.grad, 2 * (2 * t * (1 - t * t) * 3), rtol=1e-12)


def test_graph_tools_still_see_shapes_and_producers():
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    W = tg.Tensor(np.ones((3, 4)), requires_grad=True)
    y = ((x @ W) + 1.0).tanh()
    op = y._op
    (edge,) = op.inputs
    assert edge._op is not None and edge._op.name == "add" and edge.shape == (2, 4) and edge.requires_grad
    assert any(t is W for t in edge._op.inputs[0]._op.inputs), "leaves are recorded as themselves"
    assert "matmul" in to_dot(y)
