"""Forward mode (``tg.jvp``): every op's tangent rule, driven by the op registry (``op_registry.py``).

For every differentiable op, in float64:

* the tangent J v matches central finite differences of the op (random directions; the basis
  directions where a random one would cross a kink, as for max at a tie);
* the dot-product test ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ holds to 1e-10 against the op's own backward, with
  tangents carrying a leading axis of directions (so the rule and the backward are exact
  transposes of each other, not just both close to the differences);
* P directions in one pass equal P passes of one direction.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_registry import OPS, as_tuple

import tinygrad_rnn as tg
from tinygrad_rnn.testing import examples

DIFFERENTIABLE = [spec for spec in OPS if spec.differentiable]
by_op = pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=lambda s: s.name)


def _jvp(spec, case, directions, *, batched, record=False):
    """``tg.jvp`` of the spec's fn with respect to its differentiable inputs (the rest constant)."""
    tensors = case.tensors("cpu", requires_grad=record)
    moving = [i for i in range(len(tensors)) if case.differentiable(i)]

    def fn(*xs):
        args = list(tensors)
        for i, x in zip(moving, xs):
            args[i] = x
        return spec.fn(*args, **case.params)

    outs, tangents = tg.jvp(
        fn, tuple(tensors[i] for i in moving), tuple(directions), batched=batched, record=record
    )
    return tensors, moving, as_tuple(outs), as_tuple(tangents)


def _values(spec, case, moving, directions, step):
    """The spec's outputs (host arrays) at the differentiable inputs moved by ``step`` · direction."""
    arrays = list(case.arrays)
    for i, v in zip(moving, directions):
        arrays[i] = arrays[i] + step * v
    tensors = [tg.Tensor(a, device="cpu") for a in arrays]
    return [o.numpy() for o in as_tuple(spec.fn(*tensors, **case.params))]


def _directions(case, rng, P=None):
    lead = () if P is None else (P,)
    return [rng.standard_normal(lead + a.shape) for i, a in enumerate(case.arrays) if case.differentiable(i)]


@by_op
@settings(max_examples=examples(10), deadline=None)
@given(data=st.data())
def test_tangent_matches_finite_differences(spec, data):
    case = data.draw(spec.cases, label="case")
    kw = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3, **spec.grad_kwargs}
    eps = kw["eps"]
    if "direction" in spec.grad_modes:
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        directions = [_directions(case, rng)]
    else:  # one basis direction at a time (a random one would cross max's tie)
        shapes = [a.shape for i, a in enumerate(case.arrays) if case.differentiable(i)]
        directions = []
        for j, shape in enumerate(shapes):
            for k in range(int(np.prod(shape))):
                basis = [np.zeros(s) for s in shapes]
                basis[j].reshape(-1)[k] = 1.0
                directions.append(basis)
    for v in directions:
        _, moving, _, tangents = _jvp(spec, case, v, batched=False)
        plus, minus = _values(spec, case, moving, v, eps), _values(spec, case, moving, v, -eps)
        for k, (t, p, m) in enumerate(zip(tangents, plus, minus)):
            numeric = (p.astype(np.float64) - m) / (2 * eps)
            analytic = t.numpy()
            bad = np.abs(numeric - analytic) > kw["atol"] + kw["rtol"] * np.abs(numeric)
            assert not bad.any(), (
                f"{spec.name}: output {k}, element {np.argwhere(bad)[0].tolist()}: finite differences "
                f"{numeric[bad][0]!r}, tangent {analytic[bad][0]!r}"
            )


@by_op
@settings(max_examples=examples(12), deadline=None)
@given(data=st.data())
def test_tangent_is_the_transpose_of_the_backward(spec, data):
    """⟨u, J v_p⟩ = ⟨Jᵀ u, v_p⟩ for P = 3 directions pushed in one pass, u a random upstream gradient."""
    case = data.draw(spec.cases, label="case")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    P = 3
    v = _directions(case, rng, P)
    tensors, moving, outs, tangents = _jvp(spec, case, v, batched=True, record=True)
    us = [rng.standard_normal(o.shape) for o in outs]
    for o, u in zip(outs, us):
        if o.requires_grad:
            o.backward(u)
    for p in range(P):
        lhs = sum(float(np.sum(u * t.numpy()[p])) for u, t in zip(us, tangents))
        scale = sum(float(np.sum(np.abs(u * t.numpy()[p]))) for u, t in zip(us, tangents))
        grads = [
            tensors[i].grad if tensors[i].grad is not None else np.zeros(tensors[i].shape) for i in moving
        ]
        rhs = sum(float(np.sum(g * vi[p])) for g, vi in zip(grads, v))
        scale = max(scale, sum(float(np.sum(np.abs(g * vi[p]))) for g, vi in zip(grads, v)), 1.0)
        assert abs(lhs - rhs) <= spec.tangent_rtol * scale, (
            f"{spec.name}: direction {p}: <u, J v> = {lhs!r} (forward), <J^T u, v> = {rhs!r} (backward), "
            f"difference {lhs - rhs:.3e} > {spec.tangent_rtol} x {scale:.3e}"
        )


@by_op
@settings(max_examples=examples(6), deadline=None)
@given(data=st.data())
def test_directions_in_one_pass_equal_one_pass_each(spec, data):
    case = data.draw(spec.cases, label="case")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    v = _directions(case, rng, 2)
    _, _, _, together = _jvp(spec, case, v, batched=True)
    for p in range(2):
        _, _, _, alone = _jvp(spec, case, [vi[p] for vi in v], batched=False)
        for k, (t, a) in enumerate(zip(together, alone)):
            np.testing.assert_allclose(
                t.numpy()[p],
                a.numpy(),
                rtol=1e-12,
                atol=1e-12,
                err_msg=f"{spec.name}: output {k}, direction {p}",
            )


# ---- tg.jvp itself ------------------------------------------------------------------------------


def test_jvp_returns_outputs_and_tangents_in_fn_form():
    x = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True)
    out, t = tg.jvp(lambda a: (a * a).sum(), (x,), (np.array([1.0, 0.0]),))
    assert isinstance(out, tg.Tensor) and isinstance(t, tg.Tensor)
    assert out.item() == 1.25 and t.item() == 1.0  # d/dε Σ (x + ε e₀)² = 2 x₀
    assert not out.requires_grad and out.is_leaf  # forward mode records no graph
    outs, ts = tg.jvp(lambda a: (a.exp(), a * 0.0 + 1.0, a.sum()), (x,), (np.ones(2),))
    assert len(outs) == len(ts) == 3
    np.testing.assert_allclose(ts[0].numpy(), np.exp([0.5, -1.0]), rtol=1e-15)


def test_jvp_sees_tensors_read_through_a_closure():
    """The tangent belongs to the tensor: a weight read as ``self.V`` moves like an argument."""
    V = tg.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]))
    h = tg.Tensor(np.array([[1.0, -1.0]]))
    _, t = tg.jvp(lambda _: (h @ V).tanh(), (V,), (np.eye(2),))
    y = np.array([[1.0, -1.0]]) @ V.numpy()
    np.testing.assert_allclose(t.numpy(), (1 - np.tanh(y) ** 2) * (np.array([[1.0, -1.0]]) @ np.eye(2)))


def test_an_output_no_input_reaches_has_a_zero_tangent():
    x, c = tg.Tensor(np.ones(3)), tg.Tensor(np.arange(3.0))
    _, (tx, tc) = tg.jvp(lambda a: (a * 2.0, c.exp()), (x,), (np.ones((4, 3)),), batched=True)
    assert tc.shape == (4, 3) and not tc.numpy().any()
    np.testing.assert_array_equal(tx.numpy(), np.full((4, 3), 2.0))


def test_forward_mode_is_off_outside_jvp():
    from tinygrad_rnn import tensor

    x = tg.Tensor(np.ones(2))
    tg.jvp(lambda a: a * 3.0, (x,), (np.ones(2),))
    assert tensor._forward is None
    with pytest.raises(ZeroDivisionError):
        tg.jvp(lambda a: 1 / 0, (x,), (np.ones(2),))
    assert tensor._forward is None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: tg.jvp(lambda a: a, (x,), ()), "1 inputs but 0 tangents"),
        (
            lambda x: tg.jvp(lambda a: a, (x,), (np.ones(3),)),
            r"tangent 0 has shape \(3,\), input 0 has shape \(2,\)",
        ),
        (lambda x: tg.jvp(lambda a: a, (x,), (np.ones(2),), batched=True), r"\(P,\) \+ its shape"),
        (lambda x: tg.jvp(lambda a, b: a, (x, x), (np.ones(2), np.ones(2))), "appears twice"),
    ],
)
def test_bad_tangents_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call(tg.Tensor(np.ones(2)))


def test_an_op_without_a_rule_says_so():
    class Cube(tg.Op):
        name = "cube"

        def forward(self, a):
            return a**3

    with pytest.raises(NotImplementedError, match="cube has no tangent rule"):
        tg.jvp(lambda a: Cube.apply(a), (tg.Tensor(np.ones(2)),), (np.ones(2),))
