"""The recorded graph as Graphviz DOT: see the unrolled RNN that backprop walks through.

Every op of the forward pass that needs a gradient is on the tape; ``to_dot(loss)`` draws it:
boxes are ops (name and output shape), ellipses are leaves — parameters named as the model names
them (``cell.W``, ``cell.V``, …), inputs as ``input``. The edges point from inputs to the op that
consumed them, so BPTT runs against the arrows, from the loss back to t = 1.
"""

from __future__ import annotations

from ..tensor import Tensor


def _quote(text: str) -> str:
    escaped = str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _shape(shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def to_dot(output: Tensor, params=None, title: str | None = None) -> str:
    """Graphviz DOT source of the graph that produced ``output``.

    ``params`` names the leaves: a ``Module`` (its ``named_parameters()`` are used), an iterable
    of ``(name, tensor)`` pairs or a dict ``name -> tensor``. Unnamed leaves use ``tensor.name``
    or ``input``/``constant``.
    """
    names = {}
    if params is not None:
        if hasattr(params, "named_parameters"):
            params = params.named_parameters()
        elif isinstance(params, dict):
            params = params.items()
        names = {id(t): name for name, t in params}

    lines = ["digraph unrolled {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    ids = {}

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

    seen, stack, out_shapes = {id(root)}, [root], {}
    out_shapes[id(root)] = output.shape
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
        lines.append(f"  {node_id(op, 'op')} [shape=box, label={_quote(label)}];")
        for t in op.inputs:
            if t._op is None:
                src = leaf_node(t)
                edge_label = ""
            else:
                src = node_id(t._op, "op")
                edge_label = f' [label="{t._index}"]' if t._op.n_outputs > 1 else ""
            lines.append(f"  {src} -> {node_id(op, 'op')}{edge_label};")
    out_id = f"out{len(ids)}"
    lines.append(f"  {out_id} [shape=doubleoctagon, label={_quote('output' + chr(10) + _shape(output.shape))}];")
    lines.append(f"  {node_id(root, 'op')} -> {out_id};")
    lines.append("}")
    return "\n".join(lines) + "\n"
