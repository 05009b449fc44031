"""The experiment's plan of runs, trained one after another or several at once in processes.

:func:`run_experiment` validates the plan (cells × inits × lengths), trains each run with
:func:`~.training.train_adding`, saves its checkpoint and rewrites the report after every finished
run (:func:`~.report.write_results`), so an interrupted experiment loses nothing. With ``jobs > 1``
the runs go to a pool of worker processes (:func:`_train_in_processes` says why processes).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from ... import nn
from ...nn.cells import INITS
from ...threads import set_blas_threads, tune_malloc
from .report import write_results
from .training import (
    DEFAULT_LENGTHS,
    ExperimentConfig,
    RunResult,
    checkpoint_name,
    save_adding_model,
    train_adding,
)


def run_experiment(
    lengths=DEFAULT_LENGTHS,
    inits=INITS,
    config: ExperimentConfig | None = None,
    out_dir=None,
    figure=None,
    log=print,
    cells=("rnn",),
    jobs: int = 1,
    threads: int | None = None,
) -> list[RunResult]:
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
        nn.cell_kind(cell)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of processes, at least 1; got {jobs!r}")
    if out_dir is not None:
        os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    plan = [(cell, init) for cell in cells for init in (inits if cell == "rnn" else inits[:1])]
    runs = [(cell, init, length) for cell, init in plan for length in lengths]
    workers = min(jobs, len(runs))  # never more processes than runs
    if workers > 1:
        results = _train_in_processes(runs, workers, threads, config, out_dir, figure, log)
    else:
        results = []
        for cell, init, length in runs:
            results.append(_train_and_save(length, init, cell, config, out_dir, log))
            if log is not None:
                log(_summary(results[-1]))
            if out_dir is not None:  # after every run: a long experiment loses nothing
                write_results(results, config, out_dir, figure=figure, plot=False)
    if out_dir is not None:
        write_results(results, config, out_dir, figure=figure)
    return results


def _train_and_save(length: int, init: str, cell: str, config: ExperimentConfig, out_dir, log) -> RunResult:
    """One run of the plan: say what it trains, train it, save its checkpoint under ``out_dir``."""
    if log is not None:
        log(
            f"training {_run_name(cell, init, length)} for {config.limit()}"
            + (", stopping when solved" if config.stop_when_solved else "")
        )
    result, model = train_adding(length, init, config, log=log, cell=cell)
    if out_dir is not None:
        result.checkpoint = os.path.join(out_dir, "checkpoints", checkpoint_name(length, init, cell))
        save_adding_model(result.checkpoint, model, result, config)
    return result


def _run_name(cell: str, init: str, length: int) -> str:
    """A run as the log names it: "T=100, init=uniform" (vanilla) or "T=100, cell=gru"."""
    return f"T={length}, " + (f"init={init}" if cell == "rnn" else f"cell={cell}")


def _summary(result: RunResult, prefix: str = "") -> str:
    """The line that ends a run: its steps, time, test MSE and gradient ratios."""
    return (
        f"  → {prefix}{result.steps} steps in {result.seconds:.0f} s, test MSE {result.test_mse:.4f} "
        f"({'learned' if result.learned else 'not learned'}"
        + (f", solved at step {result.solved_step}" if result.solved_step else "")
        + "), "
        f"‖∂L/∂h_1‖/‖∂L/∂h_T‖ {result.ratio_init:.1e} at init → {result.ratio_trained:.1e}"
    )


# ---- several runs at once -----------------------------------------------------------------------

_worker_log_lines = None  # in a worker process: the queue its log lines go to (None: no log)


def _start_worker(threads: int | None, log_lines) -> None:
    """Runs once in each worker process, before its first run: BLAS threads, malloc thresholds, log queue."""
    global _worker_log_lines
    set_blas_threads(threads)
    tune_malloc()  # a spawned worker starts with glibc's defaults again
    _worker_log_lines = log_lines


def _train_in_worker(length: int, init: str, cell: str, config: ExperimentConfig, out_dir) -> RunResult:
    log = _worker_log_lines.put if _worker_log_lines is not None else None
    return _train_and_save(length, init, cell, config, out_dir, log)


def _train_in_processes(
    runs, workers: int, threads, config: ExperimentConfig, out_dir, figure, log
) -> list[RunResult]:
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
        log_lines = manager.Queue() if log is not None else None  # a put returns once the line is there
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(threads, log_lines)
        ) as pool:
            in_flight: dict[Future, int] = {}  # future -> index of its run in ``runs``
            while waiting or in_flight:
                while waiting and len(in_flight) < workers:  # no more queued than can run: Ctrl-C stops all
                    index = waiting.pop(0)
                    cell, init, length = runs[index]
                    in_flight[pool.submit(_train_in_worker, length, init, cell, config, out_dir)] = index
                done, _ = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                _pass_on(log_lines, log)  # before the summaries: a run's lines come first
                for future in sorted(done, key=in_flight.__getitem__):
                    index = in_flight.pop(future)
                    cell, init, length = runs[index]
                    name = _run_name(cell, init, length)
                    error = future.exception()
                    if error is not None:
                        if log is not None:
                            waiting_note = f"; waiting for the {len(in_flight)} run(s) still training"
                            log(
                                f"  ✗ {name} failed: {type(error).__name__}: {error}"
                                + (waiting_note if in_flight else "")
                            )
                        failure = failure or error
                        waiting.clear()
                        continue
                    finished[index] = future.result()
                    if log is not None:
                        log(_summary(finished[index], prefix=f"{name}: "))
                    if out_dir is not None:  # after every run: a long experiment loses nothing
                        write_results(
                            [finished[i] for i in sorted(finished)],
                            config,
                            out_dir,
                            figure=figure,
                            plot=False,
                        )
    if failure is not None:
        raise failure
    return [finished[i] for i in range(len(runs))]


def _pass_on(log_lines, log) -> None:
    """Every line the workers have queued so far, to ``log``."""
    while log_lines is not None and not log_lines.empty():
        log(log_lines.get())
