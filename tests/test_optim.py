"""optim: SGD and Adam against hand computation (and PyTorch when installed), clipping, non-finite
gradients, state dicts, in-place updates, and host syncs on a device."""

import warnings

import numpy as np
import pytest
import strict_backend
from devices import device_params, host
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim
from tinygrad_rnn.testing import examples


def make_params(seed=0, device="cpu", dtype="float64"):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.normal(size=s), dtype=dtype, device=device) for s in [(3, 2), (2,)]]


def grad_sequence(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=(3, 2)), rng.normal(size=(2,))] for _ in range(steps)]


def run(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = p.backend.asarray(g.astype(p.dtype))
        optimizer.step()
    return [p.numpy() for p in params]


# ---- the update rules --------------------------------------------------------------------------------


@settings(max_examples=examples(10))
@given(
    lr=st.floats(1e-3, 0.5),
    momentum=st.sampled_from([0.0, 0.9]),
    wd=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 100),
)
def test_sgd_matches_hand_computation(lr, momentum, wd, seed):
    params = make_params(seed)
    want = [p.numpy() for p in params]
    grads = grad_sequence(4, seed)
    bufs = [None, None]
    for step_grads in grads:  # PyTorch's rule, written out
        for i, g in enumerate(step_grads):
            g = g + wd * want[i]
            bufs[i] = g if bufs[i] is None else momentum * bufs[i] + g
            want[i] = want[i] - lr * (bufs[i] if momentum else g)
    got = run(optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd), params, grads)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


@settings(max_examples=examples(10))
@given(
    lr=st.floats(1e-4, 0.1),
    b1=st.sampled_from([0.0, 0.9]),
    b2=st.sampled_from([0.9, 0.999]),
    wd=st.sampled_from([0.0, 0.01]),
    seed=st.integers(0, 100),
)
def test_adam_matches_hand_computation(lr, b1, b2, wd, seed):
    params = make_params(seed)
    want = [p.numpy() for p in params]
    grads = grad_sequence(5, seed)
    m = [np.zeros_like(w) for w in want]
    v = [np.zeros_like(w) for w in want]
    for t, step_grads in enumerate(grads, start=1):  # Kingma & Ba, with L2 weight decay as in PyTorch
        for i, g in enumerate(step_grads):
            g = g + wd * want[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**t), v[i] / (1 - b2**t)
            want[i] = want[i] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    got = run(optim.Adam(params, lr=lr, betas=(b1, b2), weight_decay=wd), params, grads)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_matches_pytorch_when_installed(kind):
    torch = pytest.importorskip("torch")
    params = make_params(3)
    tparams = [torch.tensor(p.numpy(), requires_grad=True) for p in params]
    if kind == "sgd":
        ours, theirs = (
            optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01),
            torch.optim.SGD(tparams, lr=0.1, momentum=0.9, weight_decay=0.01),
        )
    else:
        ours, theirs = (
            optim.Adam(params, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
            torch.optim.Adam(tparams, lr=0.01, betas=(0.8, 0.99), weight_decay=0.01),
        )
    grads = grad_sequence(6, seed=3)
    got = run(ours, params, grads)
    for step_grads in grads:
        for p, g in zip(tparams, step_grads):
            p.grad = torch.tensor(g)
        theirs.step()
    for g, t in zip(got, tparams):
        np.testing.assert_allclose(g, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_updates_are_in_place_and_skip_params_without_grad():
    params = make_params()
    arrays = [p.data for p in params]
    before = params[1].numpy()
    opt = optim.Adam(params, lr=0.1)
    params[0].grad = np.ones((3, 2))
    opt.step()
    assert all(p.data is a for p, a in zip(params, arrays)), "the backend arrays must be updated in place"
    np.testing.assert_array_equal(params[1].numpy(), before, err_msg="a parameter without grad must not move")
    assert opt.state[1] == {}
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_optimizer_keeps_working_after_model_to_device():
    model = nn.Linear(3, 2, dtype="float64")
    opt = optim.SGD(model.parameters(), lr=0.5)
    model.to("strict")
    x = tg.Tensor(np.ones((1, 3)), device="strict")
    before = model.W.numpy()
    model(x).sum().backward()
    opt.step()
    np.testing.assert_allclose(model.W.numpy(), before - 0.5, rtol=1e-14)


# ---- clipping ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm(device, max_norm):
    params = make_params(device=device) + [nn.Parameter(np.zeros(4), device=device)]  # last: no grad
    grads = grad_sequence(1)[0]
    for p, g in zip(params, grads):
        p.grad = p.backend.asarray(g.copy())
    total = optim.clip_grad_norm_(params, max_norm)
    want = np.sqrt(sum((g**2).sum() for g in grads))
    assert isinstance(total, tg.Tensor) and total.shape == () and total.device == device
    np.testing.assert_allclose(float(total), want, rtol=1e-13)
    scale = min(1.0, max_norm / (want + 1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(host(p.grad), g * scale, rtol=1e-13)
    if max_norm < want:
        clipped = np.sqrt(sum((host(p.grad) ** 2).sum() for p in params[:2]))
        np.testing.assert_allclose(clipped, max_norm, rtol=1e-5)
    with pytest.raises(ValueError, match="max_norm must be positive"):
        optim.clip_grad_norm_(params, 0.0)


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("bad_value", [np.inf, np.nan])
def test_with_clipping_the_non_finite_gradient_is_blamed_on_its_own_parameter(device, bad_value):
    """Clipping by a nan scale would make every gradient nan and the error name the first one."""
    first, second = make_params(device=device)
    first.grad = first.backend.asarray(np.ones((3, 2)))
    bad = np.ones(2)
    bad[1] = bad_value
    second.grad = second.backend.asarray(bad)
    total = optim.clip_grad_norm_([first, second], 1.0)
    assert not np.isfinite(float(total))
    np.testing.assert_array_equal(host(first.grad), np.ones((3, 2)))  # left alone, not scaled by nan
    opt = optim.SGD([("first", first), ("second", second)], lr=0.1)
    with pytest.raises(optim.NonFiniteGradientError, match="gradient of second ") as info:
        opt.step()
    assert ".." not in str(info.value) and not str(info.value).endswith(".")


class CountHostReads:
    """Count device→host reads of the strict device (bool/float/int/item of a device array, copies)."""

    def __init__(self, monkeypatch):
        self.count = 0
        for name in ("__bool__", "__float__", "__int__", "get"):
            original = getattr(strict_backend.StrictArray, name)
            monkeypatch.setattr(strict_backend.StrictArray, name, self._wrap(original))

    def _wrap(self, original):
        def counted(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        return counted


def test_clip_reads_nothing_and_step_reads_the_device_once_not_once_per_parameter(monkeypatch):
    model = nn.RNN(3, 4, num_layers=3, device="strict")  # 9 parameters
    for p in model.parameters():
        p.grad = p.backend.asarray(np.ones(p.shape, dtype=np.float32))
    opt = optim.Adam(model.parameters())
    reads = CountHostReads(monkeypatch)
    total = optim.clip_grad_norm_(model.parameters(), 1.0)
    assert reads.count == 0, f"clip_grad_norm_ read the device {reads.count} times"
    assert total.device == "strict"
    reads.count = 0
    opt.step()
    assert reads.count == 1, f"step() read the device {reads.count} times"


# ---- non-finite gradients --------------------------------------------------------------------------------


@pytest.mark.parametrize("device", device_params())
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_step_on_non_finite_gradient_is_refused_and_changes_nothing(device, bad):
    model = nn.Linear(3, 2, dtype="float64", device=device)
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    before = model.state_dict()
    model.W.grad = model.W.backend.asarray(np.ones((3, 2)))
    grad_b = np.ones(2)
    grad_b[1] = bad
    model.b.grad = model.b.backend.asarray(grad_b)
    with pytest.raises(
        optim.NonFiniteGradientError, match=r"gradient of b \(shape \(2,\)\) contains inf or nan"
    ):
        opt.step()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"{k} changed by a refused step")
    assert all(s == {} for s in opt.state)

    skipping = optim.SGD(model.parameters(), lr=0.1, nonfinite="skip")
    assert skipping.step() is False and skipping.skipped_steps == 1
    np.testing.assert_array_equal(model.W.numpy(), before["W"])
    model.b.grad = model.b.backend.asarray(np.ones(2))
    assert skipping.step() is True and skipping.skipped_steps == 1
    assert not np.array_equal(model.W.numpy(), before["W"])


@pytest.mark.parametrize("device", device_params())
def test_finite_check_is_exact_when_sums_overflow_or_cancel(device):
    """The check sums all gradients first: huge finite values whose sum overflows to inf must
    still be accepted, and +inf in one gradient with −inf in another (sum nan) refused."""
    model = nn.Linear(2, 2, device=device)  # float32
    opt = optim.SGD(model.named_parameters(), lr=1e-40)
    model.W.grad = model.W.backend.asarray(np.full((2, 2), 3e38, dtype=np.float32))
    model.b.grad = model.b.backend.asarray(np.full(2, 3e38, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning leaks out
        assert opt.step() is True
    model.W.grad = model.W.backend.asarray(np.array([[np.inf, 0], [0, 0]], dtype=np.float32))
    model.b.grad = model.b.backend.asarray(np.array([-np.inf, 0], dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(optim.NonFiniteGradientError, match=r"gradient of W \(shape \(2, 2\)\)"):
            opt.step()


# ---- state dicts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_state_dict_round_trip_continues_exactly(kind):
    def make(params):
        if kind == "sgd":
            return optim.SGD(params, lr=0.1, momentum=0.9)
        return optim.Adam(params, lr=0.05, betas=(0.8, 0.9))

    grads = grad_sequence(6, seed=7)
    params = make_params(2)
    straight = make(params)
    want = run(straight, params, grads)

    params = make_params(2)
    first = make(params)
    run(first, params, grads[:3])
    sd = first.state_dict()
    resumed_params = [nn.Parameter(p.numpy()) for p in params]
    resumed = make(resumed_params)
    resumed.load_state_dict(sd)
    got = run(resumed, resumed_params, grads[3:])
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert resumed.state_dict()["hyperparameters"] == straight.state_dict()["hyperparameters"]


def test_load_state_dict_mismatch_is_refused_and_changes_nothing():
    params = make_params()
    opt = optim.Adam(params, lr=0.1)
    run(opt, params, grad_sequence(2))
    before = opt.state_dict()

    other = optim.Adam([nn.Parameter(np.zeros((2, 2))), nn.Parameter(np.zeros(2))], lr=0.5)
    run(other, other.params, [[np.ones((2, 2)), np.ones(2)]])
    with pytest.raises(
        optim.OptimizerStateError,
        match=r"parameter 0: state 'exp_avg' of shape \(2, 2\), parameter has \(3, 2\)",
    ):
        opt.load_state_dict(other.state_dict())
    with pytest.raises(optim.OptimizerStateError, match="it is for 'SGD', this is Adam"):
        opt.load_state_dict(optim.SGD(params, lr=1.0).state_dict())
    after = opt.state_dict()
    assert after["hyperparameters"] == before["hyperparameters"]
    for i in before["state"]:
        for k in before["state"][i]:
            np.testing.assert_array_equal(after["state"][i][k], before["state"][i][k])


def test_constructor_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="requires_grad=True"):
        optim.SGD([tg.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="need lr > 0"):
        optim.Adam(make_params(), lr=-1)
    p = make_params()
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([p[0], p[0]], lr=0.1)
