"""bptt.trace(): the forward ops and backward steps of an unrolled RNN, with shapes and time steps."""

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt import trace
from tinygrad_rnn.tensor import _tracer as _initial_tracer

B, T, E, H = 2, 4, 3, 5


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return nn.RNN(E, H, dtype="float64", rng=rng), nn.Linear(H, 1, dtype="float64", rng=rng)


def _engine_tracer():
    from tinygrad_rnn import tensor as engine

    return engine._tracer


def test_trace_orders_forward_steps_up_and_backward_steps_down():
    rnn, head = _model()
    x = tg.Tensor(np.random.default_rng(1).normal(size=(B, T, E)))
    with trace(params=rnn) as tr:
        _, h_last = rnn(x)
        loss = (head(h_last[0]) ** 2).mean()
        loss.backward()
    assert tr.step_order("forward") == [1, 2, 3, 4]
    assert tr.step_order("backward") == [4, 3, 2, 1]
    # each step runs addmm (x_tW + b + h_{t-1} V, one op) then tanh — backward in reverse order
    for t in range(1, T + 1):
        assert [r.op for r in tr.forward if r.step == t] == ["addmm", "tanh"], t
        assert [r.op for r in tr.backward if r.step == t] == ["tanh", "addmm"], t
    tanh_fwd = [r for r in tr.forward if r.op == "tanh"]
    assert all(r.inputs == ((B, H),) and r.outputs == ((B, H),) for r in tanh_fwd)
    # the backward of addmm sends (B, H) gradients to the input term x_tW + b and to h_{t-1}
    # (none to h_0), and (H, H) to V
    addmms = {r.step: r for r in tr.backward if r.step is not None and r.op == "addmm"}
    assert addmms[3].inputs == ((B, H), (B, H), (H, H)) and addmms[3].params == ("cells.0.V",)
    assert addmms[1].inputs == ((B, H), None, (H, H)), "h_0 needs no gradient"
    # the recorded norm at each tanh is ‖∂L/∂h_t‖ summed over the batch (Frobenius norm)
    assert tr.backward[0].op == "mean" and tr.backward[0].grad_norm == pytest.approx(1.0)
    assert _engine_tracer() is None, "the engine hook must be switched off after the block"


def test_tanh_backward_norm_is_the_state_gradient():
    rnn, head = _model(3)
    x = tg.Tensor(np.random.default_rng(4).normal(size=(B, T, E)))
    with trace() as tr:
        _, h_last, states = rnn(x, return_states=True)
        for h in states[0]:
            h.retain_grad()
        (head(h_last[0]) ** 2).mean().backward()
    norms = {r.step: r.grad_norm for r in tr.backward if r.op == "tanh"}
    for t in range(1, T + 1):
        want = np.linalg.norm(states[0][t - 1].grad)
        assert norms[t] == pytest.approx(want, rel=1e-12), f"step {t}: trace {norms[t]} vs grad {want}"


def test_table_lists_every_record_with_steps_and_shapes():
    rnn, head = _model()
    x = tg.Tensor(np.ones((B, T, E)))
    with trace(params={"rnn." + n: p for n, p in rnn.named_parameters()}) as tr:
        _, h_last = rnn(x)
        head(h_last[0]).sum().backward()
    text = tr.table()
    lines = text.splitlines()
    assert len(lines) == len(tr.records) + 3  # header, rule, legend
    assert "rnn.cells.0.V" in text and "rnn.cells.0.W" in text
    assert f"({B},{H}), ({H},{H}) → ({B},{H})" in text  # h_{t-1} @ V forward
    forward_only = tr.table("forward")
    assert "backward" not in forward_only.splitlines()[2]
    assert len(forward_only.splitlines()) == len(tr.forward) + 3


def test_no_grad_ops_are_marked_and_tracer_restored_after_an_error():
    x = tg.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="boom"):
        with trace() as tr:
            with tg.no_grad():
                x * 2
            raise RuntimeError("boom")
    assert [r.on_tape for r in tr.records] == [False]
    assert "mul*" in tr.table()
    assert _engine_tracer() is _initial_tracer is None


def test_backward_outside_the_block_is_not_recorded():
    rnn, head = _model()
    with trace() as tr:
        _, h_last = rnn(tg.Tensor(np.ones((B, T, E))))
        loss = head(h_last[0]).sum()
    loss.backward()
    assert tr.backward == [] and len(tr.forward) > 0


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_checkpointed_layer_numbers_its_steps_in_the_whole_sequence(bidirectional):
    """Each recomputed segment marks its ops with their time step in the sequence (5..8 for the
    second segment of 4), not their place in the segment."""
    rng = np.random.default_rng(0)
    rnn = nn.RNN(E, H, bidirectional=bidirectional, checkpoint=4, dtype="float64", rng=rng)
    x = tg.Tensor(np.random.default_rng(1).normal(size=(B, 10, E)))
    with trace(params=rnn) as tr:
        outputs, _ = rnn(x)
        (outputs**2).sum().backward()
    steps = {r.step for r in tr.forward + tr.backward if r.step is not None}
    assert steps == set(range(1, 11))
    assert {r.step for r in tr.forward if r.op == "tanh"} == set(range(1, 11))
