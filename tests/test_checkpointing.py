"""Checkpointed BPTT: ``tg.checkpoint`` and the recurrent layers' ``checkpoint=k``.

A checkpointed computation keeps only its inputs and outputs and runs again in the backward;
its values and gradients must be those of the plain computation — to rounding (1e-12 in
float64), for every cell, with lengths, both directions, several layers and truncation.
"""

import numpy as np
import pytest
from op_registry import recording_ops

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.backend import manual_seed
from tinygrad_rnn.nn.recurrent import as_parts
from tinygrad_rnn.tensor import InPlaceModificationError

RNG = np.random.default_rng


def _leaf(shape, seed):
    return tg.Tensor(RNG(seed).standard_normal(shape), requires_grad=True)


# ---- tg.checkpoint --------------------------------------------------------------------------------


def test_checkpoint_gives_the_values_and_gradients_of_fn():
    x, W = _leaf((3, 4), 0), _leaf((4, 4), 1)
    fn = lambda a: ((a @ W).tanh() @ W).sigmoid()  # W read through the closure
    u = RNG(2).standard_normal((3, 4))
    plain = fn(x)
    (plain * u).sum().backward()
    want = x.grad.copy(), W.grad.copy()
    x.grad = W.grad = None
    out = tg.checkpoint(fn, x)
    (out * u).sum().backward()
    np.testing.assert_array_equal(out.numpy(), plain.numpy())
    np.testing.assert_allclose(x.grad, want[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(W.grad, want[1], rtol=0, atol=1e-15)


def test_the_forward_records_nothing_inside_fn():
    x, W = _leaf((2, 3), 0), _leaf((3, 3), 1)
    recorded = []

    class Recorder:
        def on_step(self, t):
            pass

        def on_backward(self, *args):
            pass

        def on_forward(self, op, inputs, out, requires_grad):
            if requires_grad:
                recorded.append(op.name)

    from tinygrad_rnn import tensor

    tensor._tracer = Recorder()
    try:
        h, c = tg.checkpoint(lambda a: ((a @ W).tanh(), (a @ W).exp()), x)
    finally:
        tensor._tracer = None
    assert recorded == ["checkpoint"]  # tanh, exp, matmul ran unrecorded
    assert h._op is c._op and h._op.name == "checkpoint"


def test_gradients_accumulate_into_what_the_weights_already_hold():
    x, W = _leaf((2, 3), 0), _leaf((3, 3), 1)
    W.grad = np.ones((3, 3))
    tg.checkpoint(lambda a: a @ W, x).sum().backward()
    np.testing.assert_allclose(W.grad, 1 + x.numpy().sum(axis=0)[:, None] * np.ones((1, 3)))


def test_an_input_that_needs_no_gradient_gets_none():
    x, W = tg.Tensor(np.ones((2, 3))), _leaf((3, 3), 1)
    tg.checkpoint(lambda a: a @ W, x).sum().backward()
    assert x.grad is None and W.grad is not None


def test_without_gradients_it_is_fn_itself():
    x = _leaf((2, 2), 0)
    with tg.no_grad():
        y = tg.checkpoint(lambda a: a.tanh(), x)
    assert y.is_leaf and not y.requires_grad


def test_dropout_from_the_host_generator_replays_identically():
    drop = nn.Dropout(0.5)
    x = _leaf((4, 6), 0)
    manual_seed(7)
    (drop(x.tanh()) * 2.0).sum().backward()
    want = x.grad.copy()
    x.grad = None
    manual_seed(7)
    tg.checkpoint(lambda a: drop(a.tanh()) * 2.0, x).sum().backward()
    np.testing.assert_array_equal(x.grad, want)


def test_randomness_that_cannot_be_replayed_is_refused():
    drop = nn.Dropout(0.5, rng=RNG(3))  # a generator of its own
    y = tg.checkpoint(lambda a: drop(a), _leaf((8, 8), 0))
    with pytest.raises(RuntimeError, match="fn gave other values for output 0.*Dropout"):
        y.sum().backward()


def test_a_weight_changed_in_place_before_the_backward_is_caught():
    x, W = _leaf((2, 3), 0), _leaf((3, 3), 1)
    y = tg.checkpoint(lambda a: a @ W, x)
    W.data = W.numpy() + 1.0
    with pytest.raises(InPlaceModificationError, match="checkpoint"):
        y.sum().backward()


def test_a_non_tensor_input_is_refused():
    with pytest.raises(TypeError, match="input 0 must be a Tensor"):
        tg.checkpoint(lambda a: a, np.ones(2))


def test_tg_checkpoint_is_gradient_checkpointing_and_model_files_are_serialization():
    """``tg.checkpoint`` recomputes (as ``torch.utils.checkpoint``); saving a model is
    ``tinygrad_rnn.serialization`` (as ``torch.serialization``), so the two names never collide."""
    import tinygrad_rnn
    from tinygrad_rnn import forward, serialization

    assert tinygrad_rnn.checkpoint is forward.checkpoint
    assert callable(serialization.save) and callable(serialization.load)


# ---- recurrent layers with checkpoint=k -----------------------------------------------------------

CONFIGS = {
    "plain": dict(),
    "lengths": dict(lengths=[7, 3, 5]),
    "bidirectional_two_layers": dict(bidirectional=True, num_layers=2, lengths=[7, 2, 6]),
    "truncated": dict(truncate=3),
    "truncated_bidirectional_lengths": dict(bidirectional=True, truncate=2, lengths=[5, 7, 1]),
    "with_h0": dict(h0=True, num_layers=2),
}


def _run(cell, checkpoint, config):
    config = dict(config)
    lengths, with_h0 = config.pop("lengths", None), config.pop("h0", False)
    layer = nn.recurrent_layer(cell, 4, 5, checkpoint=checkpoint, rng=RNG(0), dtype="float64", **config)
    x = _leaf((3, 7, 4), 1)
    h0 = None
    if with_h0:
        n = len(layer.cells)
        h0 = tuple(_leaf((n, 3, 5), 10 + i) for i in range(len(layer.cells[0].state_names)))
        h0 = h0 if len(h0) > 1 else h0[0]
    out, last = layer(x, h0=h0, lengths=lengths)
    loss = (out * RNG(2).standard_normal(out.shape)).sum()
    for k, part in enumerate(as_parts(last)):
        loss = loss + (part * RNG(3 + k).standard_normal(part.shape)).sum()
    loss.backward()
    grads = (
        [x.grad] + [p.grad for p in layer.parameters()] + ([t.grad for t in as_parts(h0)] if with_h0 else [])
    )
    return [out.numpy()] + [p.numpy() for p in as_parts(last)] + grads


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_checkpointed_gradients_equal_plain_bptt(cell, config, k):
    plain, checkpointed = _run(cell, None, config), _run(cell, k, config)
    for i, (a, b) in enumerate(zip(plain, checkpointed)):
        np.testing.assert_allclose(
            b,
            a,
            rtol=0,
            atol=1e-12,
            err_msg=f"{cell}, checkpoint={k}: array {i} (outputs, last state, grads)",
        )


def test_only_the_segments_are_recorded():
    """With checkpoint=k the recurrence is T/k checkpoint ops: no step op is kept for the backward."""
    layer = nn.LSTM(3, 4, checkpoint=4, rng=RNG(0))
    x = tg.Tensor(RNG(1).standard_normal((2, 8, 3)), requires_grad=True)
    with recording_ops() as seen:
        layer(x)
    assert "Checkpoint" in seen
    op = layer(x)[0]._op  # the outputs: the two segments joined
    assert op.name == "concatenate"


def test_need_outputs_false_and_errors():
    layer = nn.GRU(3, 4, num_layers=2, checkpoint=2, rng=RNG(0))
    x = tg.Tensor(RNG(1).standard_normal((2, 5, 3)))
    out, last = layer(x, need_outputs=False)
    assert out is None and last.shape == (2, 2, 4)
    with pytest.raises(ValueError, match="return_states=True needs every state kept"):
        layer(x, return_states=True)
    with pytest.raises(ValueError, match="checkpoint"):
        nn.RNN(3, 4, checkpoint=0)
    assert "checkpoint=2" in repr(layer)
