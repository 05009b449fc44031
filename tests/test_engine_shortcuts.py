"""The backward walk's shortcuts give the textbook gradients.

By default the walk gathers the gradients of a slicing op's outputs (Unbind: one slice per time
step) straight into one array it owns (``tensor._Gathered``) instead of calling the op's
``backward``; inside ``textbook_backward()`` every op's own backward runs. Both must give the
same gradients bit for bit, and the shortcut must hold less memory at its peak.

The walk also skips the version check (``Op.check_versions``) of every op recorded after the
latest in-place change: it must still catch a change made after recording, and SGD steps between
forward passes must leave the gradients as they were.
"""

import tracemalloc

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, ops, optim
from tinygrad_rnn.tensor import InPlaceModificationError, textbook_backward


def _grads(build, leaves, textbook: bool):
    for t in leaves:
        t.grad = None
    loss = build()
    if textbook:
        with textbook_backward():
            loss.backward()
    else:
        loss.backward()
    return [t.grad.copy() for t in leaves]


def _assert_same(build, leaves):
    fast, slow = _grads(build, leaves, False), _grads(build, leaves, True)
    for k, (a, b) in enumerate(zip(fast, slow)):
        assert a.dtype == b.dtype and a.shape == b.shape, (
            f"leaf {k}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
        )
        diff = np.flatnonzero(a != b)
        assert diff.size == 0, (
            f"leaf {k}: gathered gradient differs from the textbook one at flat index "
            f"{diff[0]}: {a.flat[diff[0]]!r} vs {b.flat[diff[0]]!r}"
        )


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unbind_gathered_equals_its_backward(axis, dtype):
    rng = np.random.default_rng(axis + 7)
    x = tg.Tensor(rng.standard_normal((3, 5, 4)).astype(dtype), requires_grad=True)
    w = tg.Tensor(rng.standard_normal(x.shape[axis]).astype(dtype), requires_grad=True)

    def build():
        pieces = x.unbind(axis)
        loss = pieces[0].sum() * 0.0
        for t, p in enumerate(pieces):
            if t == 1:
                continue  # an unused slice: its gradient is 0
            loss = loss + (p * p).sum() * w[t]
        return loss + pieces[-1].tanh().sum()  # the last slice is used twice: summed

    _assert_same(build, [x, w])
    assert not _grads(build, [x, w], False)[0].take(1, axis=axis).any()


def test_every_slice_unused_but_one():
    x = tg.Tensor(np.ones((2, 6)), requires_grad=True)
    _assert_same(lambda: x.unbind(1)[4].sum() * 3.0, [x])
    np.testing.assert_array_equal(x.grad, [[0, 0, 0, 0, 3, 0]] * 2)


@pytest.mark.parametrize("layer", [nn.RNN, nn.LSTM, nn.GRU])
def test_recurrent_layers_get_the_textbook_gradients(layer):
    rng = np.random.default_rng(0)
    rnn = layer(3, 5, rng=np.random.default_rng(1), dtype="float64")
    x = tg.Tensor(rng.standard_normal((4, 7, 3)), requires_grad=True)
    params = [p for _, p in rnn.named_parameters()]

    def build():
        out, _ = rnn(x)
        return (out * out).sum()

    _assert_same(build, [x, *params])


def test_a_retained_piece_and_a_tracer_see_the_op_backward(monkeypatch):
    calls = []
    original = ops.Unbind.backward
    monkeypatch.setattr(ops.Unbind, "backward", lambda self, grads: calls.append(1) or original(self, grads))
    x = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    pieces = x.unbind(1)
    pieces[2].retain_grad()
    (pieces[0].sum() + 2 * pieces[2].sum()).backward()
    assert calls == [1]  # retained: the op's own backward ran
    np.testing.assert_array_equal(pieces[2].grad, [2.0, 2.0])
    np.testing.assert_array_equal(x.grad, [[1, 0, 2], [1, 0, 2]])

    from tinygrad_rnn import bptt

    x.grad = None
    with bptt.trace() as tape:
        x.unbind(1)[1].sum().backward()
    assert calls == [1, 1]  # a trace sees every op's backward
    assert any(r.op == "unbind" for r in tape.backward)
    x.grad = None
    x.unbind(1)[1].sum().backward()
    assert calls == [1, 1]  # by default: gathered, no call


class _CountedVersions(list):
    """An op's recorded versions that count how often the walk compares them."""

    compared = 0

    def __ne__(self, other):
        _CountedVersions.compared += 1
        return list.__ne__(self, other)


def test_version_check_runs_only_for_ops_recorded_before_a_change():
    w = tg.Tensor(np.arange(3.0), requires_grad=True)
    x = tg.Tensor(np.ones(3))
    w.bump_version()  # a change before the forward pass (an optimizer step): nothing to check
    y = w * x
    y._op.versions = _CountedVersions(y._op.versions)
    _CountedVersions.compared = 0
    y.sum().backward()
    assert _CountedVersions.compared == 0
    np.testing.assert_array_equal(w.grad, [1.0, 1.0, 1.0])

    y = w * x
    y._op.versions = _CountedVersions(y._op.versions)
    x.bump_version()  # after the forward pass: w's gradient is made of x's values
    with pytest.raises(InPlaceModificationError, match=r"mul.*input 1.*version 0 -> 1"):
        y.sum().backward()
    assert _CountedVersions.compared == 1

    y = w * w.detach()
    w.detach().bump_version()  # an alias changed after recording: still caught
    with pytest.raises(InPlaceModificationError, match="changed in place"):
        y.sum().backward()


@pytest.mark.parametrize("layer", [nn.RNN, nn.LSTM])
def test_sgd_steps_between_passes_leave_the_textbook_gradients(layer):
    rng = np.random.default_rng(2)
    rnn = layer(3, 5, rng=np.random.default_rng(3), dtype="float64")
    x = tg.Tensor(rng.standard_normal((4, 6, 3)))
    params = [p for _, p in rnn.named_parameters()]
    opt = optim.SGD(params, lr=0.1)

    def build():
        out, _ = rnn(x)
        return (out * out).sum()

    for _ in range(3):
        _assert_same(build, params)
        opt.step()  # bumps every parameter's version before the next forward pass


def _peak_of_backward(textbook: bool) -> int:
    B, T, H = 8, 64, 256  # x: 1 MiB of float64
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((B, T, H)), requires_grad=True)
    c = [tg.Tensor(rng.standard_normal((B, H))) for _ in range(T)]
    loss = None
    for t, p in enumerate(x.unbind(1)):
        term = (p * c[t]).sum()  # ∂/∂p = c_t: a fresh (B, H) array each
        loss = term if loss is None else loss + term
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        if textbook:
            with textbook_backward():
                loss.backward()
        else:
            loss.backward()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_gathering_holds_one_input_sized_array_less_at_the_peak():
    size = 8 * 64 * 256 * 8
    fast, slow = _peak_of_backward(False), _peak_of_backward(True)
    # textbook: T slices' gradients kept until the last arrives, then stacked (≈ 2 × size + grad
    # copy); gathered: each copied into the buffer as it arrives (≈ 1 × size + grad copy)
    assert fast < slow - size // 2, (
        f"peak of the backward: gathered {fast} B, textbook {slow} B (x: {size} B)"
    )
