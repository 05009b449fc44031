"""Watch BPTT run: every op of the forward pass and every step of the backward pass, in order.

::

    from tinygrad_rnn import bptt
    with bptt.trace(params=model) as tr:
        loss = loss_fn(model(x))
        loss.backward()
    print(tr.table())

The forward rows go t = 1, 2, …, T (the ops of one step: ``addmm`` x_t W + b + h_{t−1} V, then
``tanh``, and ``where`` when padding keeps a finished sequence's state; an LSTM or GRU step adds
its gates' ``sigmoid`` and ``mul`` ops); the backward rows visit the same ops in reverse, t = T, …, 1, each
receiving the gradient of its output and handing gradients to its inputs. The ‖grad‖ column is
the norm of the gradient arriving at the op: watch it shrink step by step as it travels back.

How it works: the engine calls the active tracer from ``Op.apply`` and from the backward walk
(``tensor._tracer``; when no trace runs that is one ``is None`` check per op), and ``nn.RNN``
tells it which time step its ops belong to through the public ``tensor.mark_time_step(t)``. Ops
outside the recurrence (the input projection of all steps at once, the head, the loss) have no step
(shown as ``·``).
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

from .. import tensor as _engine  # the engine module: trace() installs its hook there


class TraceRecord(NamedTuple):
    """One row: an op run forward, or an op's backward."""

    # The field hides tuple.index, which mypy reports; the name stays, as every reader of a trace uses it.
    index: int  # type: ignore[assignment]  # position in the trace (forward and backward interleaved)
    phase: str  # "forward" or "backward"
    op: str  # the op's name (matmul, tanh, …)
    step: int | None  # time step t = 1..T of nn.RNN's loop, None outside it
    inputs: tuple  # forward: input shapes; backward: shapes of the gradients sent to the inputs
    outputs: tuple  # forward: output shapes; backward: shapes of the gradients received
    on_tape: bool  # forward: recorded for backward (some input needs a gradient)
    grad_norm: float | None  # backward: ‖gradient arriving at the outputs‖ (all outputs together)
    params: tuple  # backward: names of the parameters that receive a gradient here


def _shape(a) -> tuple | None:
    return None if a is None else tuple(getattr(a, "shape", ()))


def _fmt_shapes(shapes) -> str:
    return ", ".join("—" if s is None else "(" + ",".join(map(str, s)) + ")" for s in shapes)


def parameter_names(params) -> dict:
    """``{id(tensor): name}`` from a ``Module`` (its ``named_parameters()``), a dict
    ``name -> tensor`` or ``(name, tensor)`` pairs; ``{}`` for None. Shared by :func:`trace`
    and :func:`~tinygrad_rnn.bptt.graph.to_dot`, which name the leaves they show.
    """
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    elif isinstance(params, dict):
        params = params.items()
    return {id(t): name for name, t in params}


class Trace:
    """The records of one ``with trace():`` block; see :func:`trace`."""

    def __init__(self, names: dict | None = None):
        self.records: list[TraceRecord] = []
        self._names = names or {}  # id(parameter) -> name
        self._step: int | None = None
        self._op_steps: dict[int, tuple[_engine.Op, int | None]] = {}  # id(op) -> (op, step), ops on the tape

    # ---- called by the engine ---------------------------------------------------------------
    def on_step(self, t) -> None:
        self._step = t

    def on_forward(self, op, inputs, out, on_tape: bool) -> None:
        outs = out if isinstance(out, tuple) else (out,)
        if on_tape:
            self._op_steps[id(op)] = (op, self._step)  # keeps op alive, so its id stays unique
        self.records.append(
            TraceRecord(
                len(self.records),
                "forward",
                op.name,
                self._step,
                tuple(t.shape for t in inputs),
                tuple(_shape(o) for o in outs),
                on_tape,
                None,
                (),
            )
        )

    def on_backward(self, op, out_grads, in_grads) -> None:
        squares = 0.0
        for g in out_grads:
            if g is not None:
                squares += float(op.xp.sum(op.xp.square(g)))
        params = tuple(
            self._names[id(t)]
            for t, g in zip(op.inputs, in_grads)
            if g is not None and t._op is None and id(t) in self._names
        )
        self.records.append(
            TraceRecord(
                len(self.records),
                "backward",
                op.name,
                self.step_of(op),
                tuple(_shape(g) for g in in_grads),
                tuple(_shape(g) for g in out_grads),
                True,
                math.sqrt(squares),
                params,
            )
        )

    # ---- reading it -------------------------------------------------------------------------
    def step_of(self, op) -> int | None:
        """The time step an op (of a graph built during this trace) belongs to, or None."""
        entry = self._op_steps.get(id(op))
        return entry[1] if entry is not None and entry[0] is op else None

    @property
    def forward(self) -> list:
        return [r for r in self.records if r.phase == "forward"]

    @property
    def backward(self) -> list:
        return [r for r in self.records if r.phase == "backward"]

    def step_order(self, phase: str) -> list:
        """The time steps in the order ``phase`` first reaches them: [1..T] forward, [T..1] backward."""
        order = []
        for r in self.records:
            if r.phase == phase and r.step is not None and r.step not in order:
                order.append(r.step)
        return order

    def table(self, phase: str | None = None) -> str:
        """The records as a text table (``phase``: "forward", "backward" or None for both)."""
        rows = [r for r in self.records if phase is None or r.phase == phase]
        head = f"{'#':>4}  {'pass':<8}  {'t':>3}  {'op':<12}  {'shapes':<34}  {'‖grad‖':>9}  params"
        lines = [head, "-" * len(head)]
        for r in rows:
            if r.phase == "forward":
                shapes = _fmt_shapes(r.inputs) + " → " + _fmt_shapes(r.outputs)
                op = r.op if r.on_tape else r.op + "*"
                norm = ""
            else:
                shapes = _fmt_shapes(r.outputs) + " → " + _fmt_shapes(r.inputs)
                op, norm = r.op, f"{r.grad_norm:.3e}"
            step = "·" if r.step is None else str(r.step)
            lines.append(
                f"{r.index + 1:>4}  {r.phase:<8}  {step:>3}  {op:<12}  {shapes:<34}  "
                f"{norm:>9}  {', '.join(r.params)}".rstrip()
            )
        lines.append(
            "forward: input shapes → output shapes (* = not on the tape, no gradient needed); "
            "backward: gradient received → gradients sent to the inputs"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


@contextlib.contextmanager
def trace(params=None):
    """Record every op run forward and every backward step inside the block: ``with trace() as tr``.

    ``params`` names the parameters in the backward rows: a ``Module`` (its
    ``named_parameters()``), a dict ``name -> tensor`` or ``(name, tensor)`` pairs.
    Traces do not nest: an inner one records, the outer one waits until it ends.
    """
    recorder = Trace(parameter_names(params))
    previous, _engine._tracer = _engine._tracer, recorder
    try:
        yield recorder
    finally:
        _engine._tracer = previous
