"""The recorded graph as Graphviz DOT: see the unrolled RNN that backprop walks through.

Every op of the forward pass that needs a gradient is on the tape; ``to_dot(loss)`` draws it:
boxes are ops (name and output shape), ellipses are leaves — parameters named as the model names
them (``cell.W``, ``cell.V``, …), inputs as ``input``. The edges point from inputs to the op that
consumed them, so BPTT runs against the arrows, from the loss back to t = 1.

With ``steps=`` (a :class:`~tinygrad_rnn.bptt.tracing.Trace` recorded while the graph was built)
the ops of each time step are boxed together and labelled ``t = 1``, ``t = 2``, …
:func:`unrolled_graph` builds the chapter's cell unrolled over a few steps and draws it.
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .tracing import parameter_names


def _quote(text: str) -> str:
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _shape(shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def to_dot(output: Tensor, params=None, title: str | None = None, steps=None) -> str:
    """Graphviz DOT source of the graph that produced ``output``.

    ``params`` names the leaves: a ``Module`` (its ``named_parameters()`` are used), an iterable
    of ``(name, tensor)`` pairs or a dict ``name -> tensor``. Unnamed leaves use ``tensor.name``
    or ``input``/``constant``. ``steps``: the ``Trace`` of the forward pass (anything with a
    ``step_of(op)`` method); each time step's ops are then drawn in a box labelled ``t = …``.
    """
    names = parameter_names(params)

    lines = ["digraph unrolled {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    ids: dict[int, str] = {}  # id(op or tensor) -> its node's name

    def node_id(obj, prefix):
        key = id(obj)
        if key not in ids:
            ids[key] = f"{prefix}{len(ids)}"
        return ids[key]

    def leaf_node(t: Tensor) -> str:
        key = id(t)
        new = key not in ids
        nid = node_id(t, "leaf")
        if new:
            name = names.get(key) or t.name or ("input" if t.requires_grad else "constant")
            style = ', style=filled, fillcolor="#ffe9a8"' if key in names else ""
            lines.append(f"  {nid} [shape=ellipse, label={_quote(name + chr(10) + _shape(t.shape))}{style}];")
        return nid

    root = output._op
    if root is None:
        leaf_node(output)
        lines.append("}")
        return "\n".join(lines) + "\n"

    seen, stack = {id(root)}, [root]
    out_shapes: dict[int, tuple | None] = {id(root): output.shape}  # None: an op of several outputs
    clusters: dict[int, list[str]] = {}  # time step -> its ops' nodes
    while stack:
        op = stack.pop()
        for t in op.inputs:
            if t._op is not None:
                out_shapes.setdefault(id(t._op), t.shape if t._op.n_outputs == 1 else None)
                if id(t._op) not in seen:
                    seen.add(id(t._op))
                    stack.append(t._op)
        label = op.name
        shape = out_shapes.get(id(op))
        if shape is not None:
            label += "\n" + _shape(shape)
        elif op.n_outputs > 1:
            label += f"\n{op.n_outputs} outputs"
        step = steps.step_of(op) if steps is not None else None
        node = f"  {node_id(op, 'op')} [shape=box, label={_quote(label)}];"
        if step is None:
            lines.append(node)
        else:
            clusters.setdefault(step, []).append(node)
        for t in op.inputs:
            if t._op is None:
                src = leaf_node(t)
                edge_label = ""
            else:
                src = node_id(t._op, "op")
                edge_label = f' [label="{t._index}"]' if t._op.n_outputs > 1 else ""
            lines.append(f"  {src} -> {node_id(op, 'op')}{edge_label};")
    for step in sorted(clusters):  # a "cluster_" subgraph is drawn as a labelled box
        lines.append(f"  subgraph cluster_t{step} {{")
        lines.append(f'    label="t = {step}"; style=rounded; color="#7a9cc6";')
        lines.extend("  " + node for node in clusters[step])
        lines.append("  }")
    out_id = f"out{len(ids)}"
    lines.append(
        f"  {out_id} [shape=doubleoctagon, label={_quote('output' + chr(10) + _shape(output.shape))}];"
    )
    lines.append(f"  {node_id(root, 'op')} -> {out_id};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def unrolled_graph(
    steps: int = 3,
    input_size: int = 2,
    hidden_size: int = 3,
    batch: int = 1,
    *,
    use_rnn: bool = False,
    seed: int = 0,
    cell: str = "rnn",
) -> str:
    """DOT of a recurrent cell unrolled over ``steps`` steps, a linear head and an MSE loss.

    ``cell`` names the cell ("rnn", "lstm", "gru"; :data:`tinygrad_rnn.nn.CELLS`). By default it
    is applied step by step, exactly as written — for the chapter's cell
    ``h_t = tanh(x_t @ cell.W + h_{t-1} @ cell.V + cell.b)`` — and the leaves are named
    ``cell.W``, ``cell.V``, ``cell.b`` (the GRU's ``cell.b_hn`` too), ``head.W``, ``head.b``; the
    LSTM's state (h, c) starts from ``h_0`` and ``c_0``. ``use_rnn=True`` draws the layer
    (``nn.RNN``, ``nn.LSTM``, ``nn.GRU``) instead, which computes the input term of all steps in
    one product first (parameters ``rnn.cells.0.W``, …). Either way each time step is boxed.
    """
    from ..nn import Linear, cell_kind, recurrent_layer
    from ..nn.recurrent import as_parts, from_parts
    from .tracing import trace

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    kind = cell_kind(cell)
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((batch, steps, input_size)))
    head = Linear(hidden_size, 1, rng=rng)
    if use_rnn:
        layer = recurrent_layer(cell, input_size, hidden_size, rng=rng)
        names = {"rnn." + n: p for n, p in layer.named_parameters()}
    else:
        one_cell = kind.cell(input_size, hidden_size, rng=rng)
        names = {"cell." + n: p for n, p in one_cell.named_parameters()}
    names.update({"head." + n: p for n, p in head.named_parameters()})
    with trace() as tr:
        if use_rnn:
            _, last = layer(x)
            h = layer.cells[0].hidden(last)[0]
        else:
            state = as_parts(one_cell.initial_state(batch))
            for part, name in zip(state, (f"{n}_0" for n in one_cell.state_names)):
                part.name = name
            state = from_parts(state)
            for t, x_t in enumerate(x.unbind(axis=1), start=1):
                x_t.name = f"x_{t}"
                tr.on_step(t)  # label the ops of this step
                state = one_cell(x_t, state)
            tr.on_step(None)
            h = one_cell.hidden(state)
        loss = (head(h) ** 2).mean()
    what = kind.layer.__name__ if use_rnn else kind.cell.__name__
    title = (
        f"{'nn.' if use_rnn else ''}{what} unrolled over T = {steps}: {kind.equation}, "
        "loss = mean(head(h_T)²)"
    )
    return to_dot(loss, names, title=title, steps=tr)
