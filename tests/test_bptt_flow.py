"""bptt.flow: ‖∂L/∂h_t‖ per step, checked against the gradient w.r.t. a substituted state (float64)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.bptt import rnn_bptt
from tinygrad_rnn.bptt.flow import (
    flow_from_grads,
    format_gradient_flow,
    gradient_flow,
    gradient_ratio,
    plot_gradient_flow,
    state_gradients,
)
from tinygrad_rnn.testing import examples, float_sequences

F64 = "float64"


def _setup(B=3, T=6, E=2, H=4, seed=0, **rnn_kwargs):
    rng = np.random.default_rng(seed)
    rnn = nn.RNN(E, H, dtype=F64, rng=rng, **rnn_kwargs)
    x = tg.Tensor(rng.normal(size=(B, T, E)))
    R1 = tg.Tensor(rng.normal(size=(B, T, H)))
    R2 = tg.Tensor(rng.normal(size=(B, H)))

    def loss_fn(outputs, h_last):
        # reads every output and, nonlinearly, the last state: gradients reach h_t by both paths
        return (outputs * R1).sum() + ((h_last[0] * R2).tanh() ** 2).sum()

    return rnn, x, loss_fn


def _gradient_at_substituted_state(rnn, x, loss_fn, t):
    """∂L/∂h_t computed directly: h_t becomes a leaf, the rest of the sequence is rerun from it."""
    B, T, _ = x.shape
    with tg.no_grad():
        outputs, _ = rnn(x)
    before = outputs.numpy()[:, :t]  # outputs h_1..h_{t-1}: constants now
    h_t = tg.Tensor(outputs.numpy()[:, t], requires_grad=True)
    pieces = [tg.Tensor(before)] if t > 0 else []
    pieces.append(h_t.reshape(B, 1, -1))
    if t < T - 1:
        after, h_last = rnn(x[:, t + 1 :], h0=h_t.reshape(1, B, -1))  # h_{t+1}.. from the leaf
        pieces.append(after)
    else:
        h_last = h_t.reshape(1, B, -1)
    loss_fn(tg.cat(pieces, axis=1), h_last).backward()
    return h_t.grad


def test_flow_equals_norm_of_gradient_wrt_each_substituted_state():
    rnn, x, loss_fn = _setup()
    flow = gradient_flow(rnn, x, None, loss_fn)
    T = x.shape[1]
    assert flow.shape == (T,)
    for t in range(T):
        direct = _gradient_at_substituted_state(rnn, x, loss_fn, t)
        want = np.linalg.norm(direct, axis=-1).mean()
        assert flow[t] == pytest.approx(want, rel=1e-10), f"t = {t + 1}: flow {flow[t]} vs direct {want}"


def test_state_gradients_are_the_full_vectors():
    rnn, x, loss_fn = _setup(seed=1)
    result = state_gradients(rnn, x, None, loss_fn)
    for t in (0, 3, 5):
        np.testing.assert_allclose(
            result.grads[:, t],
            _gradient_at_substituted_state(rnn, x, loss_fn, t),
            rtol=1e-10,
            atol=1e-13,
            err_msg=f"dh at t = {t + 1}",
        )


@settings(max_examples=examples(10), deadline=None)
@given(
    seqs=float_sequences(features=st.just(2), batch_size=st.integers(1, 4), max_len=st.integers(1, 7)),
    extra=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_flow_with_padding_matches_hand_derived_bptt(seqs, extra, seed):
    """With lengths, the flow averages ‖dh_t‖ over the sequences that reach t; nan where none do."""
    rng = np.random.default_rng(seed)
    B, T, E = seqs.values.shape
    x = np.concatenate([seqs.values, np.zeros((B, extra, E))], axis=1)  # steps no sequence reaches
    rnn = nn.RNN(E, 3, dtype=F64, rng=rng)
    R1, R2 = rng.normal(size=(B, T + extra, 3)), rng.normal(size=(B, 3))
    flow = gradient_flow(
        rnn, x, seqs.lengths, lambda out, h: (out * tg.Tensor(R1)).sum() + (h[0] * tg.Tensor(R2)).sum()
    )
    cell = rnn.cells[0]
    ref = rnn_bptt(x, cell.W.numpy(), cell.V.numpy(), cell.b.numpy(), R1, lengths=seqs.lengths, d_h_last=R2)
    valid = np.arange(T + extra)[None, :] < seqs.lengths[:, None]
    want = flow_from_grads(ref.dh, valid)
    np.testing.assert_allclose(flow[:T], want[:T], rtol=1e-10, atol=1e-14, err_msg=f"lengths {seqs.lengths}")
    assert np.isnan(flow[T:]).all(), f"steps past every length must be nan, got {flow[T:]}"


def test_truncation_stops_the_flow_after_k_steps():
    B, T, k = 2, 9, 3
    rnn, x, _ = _setup(B=B, T=T)
    truncated, _, _ = _setup(B=B, T=T, truncate=k)
    last_only = lambda outputs, h_last: (h_last**2).sum()  # noqa: E731
    full = gradient_flow(rnn, x, None, last_only)
    cut = gradient_flow(truncated, x, None, last_only)
    # the chain is detached every k steps; the last segment holds steps 7..9 (1-based)
    np.testing.assert_allclose(cut[-k:], full[-k:], rtol=1e-12)
    assert (cut[:-k] == 0).all(), f"no gradient may cross a truncation point, got {cut}"
    assert (full[:-k] > 0).all()


def test_parameter_grads_are_left_as_they_were():
    rnn, x, loss_fn = _setup()
    marker = np.full(rnn.cells[0].V.shape, 7.0)
    rnn.cells[0].V.grad = marker
    gradient_flow(rnn, x, None, loss_fn)
    assert rnn.cells[0].V.grad is marker and (marker == 7.0).all()
    assert rnn.cells[0].W.grad is None


def test_bad_models_and_losses_are_refused():
    x = np.zeros((1, 3, 2))
    with pytest.raises(ValueError, match="single-layer, one-direction"):
        gradient_flow(nn.RNN(2, 3, bidirectional=True), x, None, lambda o, h: o.sum())
    with pytest.raises(ValueError, match="single-layer, one-direction"):
        gradient_flow(nn.RNN(2, 3, num_layers=2), x, None, lambda o, h: o.sum())
    with pytest.raises(ValueError, match="scalar Tensor"):
        gradient_flow(nn.RNN(2, 3), x, None, lambda o, h: o)


def test_ratio_and_text_rendering():
    flow = np.array([1e-6, 1e-4, 1e-2, 1.0])
    assert gradient_ratio(flow) == pytest.approx(1e-6)
    text = format_gradient_flow(flow, width=20, columns={"other": flow * 2})
    lines = text.splitlines()
    assert len(lines) == 5 and "other" in lines[0]
    bars = [line.count("█") for line in lines[1:]]
    assert bars == sorted(bars) and bars[0] == 1 and bars[-1] == 20, bars  # log scale: even steps
    assert bars[1] - bars[0] == pytest.approx(bars[3] - bars[2], abs=1)
    long = format_gradient_flow(np.linspace(1, 2, 100), max_rows=10).splitlines()
    assert len(long) == 11 and long[1].split()[0] == "1" and long[-1].split()[0] == "100"


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="the 'plot' extra")
    path = plot_gradient_flow(
        {"T = 5": np.geomspace(1e-3, 1, 5), "T = 3": np.geomspace(1e-1, 1, 3)},
        tmp_path / "flow.png",
        normalize=True,
    )
    data = (tmp_path / "flow.png").read_bytes()
    assert path.endswith("flow.png") and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
        plot_gradient_flow(np.ones(3), tmp_path / "x.png")


def test_flow_jacobian_view_and_trace_on_every_device(device):
    """The tools read device gradients through the backend: same numbers as on cpu."""
    from tinygrad_rnn.bptt import jacobian_view, trace

    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 5, 2))
    R = rng.normal(size=(3, 4))
    views, flows, traces = [], [], []
    for dev in ("cpu", device):
        rnn = nn.RNN(2, 4, dtype=F64, rng=np.random.default_rng(8), device=dev)
        loss_fn = lambda outputs, h_last: (h_last[0] * tg.Tensor(R, device=dev)).sum()  # noqa: E731
        flows.append(gradient_flow(rnn, tg.Tensor(x, device=dev), None, loss_fn))
        views.append(jacobian_view(rnn, tg.Tensor(x, device=dev), loss_fn))
        with trace() as tr:
            _, h_last = rnn(tg.Tensor(x, device=dev))
            loss_fn(None, h_last).backward()
        traces.append([(r.phase, r.op, r.step, r.inputs, r.outputs) for r in tr.records])
        assert all(isinstance(r.grad_norm, float) for r in tr.backward)
    np.testing.assert_allclose(flows[1], flows[0], rtol=1e-12, err_msg=f"flow on {device} vs cpu")
    np.testing.assert_allclose(views[1].product, views[0].product, rtol=1e-10)
    assert traces[1] == traces[0]
