"""In-place updates between forward and backward are refused.

Every change the library makes to a tensor's values bumps its version; backward() compares the
versions each op recorded and raises, naming the op and the tensor, instead of computing a
gradient from values that are no longer there.
"""

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim
from tinygrad_rnn.tensor import InPlaceModificationError


def _graph(device="cpu"):
    a = tg.Tensor([1.0, 2.0, 3.0], device=device, requires_grad=True)
    w = tg.Tensor([0.5, -1.0, 2.0], device=device, requires_grad=True)
    return a, w, (a * w).sum()


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda ps: optim.SGD(ps, lr=1.0),
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: optim.Adam(ps, lr=0.1),
    ],
    ids=["sgd", "momentum", "adam"],
)
def test_an_optimizer_step_before_backward_is_refused(device, make_optimizer):
    a, w, loss = _graph(device)
    w.grad = w.xp.ones_like(w.data)
    make_optimizer([w]).step()
    with pytest.raises(InPlaceModificationError, match=r"mul.*input 1.*shape \(3,\).*version 0 -> 1"):
        loss.backward()
    assert a.grad is None, "a.grad would hold the new w"


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.load_state_dict({k: v + 1 for k, v in m.state_dict().items()}),
        lambda m: setattr(m.W, "data", m.W.numpy() * 2),
        lambda m: m.double(),
    ],
    ids=["load_state_dict", "data_assignment", "to_dtype"],
)
def test_loading_or_assigning_weights_before_backward_is_refused(change):
    layer = nn.Linear(3, 2)
    loss = layer(tg.randn(4, 3)).sum()
    change(layer)
    with pytest.raises(InPlaceModificationError, match="changed in place"):
        loss.backward()


def test_the_message_names_a_named_tensor():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="V")
    loss = (w.tanh() * 3).sum()
    w.data = np.zeros(2)
    with pytest.raises(
        InPlaceModificationError, match=r"backward through tanh: its input 0 \(a tensor 'V'\)"
    ):
        loss.backward()


def test_the_usual_loop_is_never_refused(device):
    """forward, backward, step, again: each graph is built after the previous step."""
    model = nn.Linear(3, 2, device=device)
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = tg.randn(5, 3, device=device)
    for _ in range(3):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    assert all(p._version == 3 for p in model.parameters())


def test_a_step_after_backward_leaves_that_backward_alone():
    a, w, loss = _graph()
    loss.backward()
    optim.SGD([w], lr=1.0).step()
    np.testing.assert_array_equal(a.grad, [0.5, -1.0, 2.0])  # the w of the forward pass


def test_optimizers_refuse_tensors_made_by_an_op():
    w = tg.Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="leaf"):
        optim.SGD([w * 2], lr=0.1)


def test_loading_a_checkpoint_before_backward_is_refused(tmp_path):
    from tinygrad_rnn import serialization

    layer = nn.Linear(3, 2)
    serialization.save(tmp_path / "w.npz", layer)
    loss = layer(tg.randn(4, 3)).sum()
    serialization.load(tmp_path / "w.npz", layer)
    with pytest.raises(InPlaceModificationError):
        loss.backward()


# ---- aliases: tensors that share one array share one version counter ---------------------------


def _frozen_graph(make_alias):
    """x @ alias(W), then an SGD step on W: the values the matmul saved are no longer W's."""
    W = nn.Parameter(np.arange(6.0).reshape(3, 2))
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    frozen = make_alias(W)
    loss = (x @ frozen.reshape(3, 2)).sum()
    W.grad = np.ones((3, 2))
    optim.SGD([W], lr=1.0).step()
    return x, loss


def _no_grad_transpose(W):
    with tg.no_grad():
        return W.T.T


@pytest.mark.parametrize(
    "make_alias",
    [
        lambda W: W.detach(),
        lambda W: W.detach().detach(),
        lambda W: W.detach().T.T,  # a view of an alias (its op records nothing)
        _no_grad_transpose,  # a view made off the graph
        lambda W: W.T.T,  # views on the graph: caught at the matmul itself
    ],
    ids=["detach", "detach_twice", "view_of_detach", "no_grad_view", "recorded_view"],
)
def test_a_step_through_an_alias_of_the_array_is_refused(make_alias):
    x, loss = _frozen_graph(make_alias)
    with pytest.raises(InPlaceModificationError, match=r"backward through matmul: its input 1"):
        loss.backward()
    assert x.grad is None, "x.grad would hold W after the step"


def test_tensor_of_a_tensor_is_a_copy_so_its_graph_stays_right():
    """Tensor(W) is a snapshot (as torch.tensor): the step does not reach it, x.grad is exact."""
    x, loss = _frozen_graph(lambda W: tg.Tensor(W))
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.tile(np.arange(6.0).reshape(3, 2).sum(axis=1), (4, 1)))


@pytest.mark.parametrize(
    "make",
    [
        lambda W: tg.Tensor(W),
        lambda W: nn.Parameter(W),
        lambda W: tg.Tensor(W.data),
        lambda W: nn.Parameter(W.data),
    ],
    ids=["Tensor(t)", "Parameter(t)", "Tensor(array)", "Parameter(array)"],
)
def test_tensor_and_parameter_copy_their_data(make):
    W = nn.Parameter(np.ones((2, 2)))
    copy = make(W)
    W.grad = np.ones((2, 2))
    optim.SGD([W], lr=1.0).step()
    np.testing.assert_array_equal(copy.numpy(), np.ones((2, 2)))
    assert copy._version == 0 and W._version == 1


def test_two_parameters_made_from_one_array_are_independent():
    """Each owns its values: a step on one changes neither the other's values nor its graphs."""
    array = np.ones((3, 2))
    p, q = nn.Parameter(array), nn.Parameter(array)
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    loss = (x @ q).sum()
    p.grad = np.ones((3, 2))
    optim.SGD([p], lr=1.0).step()
    loss.backward()  # q's values are those of the forward pass
    np.testing.assert_array_equal(x.grad, np.full((4, 3), 2.0))
    np.testing.assert_array_equal(array, np.ones((3, 2)))


def test_an_alias_sees_the_step_and_counts_with_its_source():
    W = nn.Parameter(np.zeros(3))
    alias = W.detach()
    W.grad = np.ones(3)
    optim.SGD([W], lr=1.0).step()
    np.testing.assert_array_equal(alias.numpy(), [-1.0, -1.0, -1.0])  # shares the array (PyTorch's detach)
    assert alias._version == W._version == 1


def test_an_optimizer_over_a_detached_alias_is_seen_by_the_source_graph():
    W = nn.Parameter(np.ones((3, 2)))
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    loss = (x @ W).sum()
    alias = W.detach().requires_grad_()
    alias.grad = np.ones((3, 2))
    optim.SGD([alias], lr=1.0).step()
    with pytest.raises(InPlaceModificationError):
        loss.backward()


@pytest.mark.parametrize(
    "replace",
    [
        lambda m: setattr(m.W, "data", m.W.numpy() * 2),
        lambda m: m.load_state_dict({k: v + 1 for k, v in m.state_dict().items()}),
        lambda m: m.float(),
    ],
    ids=["data_assignment", "load_state_dict", "to_dtype"],
)
def test_replacing_the_array_leaves_earlier_aliases_and_their_graphs_alone(replace):
    """The alias keeps the old array, whose values did not change: its graph stays valid, and
    later steps on the layer write into the new array only."""
    layer = nn.Linear(3, 2, dtype=np.float64)
    old = layer.W.numpy()
    alias = layer.W.detach()
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    loss = (x @ alias).sum()
    replace(layer)
    layer.W.grad = layer.W.xp.ones_like(layer.W.data)
    optim.SGD([layer.W], lr=1.0).step()
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.tile(old.sum(axis=1), (4, 1)))
    np.testing.assert_array_equal(alias.numpy(), old)


def test_loading_a_checkpoint_leaves_earlier_aliases_alone(tmp_path):
    from tinygrad_rnn import serialization

    layer = nn.Linear(3, 2, dtype=np.float64)
    serialization.save(tmp_path / "w.npz", layer)
    old = layer.W.numpy()
    alias = layer.W.detach()
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    loss = (x @ alias).sum()
    serialization.load(tmp_path / "w.npz", layer)
    layer.W.grad = np.ones((3, 2))
    optim.SGD([layer.W], lr=1.0).step()
    loss.backward()  # the alias still holds the values of its forward pass
    np.testing.assert_array_equal(x.grad, np.tile(old.sum(axis=1), (4, 1)))


def test_module_to_the_same_device_and_dtype_keeps_aliases_counting():
    """``to()`` that changes nothing keeps the array, so an alias still shares it and its counter."""
    layer = nn.Linear(3, 2, dtype=np.float64)
    alias = layer.W.detach()
    x = tg.Tensor(np.ones((4, 3)), requires_grad=True)
    loss = (x @ alias).sum()
    layer.to("cpu", dtype=np.float64)
    layer.W.grad = np.ones((3, 2))
    optim.SGD([layer.W], lr=1.0).step()
    with pytest.raises(InPlaceModificationError):
        loss.backward()


def test_writing_into_the_array_itself_is_not_tracked():
    """The documented limit: ``t.data[...] = v`` is a raw NumPy write the library never sees."""
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    w.data[0] = 5.0
    loss.backward()  # no error: the gradient uses the new value, 2·5
    assert w.grad[0] == 10.0 and w._version == 0
