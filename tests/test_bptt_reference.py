"""The hand-derived BPTT reference: right by finite differences, and equal to autograd through nn.RNN;
the benchmark's fast form of its sweeps (benchmarks/numpy_bptt.py) equal to the step-by-step one."""

import importlib.util
import re
from pathlib import Path

import numpy as np
from checks import assert_relative
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt import rnn_bptt, rnn_forward
from tinygrad_rnn.bptt.reference import gru_bptt, lstm_bptt, sigmoid
from tinygrad_rnn.testing import examples, float_sequences

README = Path(__file__).resolve().parents[1] / "README.md"


def _load_fast_sweeps():
    """benchmarks/numpy_bptt.py is beside the package, not in it: load it by path."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "numpy_bptt.py"
    spec = importlib.util.spec_from_file_location("numpy_bptt", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fast = _load_fast_sweeps()


def test_reference_matches_finite_differences():
    """The reference stands on its own: central differences of its own forward pass agree."""
    rng = np.random.default_rng(0)
    B, T, E, H = 2, 4, 3, 3
    x, W, V, b = (
        rng.normal(size=(B, T, E)),
        rng.normal(0, 0.6, (E, H)),
        rng.normal(0, 0.6, (H, H)),
        rng.normal(size=H),
    )
    h0, lengths = rng.normal(size=(B, H)), np.array([4, 2])
    u, u_last = rng.normal(size=(B, T, H)), rng.normal(size=(B, H))

    def loss(x, W, V, b, h0):
        out, h = rnn_forward(x, W, V, b, h0=h0, lengths=lengths)
        return np.sum(out * u) + np.sum(h * u_last)

    grads = rnn_bptt(x, W, V, b, u, h0=h0, lengths=lengths, d_h_last=u_last)
    args = dict(x=x, W=W, V=V, b=b, h0=h0)
    for name, want in [("x", grads.dx), ("W", grads.dW), ("V", grads.dV), ("b", grads.db), ("h0", grads.dh0)]:
        numeric = np.zeros_like(args[name])
        for idx in np.ndindex(*args[name].shape):
            plus = {k: v.copy() for k, v in args.items()}
            minus = {k: v.copy() for k, v in args.items()}
            plus[name][idx] += 1e-6
            minus[name][idx] -= 1e-6
            numeric[idx] = (loss(**plus) - loss(**minus)) / 2e-6
        np.testing.assert_allclose(want, numeric, rtol=1e-6, atol=1e-8, err_msg=f"d{name}")


@settings(max_examples=examples(25))
@given(
    seq=float_sequences(features=st.integers(1, 5), batch_size=st.integers(1, 4), max_len=st.integers(1, 8)),
    hidden=st.integers(1, 5),
    use_lengths=st.booleans(),
    with_h0=st.booleans(),
    with_d_last=st.booleans(),
    init=st.sampled_from(["uniform", "orthogonal", "identity"]),
    seed=st.integers(0, 2**16),
)
def test_autograd_through_nn_RNN_equals_hand_derived_bptt(
    seq, hidden, use_lengths, with_h0, with_d_last, init, seed
):
    """dW, dV, db, dh0, dx and every state's ∂L/∂h_t agree to 1e-10 relative, in float64."""
    rng = np.random.default_rng(seed)
    x, lengths = seq
    lengths = lengths if use_lengths else None
    B, T, E = x.shape
    rnn = nn.RNN(E, hidden, init=init, dtype="float64", rng=rng)
    cell = rnn.cells[0]
    h0 = rng.normal(size=(B, hidden)) if with_h0 else None
    u = rng.normal(size=(B, T, hidden))
    u_last = rng.normal(size=(B, hidden)) if with_d_last else None

    xt = tg.Tensor(x, requires_grad=True)
    h0t = tg.Tensor(h0[None] if with_h0 else np.zeros((1, B, hidden)), requires_grad=True)
    out, h_last, (states,) = rnn(xt, h0t if with_h0 else None, lengths=lengths, return_states=True)
    for s in states:
        s.retain_grad()
    loss = (out * tg.Tensor(u)).sum()
    if with_d_last:
        loss = loss + (h_last[0] * tg.Tensor(u_last)).sum()
    loss.backward()

    want_out, want_h = rnn_forward(x, cell.W.numpy(), cell.V.numpy(), cell.b.numpy(), h0=h0, lengths=lengths)
    ref = rnn_bptt(
        x, cell.W.numpy(), cell.V.numpy(), cell.b.numpy(), u, h0=h0, lengths=lengths, d_h_last=u_last
    )
    assert_relative(out.numpy(), want_out, "outputs")
    assert_relative(h_last.numpy()[0], want_h, "h_last")
    assert_relative(cell.W.grad, ref.dW, "dW")
    assert_relative(cell.V.grad, ref.dV, "dV")
    assert_relative(cell.b.grad, ref.db, "db")
    assert_relative(xt.grad, ref.dx, "dx")
    if with_h0:
        assert_relative(h0t.grad[0], ref.dh0, "dh0")
    assert_relative(np.stack([s.grad for s in states], axis=1), ref.dh, "dL/dh_t (retained state gradients)")


def test_reference_without_lengths_is_the_textbook_recursion():
    """No lengths: δ_t = (∂L/∂h_t + δ_{t+1} Vᵀ) ⊙ (1 − h_t²) and dh0 = δ_1 Vᵀ, written out once more."""
    rng = np.random.default_rng(4)
    B, T, E, H = 3, 5, 2, 4
    x, W, V, b = (
        rng.normal(size=(B, T, E)),
        rng.normal(size=(E, H)),
        rng.normal(size=(H, H)),
        rng.normal(size=H),
    )
    u = rng.normal(size=(B, T, H))
    hs = [np.zeros((B, H))]
    for t in range(T):
        hs.append(np.tanh(x[:, t] @ W + hs[-1] @ V + b))
    delta_next = np.zeros((B, H))
    dV = np.zeros((H, H))
    for t in range(T, 0, -1):
        delta_next = (u[:, t - 1] + delta_next @ V.T) * (1 - hs[t] ** 2)
        dV += hs[t - 1].T @ delta_next
    ref = rnn_bptt(x, W, V, b, u)
    np.testing.assert_allclose(ref.dV, dV, rtol=1e-13)
    np.testing.assert_allclose(ref.dh0, delta_next @ V.T, rtol=1e-13)


@settings(max_examples=examples(15))
@given(
    B=st.integers(1, 4),
    T=st.integers(1, 7),
    E=st.integers(1, 4),
    H=st.integers(1, 5),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_the_benchmarks_vanilla_sweep_equals_the_step_by_step_one(B, T, E, H, with_h0, seed):
    """The benchmark's fast form (weight gradients one product each) against rnn_bptt, float64."""
    rng = np.random.default_rng(seed)
    x, W, V, b = (
        rng.normal(size=(B, T, E)),
        rng.normal(size=(E, H)),
        rng.normal(size=(H, H)),
        rng.normal(size=H),
    )
    h0 = rng.normal(size=(B, H)) if with_h0 else None
    d_last = rng.normal(size=(B, H))
    hs = fast.rnn_forward_vectorised(np, x, W, V, b, h0)
    outputs, h_last = rnn_forward(x, W, V, b, h0)
    assert_relative(hs[1:].transpose(1, 0, 2), outputs, "states h_1..h_T")
    assert_relative(hs[T], h_last, "h_T")
    dW, dV, db, dh0 = fast.rnn_bptt_vectorised(np, x, V, hs, d_last)
    ref = rnn_bptt(x, W, V, b, np.zeros((B, T, H)), h0=h0, d_h_last=d_last)
    for name, got, want in (
        ("dW", dW, ref.dW),
        ("dV", dV, ref.dV),
        ("db", db, ref.db),
        ("dh0", dh0, ref.dh0),
    ):
        assert_relative(got, want, name, tol=1e-12)


@settings(max_examples=examples(10))
@given(
    B=st.integers(1, 4),
    T=st.integers(1, 7),
    E=st.integers(1, 4),
    H=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_the_benchmarks_gated_sweeps_equal_the_step_by_step_ones(B, T, E, H, seed):
    """The benchmark's fast forms (weight gradients one product each) against lstm_bptt / gru_bptt."""
    rng = np.random.default_rng(seed)
    x, d_last = rng.normal(size=(B, T, E)), rng.normal(size=(B, H))
    W, V, b = rng.normal(size=(E, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    hs, cs, gates, tanh_c = fast.lstm_forward_vectorised(np, x, W, V, b)
    got = fast.lstm_bptt_vectorised(np, x, V, hs, cs, gates, tanh_c, d_last)
    ref = lstm_bptt(x, W, V, b, np.zeros((B, T, H)), d_h_last=d_last)
    for name, got, want in zip(
        ("dW", "dV", "db", "dh0", "dc0"), got, (ref.dW, ref.dV, ref.db, ref.dh0, ref.dc0)
    ):
        assert_relative(got, want, f"lstm {name}", tol=1e-12)
    W, V, b, b_hn = (
        rng.normal(size=(E, 3 * H)),
        rng.normal(size=(H, 3 * H)),
        rng.normal(size=3 * H),
        rng.normal(size=H),
    )
    hs, gates, hn = fast.gru_forward_vectorised(np, x, W, V, b, b_hn)
    got = fast.gru_bptt_vectorised(np, x, V, hs, gates, hn, d_last)
    ref = gru_bptt(x, W, V, b, b_hn, np.zeros((B, T, H)), d_h_last=d_last)
    for name, got, want in zip(
        ("dW", "dV", "db", "db_hn", "dh0"), got, (ref.dW, ref.dV, ref.db, ref.db_hn, ref.dh0)
    ):
        assert_relative(got, want, f"gru {name}", tol=1e-12)


def test_the_one_sigmoid_is_the_logistic_function_in_place_or_not():
    """(1 + tanh(a/2))/2 never overflows; far left it is exact to rounding in absolute terms (the
    1 + tanh cancels), which is what a gate value in [0, 1] needs."""
    a = np.array([-800.0, -30.0, -1.0, 0.0, 0.5, 30.0, 800.0])
    want = 1 / (1 + np.exp(-np.clip(a, -700, 700)))  # exp(800) would overflow: σ(±800) is 0 or 1
    np.testing.assert_allclose(sigmoid(a), want, rtol=1e-15, atol=2e-16)
    inplace = a.copy()
    assert sigmoid(inplace, out=inplace) is inplace and np.array_equal(inplace, sigmoid(a))


def test_readme_bptt_in_20_lines_runs():
    """The README's "Backprop through time in 20 lines" snippet runs and its check passes."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Backprop through time in 20 lines", 1)
    assert len(section) == 2, "README lost its 'Backprop through time in 20 lines' section"
    code = re.search(r"```python\n(.*?)```", section[1], re.S).group(1)
    assert len(code.strip().splitlines()) <= 22
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
