"""The vanishing-gradient experiment: where does a vanilla RNN stop learning the adding problem,
and do the gated cells (LSTM, GRU) cure it?

For each sequence length T and each cell — the vanilla ``h_t = tanh(x_t W + h_{t-1} V + b)`` with
V initialised ``uniform``, ``orthogonal`` or ``identity``, or ``lstm`` / ``gru``
(:mod:`tinygrad_rnn.nn.cells`) — we train the cell plus a linear head on h_T, with the MSE loss,
Adam and gradient clipping, for a number of steps or a wall-clock budget, then report:

* the test MSE next to the trivial baseline (always predicting 1: MSE = 1/6 ≈ 0.167);
* whether it learned (test MSE < 0.05, :data:`LEARNED_MSE`);
* with ``eval_every``: the test MSE every that many steps, and the first step at which it was
  below 0.05 ("solved at step N");
* ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation and after training — how much of the gradient that
  enters at the last step survives back to the first (:func:`hidden_flow`: the gradient reaching
  the layer's output h_t, for every cell; for an LSTM the state is (h_t, c_t) and the flow along
  c is part of what reaches h_t).

Two set-ups: the vanilla one (``cells=("rnn",)``, every init, 40 s per run, H = 32, float64) and
the cure (:data:`CURE_SETUP`: rnn, lstm and gru; 3,000 steps; H = 64; test MSE every 100 steps;
float32 for training — the flows are still measured on a float64 copy of the weights).

The answer sits at the first marker, somewhere in the first half of the sequence, so learning
needs the gradient to survive T/2 steps and more. :func:`run_experiment` is the library core;
``tinygrad-rnn bptt experiment`` is its command line. Flows are measured in float64, so ratios far
below float32's range (1e-38) are still measured.
"""

from __future__ import annotations

import json
import multiprocessing
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import serialization
from ..data.adding import ADDING_BASELINE_MSE, adding_problem
from ..files import atomic_write
from ..nn import GRU, LSTM, RNN, Linear, Module, chrono_init_
from ..nn.cells import INITS
from ..optim import Adam, clip_grad_norm_
from ..plotting import PLOT_INSTALL_HINT, require_matplotlib
from ..tensor import Tensor, no_grad
from ..threads import set_blas_threads, tune_malloc
from .flow import draw_flows, gradient_flow, gradient_ratio

DEFAULT_LENGTHS = (10, 25, 50, 100)
DEFAULT_BUDGET_SECONDS = 40.0   # 12 runs ≈ 8 minutes of training on 2 cores, under the 10 asked
LEARNED_MSE = 0.05
F64 = np.float64
CELLS = ("rnn", "lstm", "gru")
CHRONO = "chrono"   # forget_bias: chrono initialisation of the LSTM (nn.chrono_init_)
CURE_LENGTHS = (50, 100, 200, 400)
# The cure experiment: the set-up of the PyTorch reference table in docs/bptt.md.
CURE_SETUP = dict(budget_seconds=None, max_steps=3000, hidden_size=64, eval_every=100, dtype="float32")


class AddingRNN(Module):
    """``y = head(h_T)``: a single-layer recurrent layer over (value, marker) pairs, a Linear on h_T.

    ``cell``: ``"rnn"`` (``nn.RNN`` with V initialised by ``init``), ``"lstm"`` (``nn.LSTM``, its
    forget-gate bias starting at ``forget_bias``; None draws it like the other biases, as PyTorch
    does; ``"chrono"`` is :func:`~tinygrad_rnn.nn.chrono_init_` for sequences of ``length``
    steps) or ``"gru"`` (``nn.GRU``). ``init`` applies to the vanilla cell only.
    """

    def __init__(self, hidden_size: int, init: str = "uniform", *, cell: str = "rnn", forget_bias=1.0,
                 length: int | None = None, rng=None, dtype=F64, device=None):
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
        _check_forget_bias(forget_bias)
        if forget_bias == CHRONO and cell == "lstm" and length is None:
            raise ValueError("forget_bias='chrono' needs the sequence length (length=T)")
        self.hidden_size, self.init, self.cell, self.forget_bias = hidden_size, init, cell, forget_bias
        self.length = length
        if cell == "rnn":
            self.rnn = RNN(2, hidden_size, init=init, rng=rng, dtype=dtype, device=device)
        elif cell == "lstm":
            chrono = forget_bias == CHRONO
            self.rnn = LSTM(2, hidden_size, forget_bias=None if chrono else forget_bias, rng=rng, dtype=dtype,
                            device=device)
            if chrono:
                chrono_init_(self.rnn, length, rng=rng)
        else:
            self.rnn = GRU(2, hidden_size, rng=rng, dtype=dtype, device=device)
        self.head = Linear(hidden_size, 1, rng=rng, dtype=dtype, device=device)

    def last_hidden(self, h_last) -> Tensor:
        """h_T (B, H) from the layer's ``h_last`` ((1, B, H), or the pair (h_last, c_last) of an LSTM)."""
        return (h_last[0] if self.cell == "lstm" else h_last)[0]

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
            return "lstm (forget bias like the others)" if self.forget_bias is None else \
                f"lstm (forget bias {self.forget_bias:g})"
        return "gru"


def _check_forget_bias(forget_bias) -> None:
    if forget_bias is None or forget_bias == CHRONO:
        return
    if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.floating, np.integer)) \
            or not math.isfinite(forget_bias):
        raise ValueError(f"forget_bias must be a finite number, None or 'chrono', got {forget_bias!r}")


def mse(prediction: Tensor, targets: Tensor) -> Tensor:
    return ((prediction - targets) ** 2).mean()


@dataclass
class ExperimentConfig:
    """Settings shared by every run (the defaults are the vanilla experiment of ``docs/bptt.md``;
    ``ExperimentConfig(**CURE_SETUP)`` is the cure experiment's)."""
    budget_seconds: float | None = DEFAULT_BUDGET_SECONDS   # None: no time limit
    max_steps: int | None = None    # stop after this many steps (tests, reproducible runs)
    hidden_size: int = 32
    batch_size: int = 64
    lr: float = 1e-3
    clip: float = 1.0               # clip_grad_norm_ max norm (Pascanu et al. 2013)
    test_size: int = 1000
    probe_size: int = 128           # test sequences the gradient flow is measured on
    seed: int = 0
    eval_every: int | None = None   # test MSE every this many steps ("solved at step N")
    stop_when_solved: bool = False  # end a run at the first evaluation below LEARNED_MSE
    forget_bias: float | str | None = 1.0  # the LSTM's b_f at the start (None: like the other biases;
                                           # "chrono": chrono_init_ for each run's length)
    dtype: str = "float64"          # of the training; flows are always measured in float64

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
    train_mse: float                # mean over the last 100 training batches
    test_mse: float
    baseline_mse: float
    learned: bool                   # test MSE < LEARNED_MSE at the end
    ratio_init: float               # ‖∂L/∂h_1‖ / ‖∂L/∂h_T‖ at initialisation
    ratio_trained: float            # the same after training
    flow_init: list = field(repr=False)
    flow_trained: list = field(repr=False)
    checkpoint: str | None = None
    cell: str = "rnn"
    model: str = ""                 # AddingRNN.describe(): "rnn (uniform)", "lstm (forget bias 1)", …
    solved_step: int | None = None  # first evaluation with test MSE < LEARNED_MSE
    evaluations: list = field(default_factory=list, repr=False)   # [(step, test MSE), …]
    load_average: tuple = ()        # 1-minute load average at the start and the end of the run
    cpu_seconds: float | None = None  # CPU time of the training (one BLAS thread: the load barely moves it)


def hidden_flow(model: AddingRNN, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """‖∂L/∂h_t‖ for t = 1..T (batch mean), for any cell, measured on a float64 copy of ``model``.

    :func:`~tinygrad_rnn.bptt.flow.gradient_flow` reads dh_t off the tape for every cell; for an
    LSTM, dh_t includes what reached h_t back along the cell state c.
    """
    if model.rnn.cells[0].V.dtype != F64:
        # a float64 copy: a vanished gradient is not flushed to 0 (gradient_flow leaves .grad as it was)
        copy = AddingRNN(model.hidden_size, model.init, cell=model.cell, forget_bias=model.forget_bias,
                         length=model.length, rng=np.random.default_rng(0), dtype=F64)
        copy.load_state_dict(model.state_dict())
        model = copy
    return gradient_flow(model.rnn, x, None, model.loss_fn(Tensor(y, dtype=F64)))


def evaluate_mse(model: AddingRNN, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """The MSE of ``model`` on (x, y), in batches of ``batch`` sequences, without a graph."""
    dtype = model.head.W.dtype
    total = 0.0
    with no_grad():
        for i in range(0, len(x), batch):
            err = model(Tensor(x[i:i + batch], dtype=dtype)).numpy() - y[i:i + batch]
            total += float((err.astype(F64) ** 2).sum())
    return total / len(x)


def train_adding(length: int, init: str = "uniform", config: ExperimentConfig = None, log=None, *,
                 cell: str = "rnn") -> tuple[RunResult, AddingRNN]:
    """Train one model on the adding problem of ``length`` steps for the configured steps/budget."""
    config = config or ExperimentConfig()
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    model = AddingRNN(config.hidden_size, init, cell=cell, forget_bias=config.forget_bias, length=length,
                      rng=rng, dtype=dtype)
    # test data from a seed no training batch uses (training seeds are ≥ 1, below)
    x_test, y_test = adding_problem(config.test_size, length, seed=10_000_000 + length)
    probe_x, probe_y = x_test[:config.probe_size], y_test[:config.probe_size]
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
        if (config.budget_seconds is not None and now - start >= config.budget_seconds) or \
                (config.max_steps is not None and steps >= config.max_steps):
            break
        # a fresh batch every step: the data is unlimited, so nothing is memorised
        x, y = adding_problem(config.batch_size, length, seed=1 + config.seed * 1_000_003 + steps, dtype=dtype)
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
                log(f"  T={length:<4} {name:<12} step {steps:>6}  {time.perf_counter() - start:7.1f} s  "
                    f"train MSE {np.mean(recent):.4f}  test MSE {evaluations[-1][1]:.4f}"
                    + (f"  (solved at step {solved_step})" if solved_step else ""))
            if config.stop_when_solved and solved_step is not None:
                break
        elif log is not None and not config.eval_every and now >= next_report:
            log(f"  T={length:<4} {name:<12} step {steps:>6}  {now - start:5.1f} s  train MSE {np.mean(recent):.4f}")
            next_report += 10.0
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    test_mse = evaluations[-1][1] if evaluations and evaluations[-1][0] == steps else evaluate_mse(model, x_test, y_test)
    flow_trained = hidden_flow(model, probe_x, probe_y)
    result = RunResult(length=length, init=init, steps=steps, seconds=round(seconds, 2),
                       train_mse=float(np.mean(recent)) if recent else float("nan"),
                       test_mse=test_mse, baseline_mse=ADDING_BASELINE_MSE, learned=test_mse < LEARNED_MSE,
                       ratio_init=gradient_ratio(flow_init), ratio_trained=gradient_ratio(flow_trained),
                       flow_init=flow_init.tolist(), flow_trained=flow_trained.tolist(), cell=cell, model=name,
                       solved_step=solved_step, evaluations=evaluations,
                       load_average=(round(load_start, 2), round(os.getloadavg()[0], 2)),
                       cpu_seconds=round(cpu_seconds, 2))
    return result, model


def run_experiment(lengths=DEFAULT_LENGTHS, inits=INITS, config: ExperimentConfig = None,
                   out_dir=None, figure=None, log=print, cells=("rnn",), jobs: int = 1,
                   threads: int | None = None) -> list[RunResult]:
    """Train every cell × init × length (inits for the vanilla cell only); with ``out_dir`` write
    results.json and results.md after every run, the figure (``gradient-flow.png``, or
    ``figure``) at the end, and one checkpoint per run under ``checkpoints/``.

    ``jobs``: train up to this many runs at once, each in its own process with ``threads`` BLAS
    threads (None: :func:`~tinygrad_rnn.threads.choose_threads` decides, as in the parent); see
    :func:`_train_in_processes`. The results are the same as with ``jobs=1`` (one after another,
    in this process), in the same order: cells, then inits, then lengths. A script that calls this
    with ``jobs > 1`` needs ``if __name__ == "__main__":`` around its work: each worker is a fresh
    Python that imports the script."""
    config = config or ExperimentConfig()
    lengths, inits, cells = [int(n) for n in lengths], list(inits), list(cells)
    for n in lengths:
        if n < 2:
            raise ValueError(f"every length must be at least 2 (one marker per half), got {n}")
    for init in inits:
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    for cell in cells:
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of processes, at least 1; got {jobs!r}")
    if out_dir is not None:
        os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    plan = [(cell, init) for cell in cells for init in (inits if cell == "rnn" else inits[:1])]
    runs = [(cell, init, length) for cell, init in plan for length in lengths]
    workers = min(jobs, len(runs))                 # never more processes than runs
    if workers > 1:
        results = _train_in_processes(runs, workers, threads, config, out_dir, figure, log)
    else:
        results = []
        for cell, init, length in runs:
            results.append(_train_and_save(length, init, cell, config, out_dir, log))
            if log is not None:
                log(_summary(results[-1]))
            if out_dir is not None:                # after every run: a long experiment loses nothing
                write_results(results, config, out_dir, figure=figure, plot=False)
    if out_dir is not None:
        write_results(results, config, out_dir, figure=figure)
    return results


def _train_and_save(length: int, init: str, cell: str, config: ExperimentConfig, out_dir, log) -> RunResult:
    """One run of the plan: say what it trains, train it, save its checkpoint under ``out_dir``."""
    if log is not None:
        log(f"training {_run_name(cell, init, length)} for {config.limit()}"
            + (", stopping when solved" if config.stop_when_solved else ""))
    result, model = train_adding(length, init, config, log=log, cell=cell)
    if out_dir is not None:
        result.checkpoint = os.path.join(out_dir, "checkpoints", checkpoint_name(length, init, cell))
        serialization.save(result.checkpoint, model, meta=_meta(result, config))
    return result


def _run_name(cell: str, init: str, length: int) -> str:
    """A run as the log names it: "T=100, init=uniform" (vanilla) or "T=100, cell=gru"."""
    return f"T={length}, " + (f"init={init}" if cell == "rnn" else f"cell={cell}")


def _summary(result: RunResult, prefix: str = "") -> str:
    """The line that ends a run: its steps, time, test MSE and gradient ratios."""
    return (f"  → {prefix}{result.steps} steps in {result.seconds:.0f} s, test MSE {result.test_mse:.4f} "
            f"({'learned' if result.learned else 'not learned'}"
            + (f", solved at step {result.solved_step}" if result.solved_step else "") + "), "
            f"‖∂L/∂h_1‖/‖∂L/∂h_T‖ {result.ratio_init:.1e} at init → {result.ratio_trained:.1e}")


# ---- several runs at once -----------------------------------------------------------------------

_worker_log_lines = None   # in a worker process: the queue its log lines go to (None: no log)


def _start_worker(threads: int | None, log_lines) -> None:
    """Runs once in each worker process, before its first run: BLAS threads, malloc thresholds, log queue."""
    global _worker_log_lines
    set_blas_threads(threads)
    tune_malloc()  # a spawned worker starts with glibc's defaults again
    _worker_log_lines = log_lines


def _train_in_worker(length: int, init: str, cell: str, config: ExperimentConfig, out_dir) -> RunResult:
    log = _worker_log_lines.put if _worker_log_lines is not None else None
    return _train_and_save(length, init, cell, config, out_dir, log)


def _train_in_processes(runs, workers: int, threads, config: ExperimentConfig, out_dir, figure,
                        log) -> list[RunResult]:
    """Train ``runs`` ((cell, init, length), in plan order) up to ``workers`` at a time.

    Why processes and not threads: a training step here is thousands of small ops, mostly Python,
    and Python runs one thread's Python at a time (the GIL), so threads would take turns. Separate
    processes run side by side, each with its own BLAS limited to ``threads`` threads (one is
    fastest for these small products: tinygrad_rnn/threads.py), so ``workers`` cores are busy.

    Each worker trains, saves its own checkpoint and sends back only the RunResult (plain values;
    a model holds backend arrays, which may not pickle). Only this process writes results.json/.md
    (one writer per run directory), after every finished run, the finished runs in plan order.
    Workers send their log lines through a queue; they are passed on to ``log`` here, and so is
    each run's summary line as it finishes. If a run fails, no new run starts, the runs in flight
    finish and are written, then its error is raised here.
    """
    # "spawn": each worker is a fresh Python, the same on every OS (Python warns that forking a
    # process that runs threads, as BLAS may, can deadlock the child).
    context = multiprocessing.get_context("spawn")
    # Longest first (the cost is linear in T): the short runs then fill the gaps at the end.
    waiting = sorted(range(len(runs)), key=lambda i: -runs[i][2])
    finished, failure = {}, None
    with context.Manager() as manager:
        log_lines = manager.Queue() if log is not None else None   # a put returns once the line is there
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                 initargs=(threads, log_lines)) as pool:
            in_flight = {}                          # future -> index of its run in ``runs``
            while waiting or in_flight:
                while waiting and len(in_flight) < workers:   # no more queued than can run: Ctrl-C stops all
                    index = waiting.pop(0)
                    cell, init, length = runs[index]
                    in_flight[pool.submit(_train_in_worker, length, init, cell, config, out_dir)] = index
                done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                _pass_on(log_lines, log)            # before the summaries: a run's lines come first
                for future in sorted(done, key=in_flight.get):
                    index = in_flight.pop(future)
                    cell, init, length = runs[index]
                    name = _run_name(cell, init, length)
                    error = future.exception()
                    if error is not None:
                        if log is not None:
                            log(f"  ✗ {name} failed: {type(error).__name__}: {error}"
                                + (f"; waiting for the {len(in_flight)} run(s) still training" if in_flight else ""))
                        failure = failure or error
                        waiting.clear()
                        continue
                    finished[index] = future.result()
                    if log is not None:
                        log(_summary(finished[index], prefix=f"{name}: "))
                    if out_dir is not None:         # after every run: a long experiment loses nothing
                        write_results([finished[i] for i in sorted(finished)], config, out_dir,
                                      figure=figure, plot=False)
    if failure is not None:
        raise failure
    return [finished[i] for i in range(len(runs))]


def _pass_on(log_lines, log) -> None:
    """Every line the workers have queued so far, to ``log``."""
    while log_lines is not None and not log_lines.empty():
        log(log_lines.get())


def checkpoint_name(length: int, init: str, cell: str = "rnn") -> str:
    return f"adding-T{length}-{init if cell == 'rnn' else cell}.npz"


def _meta(result: RunResult, config: ExperimentConfig) -> dict:
    return {"model": "AddingRNN", "task": "adding", "length": result.length, "init": result.init,
            "cell": result.cell, "forget_bias": config.forget_bias, "dtype": config.dtype,
            "hidden_size": config.hidden_size, "steps": result.steps, "test_mse": result.test_mse}


def load_adding_model(path) -> tuple[AddingRNN, dict]:
    """A model saved by the experiment (``serialization.save`` with its meta) and that meta."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(archive["__meta__"].tobytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except Exception as e:  # whatever a damaged or foreign file makes the readers raise
        raise serialization.CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    meta = (header or {}).get("meta") or {}
    if meta.get("model") != "AddingRNN":
        shown = str(meta) if len(str(meta)) <= 80 else str(meta)[:80] + "…"   # one readable line
        raise serialization.CheckpointError(f"{path}: not an adding-problem model saved by "
                                         f"'tinygrad-rnn bptt experiment' (its meta: {shown})")
    model = AddingRNN(int(meta["hidden_size"]), meta.get("init", "uniform"), cell=meta.get("cell", "rnn"),
                      forget_bias=meta.get("forget_bias", 1.0), length=meta.get("length"),
                      dtype=np.dtype(meta.get("dtype", "float64")))
    serialization.load(path, model)
    return model, meta


# ---- reporting ----------------------------------------------------------------------------------

def results_table(results) -> str:
    """A Markdown table, one row per run (with the cell and 'solved at' when runs were evaluated)."""
    if any(r.evaluations or r.cell != "rnn" for r in results):
        lines = ["| model | T | steps | test MSE | solved (< 0.05) at step | wall time | CPU time | load | "
                 "‖∂L/∂h_1‖/‖∂L/∂h_T‖ at init | after training |",
                 "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            cpu = f"{r.cpu_seconds:.0f} s" if r.cpu_seconds is not None else "–"
            load = "–".join(f"{x:.1f}" for x in r.load_average) or "–"
            lines.append(f"| {r.model or r.cell} | {r.length} | {r.steps} | {r.test_mse:.4f} | "
                         f"{r.solved_step if r.solved_step else 'not solved'} | {r.seconds:.0f} s | {cpu} | {load} | "
                         f"{r.ratio_init:.2e} | {r.ratio_trained:.2e} |")
        return "\n".join(lines)
    lines = ["| T | init | steps | test MSE | baseline | learned (< 0.05) | ‖∂L/∂h_1‖/‖∂L/∂h_T‖ at init | after training |",
             "|---:|:---|---:|---:|---:|:---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.length} | {r.init} | {r.steps} | {r.test_mse:.4f} | {r.baseline_mse:.3f} | "
                     f"{'yes' if r.learned else 'no'} | {r.ratio_init:.2e} | {r.ratio_trained:.2e} |")
    return "\n".join(lines)


def write_results(results, config: ExperimentConfig, out_dir, figure=None, plot=True) -> dict:
    """results.json, results.md and (``plot``) the figure in ``out_dir``; returns their paths."""
    paths = {"json": os.path.join(out_dir, "results.json"), "markdown": os.path.join(out_dir, "results.md"),
             "figure": figure or os.path.join(out_dir, "gradient-flow.png")}
    loads = [x for r in results for x in r.load_average]
    _write_atomically(paths["json"], json.dumps({"config": asdict(config), "learned_mse": LEARNED_MSE,
                                                 "results": [asdict(r) for r in results]}, indent=1))
    _write_atomically(paths["markdown"],
                      f"# Vanishing-gradient experiment (adding problem)\n\n{results_table(results)}\n\n"
                      f"Settings: {asdict(config)}\n"
                      + (f"\nLoad average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f} "
                         f"on {os.cpu_count()} cores\n" if loads else ""))
    if not plot:
        paths["figure"] = None
        return paths
    try:
        plot_experiment(results, paths["figure"])
    except ImportError:
        paths["figure"] = None  # the numbers are written; the figure needs the plot extra
    return paths


def read_results(path) -> list[RunResult]:
    """The runs of a results.json written by :func:`write_results` (to merge experiments run in
    parts, then ``plot_experiment`` / ``results_table`` them together)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    known = set(RunResult.__dataclass_fields__)
    return [RunResult(**{k: v for k, v in r.items() if k in known}) for r in data["results"]]


def _write_atomically(path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:   # all of it or, interrupted, the old file
        f.write(text)


def plot_experiment(results, path) -> str:
    """One figure: a panel per model (cell, or init of the vanilla cell), one line per length,
    ‖∂L/∂h_t‖/‖∂L/∂h_T‖ against T − t.

    Solid: after training; dashed: at initialisation. Needs matplotlib (``PLOT_INSTALL_HINT``).
    """
    plt = require_matplotlib()
    panels = list(dict.fromkeys(_panel(r) for r in results))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), dpi=120, sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        rows = [r for r in results if _panel(r) == panel]
        trained = {f"T = {r.length}" + (" ✓" if r.learned else ""): r.flow_trained for r in rows}
        at_init = {f"T = {r.length}": r.flow_init for r in rows}
        draw_flows(ax, trained, normalize=True, dashed=at_init, x_axis="back")
        ax.set_title(panel)
        if ax is not axes[0][0]:
            ax.set_ylabel("")
    title = ("Gradient reaching h_t, relative to h_T", "(solid: trained, dashed: at init, ✓: learned)")
    fig.suptitle(("\n" if len(panels) == 1 else " ").join(title), fontsize=10)   # one panel: too narrow for one line
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _panel(r: RunResult) -> str:
    if r.cell == "rnn" and not r.evaluations:
        return f"V init: {r.init}"                 # the vanilla experiment: one panel per init
    return r.model or r.cell


__all__ = ["AddingRNN", "ExperimentConfig", "RunResult", "train_adding", "run_experiment", "results_table",
           "write_results", "read_results", "plot_experiment", "load_adding_model", "checkpoint_name", "hidden_flow",
           "evaluate_mse", "LEARNED_MSE", "CELLS", "CURE_SETUP", "CURE_LENGTHS",
           "DEFAULT_LENGTHS", "DEFAULT_BUDGET_SECONDS", "PLOT_INSTALL_HINT"]
