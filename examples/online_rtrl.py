"""Online learning with RTRL: update the weights at every step of one endless stream.

    python examples/online_rtrl.py [--steps 6000] [--hidden 16] [--delay 5] [--out docs/img/online-rtrl.png]

The task is a stream with memory: inputs x_t = ±1 at random, and at every step the target is the
input of ``delay`` steps ago, y_t = x_{t−delay} (a delayed echo). The stream never ends and is
never cut into sequences, so there is no "end of the sequence" to run BPTT back from.

* **RTRL, online.** A vanilla cell h_t = tanh(x_t W + h_{t−1} V + b) and a head ŷ_t = h_t U + c.
  Carry the influence M_t = ∂h_t/∂θ forward (one ``tg.jvp`` through the cell's own ``step`` per
  step, as ``bptt.rtrl`` does), and at every step

      ∂L_t/∂θ = ⟨∂L_t/∂h_t, M_t⟩,      then one Adam step.

  Nothing of the past is kept except h_t and M_t (P × H numbers): memory does not grow with the
  stream. After each update the influence still describes the old weights (the usual RTRL
  approximation; small learning rates keep it close).
* **BPTT over fixed windows.** The same model, the stream cut into windows of W steps: run W
  steps, backpropagate the window's summed loss (the state carried in from the last window,
  detached), one Adam step. An echo of ``delay`` steps needs a gradient path of ``delay`` steps, so
  a window shorter than the delay cannot learn it; a longer one can, but only for the targets far
  enough into their window, and it updates W times less often.

The running MSE (mean over the last ``--window-mse`` steps) against the stream step is drawn for
each learner; predicting 0 every time gives MSE 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tinygrad_rnn as tg  # noqa: E402
from tinygrad_rnn import nn  # noqa: E402
from tinygrad_rnn.bptt.rtrl import parameter_directions, split_by_parameter  # noqa: E402
from tinygrad_rnn.optim import Adam, clip_grad_norm_  # noqa: E402


def echo_stream(steps: int, delay: int, seed: int = 0):
    """x (steps,) of ±1 and y_t = x_{t−delay} (0 for the first ``delay`` steps)."""
    x = np.random.default_rng(seed).choice([-1.0, 1.0], size=steps)
    y = np.concatenate([np.zeros(delay), x[:-delay]]) if delay else x.copy()
    return x, y


def make_model(hidden: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return nn.RNN(1, hidden, rng=rng, dtype="float64"), nn.Linear(hidden, 1, rng=rng, dtype="float64")


class OnlineRTRL:
    """The influence M_t = ∂h_t/∂θ of a vanilla cell, advanced one step at a time (B = 1)."""

    def __init__(self, cell):
        self.cell = cell
        self.params = cell.parameters()
        self.directions = parameter_directions(self.params)  # direction i moves entry i of θ only
        P = self.directions[0].shape[0]
        self.h = cell.initial_state(1)
        self.M = np.zeros((P, 1, cell.hidden_size))  # M_0 = 0

    def step(self, x_t) -> tg.Tensor:
        """h_t from x_t (1, 1), with M_t = ∂h_t/∂h_{t−1} M_{t−1} + ∂h_t/∂θ in one batched jvp."""
        cell, xw = self.cell, self.cell.project_input  # θ is read as cell.W, cell.V, cell.b inside

        def one_step(h, *params):
            return cell.step(xw(tg.Tensor(x_t)), h)

        self.h, M = tg.jvp(
            one_step, (self.h,) + tuple(self.params), (self.M,) + tuple(self.directions), batched=True
        )
        self.M = M._data
        return self.h

    def gradients(self, d_h: np.ndarray) -> list:
        """∂L_t/∂θ = ⟨∂L_t/∂h_t, M_t⟩, split into the parameters' shapes."""
        flat = self.M.reshape(self.M.shape[0], -1) @ d_h.reshape(-1)
        return split_by_parameter(flat, self.params)


def train_rtrl(x, y, hidden: int, lr: float, seed: int = 0, update: bool = True):
    """Online RTRL over the stream: the squared error at every step, and the summed gradients of
    the cell (meaningful with ``update=False``: then they are ∂(Σ_t L_t)/∂θ of the whole stream)."""
    rnn, head = make_model(hidden, seed)
    cell = rnn.cells[0]
    learner = OnlineRTRL(cell)
    params = cell.parameters() + head.parameters()
    optimizer = Adam(params, lr=lr)
    errors, total = np.empty(len(x)), [np.zeros(p.shape) for p in cell.parameters()]
    for t in range(len(x)):
        h = learner.step(np.array([[x[t]]]))
        h_leaf = tg.Tensor(h._data, requires_grad=True)  # the head's loss, backpropagated to h_t only
        loss = ((head(h_leaf) - y[t]) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        for p, g, acc in zip(cell.parameters(), learner.gradients(h_leaf.grad), total):
            p.grad = g
            acc += g
        errors[t] = loss.item()
        if update:
            clip_grad_norm_(params, 1.0)
            optimizer.step()
    return errors, total


def train_windows(x, y, hidden: int, window: int, lr: float, seed: int = 0):
    """BPTT over fixed windows of the stream: the squared error at every step."""
    rnn, head = make_model(hidden, seed)
    params = rnn.parameters() + head.parameters()
    optimizer = Adam(params, lr=lr)
    errors, state = np.empty(len(x)), None
    for start in range(0, len(x), window):
        xs = tg.Tensor(x[start : start + window].reshape(1, -1, 1))
        ys = tg.Tensor(y[start : start + window].reshape(1, -1, 1))
        outputs, last = rnn(xs, h0=state)
        squared = (head(outputs) - ys) ** 2
        optimizer.zero_grad()
        squared.sum().backward()
        clip_grad_norm_(params, 1.0)
        optimizer.step()
        errors[start : start + window] = squared._data.reshape(-1)
        state = last.detach()
    return errors


def running_mean(values: np.ndarray, n: int) -> np.ndarray:
    csum = np.concatenate([[0.0], np.cumsum(values)])
    n = max(1, min(n, len(values)))
    return (csum[n:] - csum[:-n]) / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6000, help="length of the stream (default 6000)")
    ap.add_argument(
        "--hidden", type=int, default=16, help="hidden size H (default 16; RTRL costs ∝ H⁴ per step)"
    )
    ap.add_argument("--delay", type=int, default=5, help="the echo's delay (default 5)")
    ap.add_argument(
        "--windows",
        default=None,
        help="BPTT window lengths, comma-separated (default: delay − 2 and 4 × delay)",
    )
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate, every learner (default 3e-3)")
    ap.add_argument(
        "--window-mse", type=int, default=500, help="running MSE over this many steps (default 500)"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join("runs", "online-rtrl.png"), help="the figure (PNG)")
    ap.add_argument("--quick", action="store_true", help="a tiny run (300 steps, H = 4): for the tests")
    ap.add_argument("--device", default="cpu", help="cpu only (the influence is a NumPy array)")
    a = ap.parse_args(argv)
    if a.quick:
        a.steps, a.hidden, a.window_mse = 300, 4, 50
    if a.device != "cpu":
        raise SystemExit("error: this example runs on the cpu only (--device cpu)")
    for name in ("steps", "hidden", "delay", "window_mse"):
        if getattr(a, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    windows = [int(w) for w in a.windows.split(",")] if a.windows else [max(1, a.delay - 2), 4 * a.delay]
    if min(windows) < 1:
        raise SystemExit(f"error: --windows must be >= 1, got {a.windows}")
    from tinygrad_rnn.plotting import require_matplotlib

    plt = require_matplotlib()  # fail now, not after training

    x, y = echo_stream(a.steps, a.delay, a.seed)
    curves = {}
    start = time.perf_counter()
    errors, _ = train_rtrl(x, y, a.hidden, a.lr, a.seed)
    curves["RTRL, online (an update every step)"] = errors
    print(
        f"RTRL online:          {time.perf_counter() - start:6.1f} s, MSE over the last {a.window_mse} steps "
        f"{errors[-a.window_mse :].mean():.4f}"
    )
    for w in windows:
        start = time.perf_counter()
        errors = train_windows(x, y, a.hidden, w, a.lr, a.seed)
        curves[f"BPTT over windows of {w} (an update every {w} steps)"] = errors
        print(
            f"BPTT, windows of {w:<4}  {time.perf_counter() - start:6.1f} s, "
            f"MSE over the last {a.window_mse} steps "
            f"{errors[-a.window_mse :].mean():.4f}"
        )
    fig, ax = plt.subplots(figsize=(8, 4))
    for label, errors in curves.items():
        mse = running_mean(errors, a.window_mse)
        ax.plot(np.arange(len(mse)) + min(a.window_mse, len(errors)), mse, label=label)
    ax.axhline(1.0, color="gray", ls=":", lw=1, label="predicting 0 (MSE 1)")
    ax.set_yscale("log")
    ax.set_xlabel("step of the stream")
    ax.set_ylabel(f"MSE, running mean over {a.window_mse} steps")
    ax.set_title(f"echo of {a.delay} steps, vanilla RNN H = {a.hidden}, Adam lr {a.lr:g}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
