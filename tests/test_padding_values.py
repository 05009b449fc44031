"""Whatever the padding of x holds — nan, inf — it reaches no gradient.

A padded step still runs the cell (the length mask then keeps the old state), and its gradient
is multiplied by zero; but 0 · nan is nan. The unroller therefore hands the cell zeros at padded
steps. Each test compares a padded batch against the same sequences run one by one without
padding, in float64: outputs, h_last and every gradient (parameters, h0, x at true steps) agree.
"""

from types import SimpleNamespace

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, optim

F64 = np.float64
LENGTHS = np.array([5, 2, 4])
B, T, E, H = 3, 5, 3, 4


def _layer(kind, layers, bidirectional):
    return getattr(nn, kind)(
        E, H, num_layers=layers, bidirectional=bidirectional, rng=np.random.default_rng(7), dtype=F64
    )


def _run(layer, x, h0, u, lengths):
    """Outputs, h_last and the gradients of L = Σ u ⊙ outputs + Σ h_last components."""
    layer.zero_grad()
    x = tg.Tensor(x, requires_grad=True)
    h0 = tuple(tg.Tensor(a, requires_grad=True) for a in h0)
    state = h0 if len(h0) > 1 else h0[0]
    out, last = layer(x, h0=state, lengths=lengths)
    parts = last if isinstance(last, tuple) else (last,)
    loss = (out * tg.Tensor(u)).sum()
    for p in parts:
        loss = loss + (p * p).sum()
    loss.backward()
    grads = {name: p.grad.copy() for name, p in layer.named_parameters()}
    return out.numpy(), [p.numpy() for p in parts], grads, x.grad, [a.grad for a in h0]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("padding", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_padding_values_reach_no_gradient(kind, bidirectional, padding):
    rng = np.random.default_rng(0)
    layer = _layer(kind, 2, bidirectional)
    n_parts = 2 if kind == "LSTM" else 1
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, E))
    h0 = [rng.standard_normal((2 * D, B, H)) for _ in range(n_parts)]
    u = rng.standard_normal((B, T, H * D))
    padded = x.copy()
    for b, n in enumerate(LENGTHS):
        padded[b, n:] = padding
    with np.errstate(all="ignore"):  # the old code computed with the padding; keep its failure readable
        out, last, grads, dx, dh0 = _run(layer, padded, h0, u, LENGTHS)
    for name, g in grads.items():
        assert np.isfinite(g).all(), f"{kind}: d{name} holds nan or inf from the padding"
    assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in dh0)

    # The same sequences one by one, without padding: the batch's gradients are their sum.
    total = {name: np.zeros_like(g) for name, g in grads.items()}
    for b, n in enumerate(LENGTHS):
        o, l, g, gx, gh = _run(layer, x[b : b + 1, :n], [a[:, b : b + 1] for a in h0], u[b : b + 1, :n], None)
        np.testing.assert_allclose(out[b, :n], o[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(out[b, n:], 0.0)
        for got, want in zip(last, l):
            np.testing.assert_allclose(got[:, b], want[:, 0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx[b, :n], gx[0], rtol=1e-12, atol=1e-12, err_msg=f"dx, sequence {b}")
        np.testing.assert_array_equal(dx[b, n:], 0.0)
        for got, want in zip(dh0, gh):
            np.testing.assert_allclose(
                got[:, b], want[:, 0], rtol=1e-12, atol=1e-12, err_msg=f"dh0, sequence {b}"
            )
        for name in total:
            total[name] += g[name]
    for name, g in grads.items():
        np.testing.assert_allclose(g, total[name], rtol=1e-12, atol=1e-12, err_msg=f"{kind}: d{name}")


class _RegressionTask:
    """A minimal task for fit(): mean squared error of the last hidden state (a float input)."""

    metric = "neg_loss"

    def loss(self, model, batch):
        _, last = model(tg.Tensor(batch.inputs), lengths=batch.lengths)
        h = last[0] if isinstance(last, tuple) else last
        return ((h - tg.Tensor(batch.targets)) ** 2).mean()

    def evaluate(self, model, batches):
        losses = [self.loss(model, b).item() for b in batches]
        return {"loss": float(np.mean(losses)), "neg_loss": -float(np.mean(losses))}


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_fit_trains_on_nan_padding_without_a_non_finite_gradient_stop(kind):
    """Before, such a batch stopped fit() advising a lower learning rate: wrong advice."""
    from tinygrad_rnn.train import fit

    rng = np.random.default_rng(1)
    layer = _layer(kind, 1, False)
    x = rng.standard_normal((B, T, E))
    for b, n in enumerate(LENGTHS):
        x[b, n:] = np.nan
    batch = SimpleNamespace(inputs=x, lengths=LENGTHS, targets=rng.standard_normal((1, B, H)))
    result = fit(
        layer,
        _RegressionTask(),
        optim.SGD(layer.parameters(), lr=0.1),
        [batch],
        [batch],
        epochs=2,
        progress=False,
        log=lambda *a: None,
    )
    assert len(result.history) == 2
    assert all(np.isfinite(p.numpy()).all() for p in layer.parameters())
