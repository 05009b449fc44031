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


@pytest.mark.parametrize("make_optimizer", [lambda ps: optim.SGD(ps, lr=1.0),
                                            lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                            lambda ps: optim.Adam(ps, lr=0.1)], ids=["sgd", "momentum", "adam"])
def test_an_optimizer_step_before_backward_is_refused(device, make_optimizer):
    a, w, loss = _graph(device)
    w.grad = w.xp.ones_like(w.data)
    make_optimizer([w]).step()
    with pytest.raises(InPlaceModificationError, match=r"mul.*input 1.*shape \(3,\).*version 0 -> 1"):
        loss.backward()
    assert a.grad is None, "a.grad would hold the new w"


@pytest.mark.parametrize("change", [
    lambda m: m.load_state_dict({k: v + 1 for k, v in m.state_dict().items()}),
    lambda m: setattr(m.W, "data", m.W.numpy() * 2),
    lambda m: m.double(),
], ids=["load_state_dict", "data_assignment", "to_dtype"])
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
    with pytest.raises(InPlaceModificationError, match=r"backward through tanh: its input 0 \(a tensor 'V'\)"):
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
    from tinygrad_rnn import checkpoint
    layer = nn.Linear(3, 2)
    checkpoint.save(tmp_path / "w.npz", layer)
    loss = layer(tg.randn(4, 3)).sum()
    checkpoint.load(tmp_path / "w.npz", layer)
    with pytest.raises(InPlaceModificationError):
        loss.backward()
