"""bptt.graph: the recorded graph as DOT, parsed back with pydot (skipped when pydot is missing)."""

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt import trace
from tinygrad_rnn.bptt.graph import to_dot, unrolled_graph

pydot = pytest.importorskip("pydot", reason="pydot is in the 'test' extra: pip install -e '.[test]'")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's parser on new pyparsing


def _parse(text):
    graphs = pydot.graph_from_dot_data(text)
    assert graphs and len(graphs) == 1, f"pydot could not parse the DOT:\n{text}"
    return graphs[0]


def _label(node):
    return (node.get_label() or "").strip('"')


def _nodes(graph):
    """Every node declared in the graph or one of its subgraphs: name -> label."""
    out = {
        n.get_name(): _label(n) for n in graph.get_nodes() if n.get_name() not in ("node", "graph", "edge")
    }
    for sub in graph.get_subgraphs():
        out.update(_nodes(sub))
    return out


@pytest.mark.parametrize("steps", [1, 3])
def test_unrolled_cell_graph_names_parameters_and_boxes_each_step(steps):
    g = _parse(unrolled_graph(steps))
    labels = _nodes(g)
    names = {label.split("\\n")[0] for label in labels.values()}
    for want in ["cell.W", "cell.V", "cell.b", "head.W", "head.b", "h_0"] + [
        f"x_{t}" for t in range(1, steps + 1)
    ]:
        assert want in names, f"{want} missing from the graph's nodes {sorted(names)}"
    assert "cell.V\\n(3, 3)" in labels.values()
    clusters = {sub.get_name(): sub for sub in g.get_subgraphs()}
    assert sorted(clusters) == sorted(f"cluster_t{t}" for t in range(1, steps + 1))
    for t in range(1, steps + 1):
        ops = sorted(_label(n).split("\\n")[0] for n in clusters[f"cluster_t{t}"].get_nodes())
        # RNNCell runs the same step as nn.RNN: addmm(b, x_t, W), then tanh(addmm(xw_t, h_{t-1}, V))
        assert ops == ["addmm", "addmm", "tanh"], f"t = {t}: {ops}"
        assert clusters[f"cluster_t{t}"].get_label().strip('"') == f"t = {t}"
    # V is used once per step: one edge from the cell.V leaf into each step's xw_t + h_{t-1} V
    v_id = next(name for name, label in labels.items() if label.startswith("cell.V"))
    assert sum(e.get_source() == v_id for e in g.get_edges()) == steps


def test_graph_of_nn_rnn_uses_module_names_and_matches_the_tape():
    rnn = nn.RNN(2, 4, rng=np.random.default_rng(0))
    with trace() as tr:
        _, h_last = rnn(tg.Tensor(np.ones((1, 3, 2))))
        loss = h_last.sum()
    g = _parse(to_dot(loss, rnn, steps=tr))
    labels = _nodes(g)
    names = [label.split("\\n")[0] for label in labels.values()]
    assert {"cells.0.W", "cells.0.V", "cells.0.b"} <= set(names)
    with trace() as backward_trace:
        loss.backward()
    op_nodes = [n for n in labels if n.startswith("op")]
    # addmm (X W + b), reshape, unbind; per step addmm + tanh; the stack of h_last; sum
    assert len(op_nodes) == len(backward_trace.backward) == 3 + 2 * 3 + 2, (
        "one box per op that backward visits"
    )
    assert {sub.get_name() for sub in g.get_subgraphs()} == {"cluster_t1", "cluster_t2", "cluster_t3"}


def test_to_dot_of_a_leaf_and_quoting():
    t = tg.Tensor([1.0, 2.0], requires_grad=True)
    t.name = 'say "hi"'
    g = _parse(to_dot(t, title='a "quoted" title'))
    assert any('say \\"hi\\"' in label for label in _nodes(g).values())


def test_steps_must_be_positive():
    with pytest.raises(ValueError, match="steps must be at least 1"):
        unrolled_graph(0)
