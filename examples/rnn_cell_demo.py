"""The chapter's RNN cell h_t = tanh(x_t W + h_{t-1} V + b), built from Tensor ops, unrolled,
backpropagated and gradient-checked. Run: ``python examples/rnn_cell_demo.py`` (or ``make demo``)."""

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.gradcheck import gradcheck


def unrolled_loss(x, W, V, b, h0):
    """L = Σ_t mean(h_t²) over T steps of h_t = tanh(x_t W + h_{t-1} V + b)."""
    h, loss = h0, 0.0
    for x_t in x.unbind(axis=1):  # x: (B, T, E) -> T tensors of (B, E)
        h = (x_t @ W + h @ V + b).tanh()
        loss = loss + (h * h).mean()
    return loss


def main():
    rng = np.random.default_rng(0)
    B, T, E, H = 2, 5, 3, 4
    params = [
        tg.Tensor(rng.normal(0, 0.5, s), requires_grad=True, dtype="float64")
        for s in [(B, T, E), (E, H), (H, H), (H,), (B, H)]
    ]
    loss = unrolled_loss(*params)
    loss.backward()
    print(f"loss over {T} steps: {loss.item():.6f}")
    for name, p in zip("x W V b h0".split(), params):
        print(f"  dL/d{name:<2} shape {p.shape}, norm {np.linalg.norm(p.grad):.6f}")
    gradcheck(unrolled_loss, params, mode="full", seed=0)
    print("gradcheck (every element, central differences, float64): autograd == finite differences")


if __name__ == "__main__":
    main()
