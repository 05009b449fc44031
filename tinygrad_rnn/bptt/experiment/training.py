"""One run of the vanishing-gradient experiment: the model, its training and its checkpoint.

:class:`AddingRNN` is a recurrent layer from ``nn.recurrent_layer`` (the builder every model and
tool uses) and a Linear head on h_T; :func:`train_adding` trains one for one sequence length with
the MSE loss (``nn.functional.mse``), Adam and gradient clipping, and measures the gradient flow
before and after; :func:`save_adding_model` / :func:`load_adding_model` write and read its
checkpoint with its settings in the meta.

Why not ``train.fit``: fit counts epochs over a finite data set, scores a dev set after each and
ends on the best dev weights; here every step draws a fresh batch of an unlimited data set, a run
ends after a number of steps or seconds, the test set is scored every ``eval_every`` steps, and the
model at the end is the one reported. So this file has its own loop (the only one in ``bptt``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ... import nn, serialization
from ...data.adding import ADDING_BASELINE_MSE, adding_problem
from ...nn.cells import INITS
from ...nn.functional import mse
from ...optim import Adam, clip_grad_norm_
from ...tensor import Tensor, no_grad
from ..flow import gradient_flow, gradient_ratio

DEFAULT_LENGTHS = (10, 25, 50, 100)
DEFAULT_BUDGET_SECONDS = 40.0  # 12 runs ≈ 8 minutes of training on 2 cores, under the 10 asked
LEARNED_MSE = 0.05
F64 = np.float64
CHRONO = "chrono"  # forget_bias: chrono initialisation of the LSTM (nn.chrono_init_)
CURE_LENGTHS = (50, 100, 200, 400)
# The cure experiment: the set-up of the PyTorch reference table in docs/bptt.md.
CURE_SETUP = dict(budget_seconds=None, max_steps=3000, hidden_size=64, eval_every=100, dtype="float32")


class AddingRNN(nn.Module):
    """``y = head(h_T)``: a single-layer recurrent layer over (value, marker) pairs, a Linear on h_T.

    ``cell``: a name of ``nn.CELLS`` (``"rnn"``, ``"lstm"``, ``"gru"``); the layer comes from
    ``nn.recurrent_layer``. ``init`` sets the vanilla cell's V (the gated cells start uniform).
    ``forget_bias``: the LSTM's forget-gate bias at the start; None draws it like the other biases,
    as PyTorch does; ``"chrono"`` is :func:`~tinygrad_rnn.nn.chrono_init_` for sequences of
    ``length`` steps. The layer is drawn from ``rng`` first, then the head.
    """

    def __init__(
        self,
        hidden_size: int,
        init: str = "uniform",
        *,
        cell: str = "rnn",
        forget_bias=1.0,
        length: int | None = None,
        rng=None,
        dtype=F64,
        device=None,
    ):
        nn.cell_kind(cell)  # an unknown name: a clear error before anything is drawn
        _check_forget_bias(forget_bias)
        chrono = forget_bias == CHRONO and cell == "lstm"
        if chrono and length is None:
            raise ValueError("forget_bias='chrono' needs the sequence length (length=T)")
        self.hidden_size, self.init, self.cell, self.forget_bias = hidden_size, init, cell, forget_bias
        self.length = length
        self.rnn = nn.recurrent_layer(
            cell,
            2,
            hidden_size,
            init=init if cell == "rnn" else "uniform",
            forget_bias=None if chrono else forget_bias,
            rng=rng,
            dtype=dtype,
            device=device,
        )
        if chrono and length is not None:  # (checked above: chrono needs the length)
            nn.chrono_init_(self.rnn, length, rng=rng)
        self.head = nn.Linear(hidden_size, 1, rng=rng, dtype=dtype, device=device)

    def last_hidden(self, h_last) -> Tensor:
        """h_T (B, H) from the layer's ``h_last`` (the cell's state, (1, B, H) per part)."""
        return self.rnn.cells[0].hidden(h_last)[0]

    def forward(self, x: Tensor) -> Tensor:
        _, h_last = self.rnn(x, need_outputs=False)
        return self.head(self.last_hidden(h_last))

    def loss_fn(self, targets: Tensor):
        """``loss_fn(outputs, h_last)`` for :func:`gradient_flow`: the MSE of the head on h_T."""
        return lambda outputs, h_last: mse(self.head(self.last_hidden(h_last)), targets)

    def describe(self) -> str:
        """How the table names this model: ``rnn (uniform)``, ``lstm (forget bias 1)``, ``lstm (chrono
        init)``, ``gru``."""
        if self.cell == "rnn":
            return f"rnn ({self.init})"
        if self.cell == "lstm":
            if self.forget_bias == CHRONO:
                return "lstm (chrono init)"
            return (
                "lstm (forget bias like the others)"
                if self.forget_bias is None
                else f"lstm (forget bias {self.forget_bias:g})"
            )
        return "gru"


def _check_forget_bias(forget_bias) -> None:
    if forget_bias is None or forget_bias == CHRONO:
        return
    if (
        isinstance(forget_bias, bool)
        or not isinstance(forget_bias, (int, float, np.floating, np.integer))
        or not math.isfinite(forget_bias)
    ):
        raise ValueError(f"forget_bias must be a finite number, None or 'chrono', got {forget_bias!r}")


@dataclass
class ExperimentConfig:
    """Settings shared by every run (the defaults are the vanilla experiment of ``docs/bptt.md``;
    ``ExperimentConfig(**CURE_SETUP)`` is the cure experiment's)."""

    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS  # None: no time limit
    max_steps: int | None = None  # stop after this many steps (tests, reproducible runs)
    hidden_size: int = 32
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 1.0  # clip_grad_norm_ max norm (Pascanu et al. 2013)
    test_size: int = 1000
    probe_size: int = 128  # test sequences the gradient flow is measured on
    seed: int = 0
    eval_every: int | None = None  # test MSE every this many steps ("solved at step N")
    stop_when_solved: bool = False  # end a run at the first evaluation below LEARNED_MSE
    forget_bias: float | str | None = 1.0  # the LSTM's b_f at the start (None: like the other biases;
    # "chrono": chrono_init_ for each run's length)
    dtype: str = "float64"  # of the training; flows are always measured in float64

    def __post_init__(self):
        if self.budget_seconds is None and self.max_steps is None:
            raise ValueError("give a time budget, a number of steps, or both: a run needs an end")
        if self.stop_when_solved and not self.eval_every:
            raise ValueError("stop_when_solved needs eval_every: a run is solved at an evaluation")
        _check_forget_bias(self.forget_bias)
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def limit(self) -> str:
        """How a run ends, in words: "40 s", "3000 steps" or "40 s or 3000 steps"."""
        limits = [f"{self.budget_seconds:g} s"] if self.budget_seconds is not None else []
        limits += [f"{self.max_steps} steps"] if self.max_steps is not None else []
        return " or ".join(limits)


@dataclass
class RunResult:
    """One length × cell (× init). ``flow_*`` are ‖∂L/∂h_t‖ for t = 1..T (batch means over the probe)."""

    length: int
    init: str
    steps: int
    seconds: float
    train_mse: float  # mean over the last 100 training batches
    test_mse: float
    baseline_mse: float
    learned: bool  # test MSE < LEARNED_MSE at the end
    ratio_init: float  # ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation
    ratio_trained: float  # the same after training
    flow_init: list = field(repr=False)
    flow_trained: list = field(repr=False)
    checkpoint: str | None = None
    cell: str = "rnn"
    model: str = ""  # AddingRNN.describe(): "rnn (uniform)", "lstm (forget bias 1)", …
    solved_step: int | None = None  # first evaluation with test MSE < LEARNED_MSE
    evaluations: list = field(default_factory=list, repr=False)  # [(step, test MSE), …]
    load_average: tuple = ()  # 1-minute load average at the start and the end of the run
    cpu_seconds: float | None = None  # CPU time of the training (one BLAS thread: the load barely moves it)


def hidden_flow(model: AddingRNN, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """‖∂L/∂h_t‖ for t = 1..T (batch mean), for any cell, measured on a float64 copy of ``model``.

    :func:`~tinygrad_rnn.bptt.flow.gradient_flow` reads dh_t off the tape for every cell; for an
    LSTM, dh_t includes what reached h_t back along the cell state c.
    """
    if model.rnn.cells[0].V.dtype != F64:
        # a float64 copy: a vanished gradient is not flushed to 0 (gradient_flow leaves .grad as it was)
        copy = AddingRNN(
            model.hidden_size,
            model.init,
            cell=model.cell,
            forget_bias=model.forget_bias,
            length=model.length,
            rng=np.random.default_rng(0),
            dtype=F64,
        )
        copy.load_state_dict(model.state_dict())
        model = copy
    return gradient_flow(model.rnn, x, None, model.loss_fn(Tensor(y, dtype=F64)))


def evaluate_mse(model: AddingRNN, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """The MSE of ``model`` on (x, y), in batches of ``batch`` sequences, without a graph."""
    dtype = model.head.W.dtype
    total = 0.0
    with no_grad():
        for i in range(0, len(x), batch):
            err = model(Tensor(x[i : i + batch], dtype=dtype)).numpy() - y[i : i + batch]
            total += float((err.astype(F64) ** 2).sum())
    return total / len(x)


def train_adding(
    length: int, init: str = "uniform", config: ExperimentConfig | None = None, log=None, *, cell: str = "rnn"
) -> tuple[RunResult, AddingRNN]:
    """Train one model on the adding problem of ``length`` steps for the configured steps/budget."""
    config = config or ExperimentConfig()
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    model = AddingRNN(
        config.hidden_size,
        init,
        cell=cell,
        forget_bias=config.forget_bias,
        length=length,
        rng=rng,
        dtype=dtype,
    )
    # test data from a seed no training batch uses (training seeds are ≥ 1, below)
    x_test, y_test = adding_problem(config.test_size, length, seed=10_000_000 + length)
    probe_x, probe_y = x_test[: config.probe_size], y_test[: config.probe_size]
    flow_init = hidden_flow(model, probe_x, probe_y)
    name = model.describe()

    params = model.parameters()
    optimizer = Adam(params, lr=config.lr)
    recent, evaluations, solved_step = [], [], None
    load_start = os.getloadavg()[0]
    steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    next_report = start + 10.0
    while True:
        now = time.perf_counter()
        if (config.budget_seconds is not None and now - start >= config.budget_seconds) or (
            config.max_steps is not None and steps >= config.max_steps
        ):
            break
        # a fresh batch every step: the data is unlimited, so nothing is memorised
        x, y = adding_problem(
            config.batch_size, length, seed=1 + config.seed * 1_000_003 + steps, dtype=dtype
        )
        loss = mse(model(Tensor(x)), Tensor(y))
        optimizer.zero_grad()
        loss.backward()
        clip_grad_norm_(params, config.clip)
        optimizer.step()
        recent.append(loss.item())
        recent = recent[-100:]
        steps += 1
        if config.eval_every and steps % config.eval_every == 0:
            evaluations.append((steps, evaluate_mse(model, x_test, y_test)))
            if solved_step is None and evaluations[-1][1] < LEARNED_MSE:
                solved_step = steps
            if log is not None:
                log(
                    f"  T={length:<4} {name:<12} step {steps:>6}  {time.perf_counter() - start:7.1f} s  "
                    f"train MSE {np.mean(recent):.4f}  test MSE {evaluations[-1][1]:.4f}"
                    + (f"  (solved at step {solved_step})" if solved_step else "")
                )
            if config.stop_when_solved and solved_step is not None:
                break
        elif log is not None and not config.eval_every and now >= next_report:
            log(
                f"  T={length:<4} {name:<12} step {steps:>6}  {now - start:5.1f} s  "
                f"train MSE {np.mean(recent):.4f}"
            )
            next_report += 10.0
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    evaluated_at_end = evaluations and evaluations[-1][0] == steps
    test_mse = evaluations[-1][1] if evaluated_at_end else evaluate_mse(model, x_test, y_test)
    flow_trained = hidden_flow(model, probe_x, probe_y)
    result = RunResult(
        length=length,
        init=init,
        steps=steps,
        seconds=round(seconds, 2),
        train_mse=float(np.mean(recent)) if recent else float("nan"),
        test_mse=test_mse,
        baseline_mse=ADDING_BASELINE_MSE,
        learned=test_mse < LEARNED_MSE,
        ratio_init=gradient_ratio(flow_init),
        ratio_trained=gradient_ratio(flow_trained),
        flow_init=flow_init.tolist(),
        flow_trained=flow_trained.tolist(),
        cell=cell,
        model=name,
        solved_step=solved_step,
        evaluations=evaluations,
        load_average=(round(load_start, 2), round(os.getloadavg()[0], 2)),
        cpu_seconds=round(cpu_seconds, 2),
    )
    return result, model


def checkpoint_name(length: int, init: str, cell: str = "rnn") -> str:
    """A run's checkpoint file: ``adding-T100-uniform.npz`` (vanilla: by init), ``adding-T100-lstm.npz``."""
    return f"adding-T{length}-{init if cell == 'rnn' else cell}.npz"


def save_adding_model(path, model: AddingRNN, result: RunResult, config: ExperimentConfig) -> None:
    """``serialization.save`` of a trained model, with what :func:`load_adding_model` needs to rebuild it."""
    serialization.save(
        path,
        model,
        meta={
            "model": "AddingRNN",
            "task": "adding",
            "length": result.length,
            "init": result.init,
            "cell": result.cell,
            "forget_bias": config.forget_bias,
            "dtype": config.dtype,
            "hidden_size": config.hidden_size,
            "steps": result.steps,
            "test_mse": result.test_mse,
        },
    )


def load_adding_model(path) -> tuple[AddingRNN, dict]:
    """A model saved by the experiment (:func:`save_adding_model`) and its meta."""
    meta = serialization.read_meta(path) or {}
    if meta.get("model") != "AddingRNN":
        shown = str(meta) if len(str(meta)) <= 80 else str(meta)[:80] + "…"  # one readable line
        raise serialization.CheckpointError(
            f"{path}: not an adding-problem model saved by 'tinygrad-rnn bptt experiment' (its meta: {shown})"
        )
    model = AddingRNN(
        int(meta["hidden_size"]),
        meta.get("init", "uniform"),
        cell=meta.get("cell", "rnn"),
        forget_bias=meta.get("forget_bias", 1.0),
        length=meta.get("length"),
        dtype=np.dtype(meta.get("dtype", "float64")),
    )
    serialization.load(path, model)
    return model, meta
