"""The vanishing-gradient experiment: where does a vanilla RNN stop learning the adding problem?

For each sequence length T and each initialisation of V (``uniform``, ``orthogonal``,
``identity``) we train ``h_t = tanh(x_t W + h_{t-1} V + b)`` plus a linear head on h_T, with the
MSE loss, Adam and gradient clipping, for the same wall-clock budget, then report:

* the test MSE next to the trivial baseline (always predicting 1: MSE = 1/6 ≈ 0.167);
* whether it learned (test MSE < 0.05, :data:`LEARNED_MSE`);
* ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation and after training — how much of the gradient that
  enters at the last step survives back to the first (:func:`~tinygrad_rnn.bptt.flow.gradient_flow`).

The answer sits at the first marker, somewhere in the first half of the sequence, so learning
needs the gradient to survive T/2 steps and more. :func:`run_experiment` is the library core;
``tinygrad-rnn bptt experiment`` is its command line. Everything is float64, so ratios far below
float32's range (1e-38) are still measured.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import checkpoint
from ..data.adding import ADDING_BASELINE_MSE, adding_problem
from ..nn import RNN, Linear, Module
from ..nn.rnn import INITS
from ..optim import Adam, clip_grad_norm_
from ..plotting import PLOT_INSTALL_HINT, require_matplotlib
from ..tensor import Tensor, no_grad
from .flow import draw_flows, gradient_flow, gradient_ratio

DEFAULT_LENGTHS = (10, 25, 50, 100)
DEFAULT_BUDGET_SECONDS = 40.0   # 12 runs ≈ 8 minutes of training on 2 cores, under the 10 asked
LEARNED_MSE = 0.05
F64 = np.float64


class AddingRNN(Module):
    """``y = head(h_T)``: a single-layer vanilla RNN over (value, marker) pairs, a Linear on h_T."""

    def __init__(self, hidden_size: int, init: str = "uniform", *, rng=None, dtype=F64, device=None):
        self.hidden_size, self.init = hidden_size, init
        self.rnn = RNN(2, hidden_size, init=init, rng=rng, dtype=dtype, device=device)
        self.head = Linear(hidden_size, 1, rng=rng, dtype=dtype, device=device)

    def forward(self, x: Tensor) -> Tensor:
        _, h_last = self.rnn(x)
        return self.head(h_last[0])

    def loss_fn(self, targets: Tensor):
        """``loss_fn(outputs, h_last)`` for :func:`gradient_flow`: the MSE of the head on h_T."""
        return lambda outputs, h_last: mse(self.head(h_last[0]), targets)


def mse(prediction: Tensor, targets: Tensor) -> Tensor:
    return ((prediction - targets) ** 2).mean()


@dataclass
class ExperimentConfig:
    """Settings shared by every run (the defaults are what ``docs/bptt.md`` reports)."""
    budget_seconds: float = DEFAULT_BUDGET_SECONDS
    max_steps: int | None = None    # stop earlier than the budget (tests, reproducible runs)
    hidden_size: int = 32
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 1.0               # clip_grad_norm_ max norm (Pascanu et al. 2013)
    test_size: int = 1000
    probe_size: int = 128           # test sequences the gradient flow is measured on
    seed: int = 0


@dataclass
class RunResult:
    """One length × init. ``flow_*`` are ‖∂L/∂h_t‖ for t = 1..T (batch means over the probe)."""
    length: int
    init: str
    steps: int
    seconds: float
    train_mse: float                # mean over the last 100 training batches
    test_mse: float
    baseline_mse: float
    learned: bool
    ratio_init: float               # ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation
    ratio_trained: float            # the same after training
    flow_init: list = field(repr=False)
    flow_trained: list = field(repr=False)
    checkpoint: str | None = None


def _flow(model: AddingRNN, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return gradient_flow(model.rnn, x, None, model.loss_fn(Tensor(y)))


def train_adding(length: int, init: str, config: ExperimentConfig = None, log=None) -> tuple[RunResult, AddingRNN]:
    """Train one model on the adding problem of ``length`` steps for the configured budget."""
    config = config or ExperimentConfig()
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    rng = np.random.default_rng(config.seed)
    model = AddingRNN(config.hidden_size, init, rng=rng)
    # test data from a seed no training batch uses (training seeds are ≥ 1, below)
    x_test, y_test = adding_problem(config.test_size, length, seed=10_000_000 + length)
    probe_x, probe_y = x_test[:config.probe_size], y_test[:config.probe_size]
    flow_init = _flow(model, probe_x, probe_y)

    params = model.parameters()
    optimizer = Adam(params, lr=config.lr)
    recent, steps, start = [], 0, time.perf_counter()
    next_report = start + 10.0
    while True:
        now = time.perf_counter()
        if now - start >= config.budget_seconds or (config.max_steps is not None and steps >= config.max_steps):
            break
        # a fresh batch every step: the data is unlimited, so nothing is memorised
        x, y = adding_problem(config.batch_size, length, seed=1 + config.seed * 1_000_003 + steps)
        loss = mse(model(Tensor(x)), Tensor(y))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(params, config.clip)
        optimizer.step()
        recent.append(loss.item())
        recent = recent[-100:]
        steps += 1
        if log is not None and now >= next_report:
            log(f"  T={length:<4} {init:<10} step {steps:>6}  {now - start:5.1f} s  train MSE {np.mean(recent):.4f}")
            next_report += 10.0
    seconds = time.perf_counter() - start

    with no_grad():
        test_mse = float(mse(model(Tensor(x_test)), Tensor(y_test)).item())
    flow_trained = _flow(model, probe_x, probe_y)
    result = RunResult(length=length, init=init, steps=steps, seconds=round(seconds, 2),
                       train_mse=float(np.mean(recent)) if recent else float("nan"),
                       test_mse=test_mse, baseline_mse=ADDING_BASELINE_MSE, learned=test_mse < LEARNED_MSE,
                       ratio_init=gradient_ratio(flow_init), ratio_trained=gradient_ratio(flow_trained),
                       flow_init=flow_init.tolist(), flow_trained=flow_trained.tolist())
    return result, model


def run_experiment(lengths=DEFAULT_LENGTHS, inits=INITS, config: ExperimentConfig = None,
                   out_dir=None, figure=None, log=print) -> list[RunResult]:
    """Train every length × init; with ``out_dir`` write results.json, results.md, the figure
    (``gradient-flow.png``, or ``figure``) and one checkpoint per run under ``checkpoints/``."""
    config = config or ExperimentConfig()
    lengths, inits = [int(n) for n in lengths], list(inits)
    for n in lengths:
        if n < 2:
            raise ValueError(f"every length must be at least 2 (one marker per half), got {n}")
    for init in inits:
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    if out_dir is not None:
        os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    results = []
    for init in inits:
        for length in lengths:
            if log is not None:
                log(f"training T={length}, init={init} for {config.budget_seconds:g} s"
                    + (f" (at most {config.max_steps} steps)" if config.max_steps else ""))
            result, model = train_adding(length, init, config, log=log)
            if out_dir is not None:
                result.checkpoint = os.path.join(out_dir, "checkpoints", checkpoint_name(length, init))
                checkpoint.save(result.checkpoint, model, meta=_meta(result, config))
            results.append(result)
            if log is not None:
                log(f"  → {result.steps} steps, test MSE {result.test_mse:.4f} "
                    f"({'learned' if result.learned else 'not learned'}), "
                    f"‖∂L/∂h_1‖/‖∂L/∂h_T‖ {result.ratio_init:.1e} at init → {result.ratio_trained:.1e}")
    if out_dir is not None:
        write_results(results, config, out_dir, figure=figure)
    return results


def checkpoint_name(length: int, init: str) -> str:
    return f"adding-T{length}-{init}.npz"


def _meta(result: RunResult, config: ExperimentConfig) -> dict:
    return {"model": "AddingRNN", "task": "adding", "length": result.length, "init": result.init,
            "hidden_size": config.hidden_size, "steps": result.steps, "test_mse": result.test_mse}


def load_adding_model(path) -> tuple[AddingRNN, dict]:
    """A model saved by the experiment (``checkpoint.save`` with its meta) and that meta."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(archive["__meta__"].tobytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except Exception as e:  # whatever a damaged or foreign file makes the readers raise
        raise checkpoint.CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    meta = (header or {}).get("meta") or {}
    if meta.get("model") != "AddingRNN":
        shown = str(meta) if len(str(meta)) <= 80 else str(meta)[:80] + "…"   # one readable line
        raise checkpoint.CheckpointError(f"{path}: not an adding-problem model saved by "
                                         f"'tinygrad-rnn bptt experiment' (its meta: {shown})")
    model = AddingRNN(int(meta["hidden_size"]), meta.get("init", "uniform"))
    checkpoint.load(path, model)
    return model, meta


# ---- reporting ----------------------------------------------------------------------------------

def results_table(results) -> str:
    """A Markdown table, one row per run."""
    lines = ["| T | init | steps | test MSE | baseline | learned (< 0.05) | ‖∂L/∂h_1‖/‖∂L/∂h_T‖ at init | after training |",
             "|---:|:---|---:|---:|---:|:---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.length} | {r.init} | {r.steps} | {r.test_mse:.4f} | {r.baseline_mse:.3f} | "
                     f"{'yes' if r.learned else 'no'} | {r.ratio_init:.2e} | {r.ratio_trained:.2e} |")
    return "\n".join(lines)


def write_results(results, config: ExperimentConfig, out_dir, figure=None) -> dict:
    """results.json, results.md and the figure in ``out_dir``; returns their paths."""
    paths = {"json": os.path.join(out_dir, "results.json"), "markdown": os.path.join(out_dir, "results.md"),
             "figure": figure or os.path.join(out_dir, "gradient-flow.png")}
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump({"config": asdict(config), "learned_mse": LEARNED_MSE,
                   "results": [asdict(r) for r in results]}, f, indent=1)
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(f"# Vanishing-gradient experiment (adding problem)\n\n{results_table(results)}\n\n"
                f"Settings: {asdict(config)}\n")
    try:
        plot_experiment(results, paths["figure"])
    except ImportError:
        paths["figure"] = None  # the numbers are written; the figure needs the plot extra
    return paths


def plot_experiment(results, path) -> str:
    """One figure: a panel per init, one line per length, ‖∂L/∂h_t‖/‖∂L/∂h_T‖ against T − t.

    Solid: after training; dashed: at initialisation. Needs matplotlib (``PLOT_INSTALL_HINT``).
    """
    plt = require_matplotlib()
    inits = list(dict.fromkeys(r.init for r in results))
    fig, axes = plt.subplots(1, len(inits), figsize=(4.6 * len(inits), 4.0), dpi=120, sharey=True, squeeze=False)
    for ax, init in zip(axes[0], inits):
        rows = [r for r in results if r.init == init]
        trained = {f"T = {r.length}" + (" ✓" if r.learned else ""): r.flow_trained for r in rows}
        at_init = {f"T = {r.length}": r.flow_init for r in rows}
        draw_flows(ax, trained, normalize=True, dashed=at_init, x_axis="back")
        ax.set_title(f"V init: {init}")
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    fig.suptitle("Gradient reaching h_t, relative to h_T (solid: trained, dashed: at init, ✓: learned)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


__all__ = ["AddingRNN", "ExperimentConfig", "RunResult", "train_adding", "run_experiment", "results_table",
           "write_results", "plot_experiment", "load_adding_model", "checkpoint_name", "LEARNED_MSE",
           "DEFAULT_LENGTHS", "DEFAULT_BUDGET_SECONDS", "PLOT_INSTALL_HINT"]
