"""gradcheck catches what it promises to catch, and says where and by how much."""

import re

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import Op
from tinygrad_rnn.gradcheck import GradcheckError, gradcheck

MODES = ["direction", "full"]


class HalfSquare(Op):
    """y = a², with a planted bug: backward says 1·a instead of 2·a."""

    name = "half_square"

    def forward(self, a):
        self.a = a
        return a * a

    def backward(self, g):
        return g * self.a


class MeanOfUpstream(Op):
    """y = 2a elementwise, with a bug that all-ones upstream gradients cannot see.

    The backward returns 2·mean(g) everywhere instead of 2·g: identical when g is all ones
    (the upstream of ``sum(y)``), wrong for any other upstream.
    """

    name = "mean_of_upstream"

    def forward(self, a):
        return 2 * a

    def backward(self, g):
        return self.xp.ones_like(g) * (2 * g.mean())


class Jittery(Op):
    """y = 3a whose backward drifts by 1e-3 on every call: two passes disagree."""

    name = "jittery"
    calls = 0

    def forward(self, a):
        return 3 * a

    def backward(self, g):
        Jittery.calls += 1
        return g * (3 + 1e-3 * Jittery.calls)


def leaf(values, device="cpu", name=None, dtype="float64"):
    return tg.Tensor(np.asarray(values), device=device, dtype=dtype, requires_grad=True, name=name)


X = [[0.7, -1.2, 1.5], [0.9, 2.0, -0.8]]


def numbers(message):
    """The numeric and analytic values a failure message reports."""
    found = re.search(r"numeric (\S+), analytic (\S+),", message)
    assert found, message
    return float(found.group(1)), float(found.group(2))


# ---- a planted wrong backward ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_planted_wrong_backward_is_caught_and_reported(device, mode):
    x = leaf(X, device)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: HalfSquare.apply(a), [x], mode=mode, seed=0)
    message = str(info.value)
    assert "input 0 of shape (2, 3)" in message
    assert "abs error" in message and "rel error" in message
    if mode == "full":
        assert "element (0, 0)" in message  # the first element, in order
    else:
        assert "random direction" in message and "seed 0" in message
    numeric, analytic = numbers(message)
    assert numeric == pytest.approx(2 * analytic, rel=1e-5)  # the true gradient is twice the planted one
    np.testing.assert_array_equal(x.numpy(), X)  # inputs restored after the failure


@pytest.mark.parametrize("mode", MODES)
def test_the_report_names_the_wrong_input_among_several(mode):
    a, w = leaf(X, name="x"), leaf([[0.5, -1.0, 2.0]], name="W")
    with pytest.raises(GradcheckError, match=re.escape("input 1 (W) of shape (1, 3)")):
        gradcheck(lambda a, w: (a * HalfSquare.apply(w)).tanh(), [a, w], mode=mode, seed=3)


@pytest.mark.parametrize("mode", MODES)
def test_a_correct_gradient_passes_and_leaves_the_inputs_alone(device, mode):
    x, w = leaf(X, device), leaf([[0.5], [-1.0], [2.0]], device)
    assert (
        gradcheck(lambda x, w: (x @ w).tanh() * x.sum(axis=1, keepdims=True), [x, w], mode=mode, seed=1)
        is True
    )
    np.testing.assert_array_equal(x.numpy(), X)


# ---- random upstream gradients, never all ones -----------------------------------------------


def _passes_with_all_ones_upstream(fn, x_values, eps=1e-6):
    """What a checker using ∂sum(y)/∂x would see: autograd and differences agree for this bug."""
    x = leaf(x_values)
    fn(x).sum().backward()
    numeric = np.zeros_like(x.numpy())
    for idx in np.ndindex(*numeric.shape):
        plus, minus = x.numpy(), x.numpy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (fn(tg.Tensor(plus)).sum().item() - fn(tg.Tensor(minus)).sum().item()) / (2 * eps)
    return np.allclose(x.grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_a_bug_invisible_to_all_ones_upstream_is_caught(device, mode):
    fn = MeanOfUpstream.apply
    assert _passes_with_all_ones_upstream(fn, X)  # the bug hides from an all-ones upstream ...
    with pytest.raises(GradcheckError):  # ... not from gradcheck's random one
        gradcheck(fn, [leaf(X, device)], mode=mode, seed=0)


# ---- float32 ---------------------------------------------------------------------------------


def test_float32_inputs_are_refused_by_default():
    with pytest.raises(TypeError, match="float64.*allow_float32=True"):
        gradcheck(lambda a: a.tanh(), [leaf(X, dtype="float32")])


@pytest.mark.parametrize("mode", MODES)
def test_float32_with_allow_float32_uses_looser_tolerances(mode):
    assert gradcheck(
        lambda a: a.tanh() * a, [leaf(X, dtype="float32")], mode=mode, seed=0, allow_float32=True
    )
    with pytest.raises(GradcheckError):
        gradcheck(HalfSquare.apply, [leaf(X, dtype="float32")], mode=mode, seed=0, allow_float32=True)


# ---- fn must be a pure function of its inputs ------------------------------------------------


def test_a_function_that_changes_its_input_is_caught(device):
    def sneaky(a):
        a.data = a.data + 1.0  # e.g. an in-place update hidden in a forward pass
        return a * 2

    with pytest.raises(GradcheckError, match="changed its input 0"):
        gradcheck(sneaky, [leaf(X, device)], seed=0)


def test_two_backward_passes_that_disagree_are_caught(device):
    with pytest.raises(GradcheckError, match=r"two backward passes disagree on input 0 of shape \(2, 3\)"):
        gradcheck(Jittery.apply, [leaf(X, device)], seed=0)


def test_a_nan_gradient_is_a_mismatch():
    class NanGrad(HalfSquare):
        def backward(self, g):
            return g * self.a * np.nan

    with pytest.raises(GradcheckError, match="analytic nan"):
        gradcheck(NanGrad.apply, [leaf(X)], mode="full", seed=0)


# ---- arguments -------------------------------------------------------------------------------


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda a: a * 2, [tg.Tensor(X, dtype="float64")])


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        gradcheck(lambda a: a * 2, [leaf(X)], mode="forward")


def test_the_seed_makes_the_check_reproducible():
    def message(seed):
        with pytest.raises(GradcheckError) as info:
            gradcheck(HalfSquare.apply, [leaf(X)], seed=seed)
        return str(info.value)

    assert message(5) == message(5) and message(5) != message(6)


@pytest.mark.parametrize("mode", ["direction", "full"])
def test_inputs_are_restored_when_fn_fails_on_a_shifted_input(mode):
    x = tg.Tensor(np.array([0.5, 2.0, -1.0]), requires_grad=True, dtype="float64")
    original = x.numpy()
    calls = []

    def fn(t):
        calls.append(1)
        if len(calls) > 3:  # the forward and both backward passes work …
            raise RuntimeError("fails on a shifted input")  # … the finite differences do not
        return t * t

    with pytest.raises(RuntimeError, match="shifted"):
        gradcheck(fn, [x], mode=mode, seed=0)
    np.testing.assert_array_equal(x.numpy(), original)


# ---- large outputs: differences per element, rounding counted -------------------------------


class OffByOnePercent(Op):
    """y = a + c for a large constant c, with a planted bug: backward says 1.01 instead of 1."""

    name = "off_by_one_percent"

    def forward(self, a, c=1e8):
        return a + c

    def backward(self, g):
        return g * 1.01


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(4))
def test_one_large_output_does_not_swamp_the_change_of_a_small_one(mode, seed):
    # exp(10·3) ≈ 1e13 next to exp(−5) ≈ 7e-3: in a summed loss the small element's change is
    # below the large one's last bit; differenced per element it is not.
    assert gradcheck(lambda a: (a * 10).exp(), [leaf([3.0, -0.5])], mode=mode, seed=seed)


@pytest.mark.parametrize("mode", MODES)
def test_a_correct_op_with_large_outputs_passes(mode):
    # a + 1e8 is rounded to 1.5e-8, against a change of 2e-6 at eps: the default eps is raised
    assert gradcheck(lambda a: a + 1e8, [leaf(X)], mode=mode, seed=0)


@pytest.mark.parametrize("mode", MODES)
def test_outputs_too_large_for_the_eps_given_are_inconclusive_not_wrong(mode):
    from tinygrad_rnn.gradcheck import GradcheckInconclusive

    with pytest.raises(GradcheckInconclusive, match=r"inconclusive at eps 1e-06: .*Try eps=") as info:
        gradcheck(lambda a: a + 1e8, [leaf(X)], mode=mode, seed=0, eps=1e-6)
    assert not isinstance(info.value, AssertionError)  # so never a GradcheckError
    with pytest.raises(GradcheckInconclusive, match=r"inconclusive at eps 0\.001"):  # largest eps tried
        gradcheck(lambda a: a + 1e13, [leaf(X)], mode=mode, seed=0)


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_gradient_with_large_outputs_is_still_caught(mode):
    with pytest.raises(GradcheckError) as info:
        gradcheck(OffByOnePercent.apply, [leaf(X)], mode=mode, seed=0)
    numeric, analytic = numbers(str(info.value))
    assert analytic / numeric == pytest.approx(1.01, abs=1e-3)  # the planted 1 %, measured through 1e8


def test_a_large_input_is_shifted_by_the_step_it_actually_takes():
    # 1e8 + 1e-6 is stored as 1e8 + 1.0430812835693359e-06: dividing by 2e-6 would be 4 % off
    assert gradcheck(lambda a: a * a, [leaf([1e8, -0.5])], mode="full", seed=0)


# ---- the same tensor passed twice ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_the_same_tensor_twice_is_checked_once_with_both_uses(mode):
    x = leaf(X)
    assert gradcheck(lambda a, b: a * b, [x, x], mode=mode, seed=0)
    with pytest.raises(GradcheckError, match=r"input 0 of shape \(2, 3\), also passed as input 1"):
        gradcheck(lambda a, b: a * HalfSquare.apply(b), [x, x], mode=mode, seed=0)
