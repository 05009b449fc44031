"""The experiment's report: a Markdown table, results.json / results.md and the figure.

:func:`write_results` writes them atomically (all of a file or, interrupted, the old one);
:func:`read_results` reads a results.json back, to merge experiments run in parts. The figure is
drawn by :func:`tinygrad_rnn.plotting.bptt.plot_experiment`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

from ...files import atomic_write
from ...plotting.bptt import plot_experiment
from .training import LEARNED_MSE, ExperimentConfig, RunResult


def results_table(results) -> str:
    """A Markdown table, one row per run (with the cell and 'solved at' when runs were evaluated)."""
    if any(r.evaluations or r.cell != "rnn" for r in results):
        lines = [
            "| model | T | steps | test MSE | solved (< 0.05) at step | wall time | CPU time | load | "
            "‖∂L/∂h_1‖/‖∂L/∂h_T‖ at init | after training |",
            "|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results:
            cpu = f"{r.cpu_seconds:.0f} s" if r.cpu_seconds is not None else "–"
            load = "–".join(f"{x:.1f}" for x in r.load_average) or "–"
            lines.append(
                f"| {r.model or r.cell} | {r.length} | {r.steps} | {r.test_mse:.4f} | "
                f"{r.solved_step if r.solved_step else 'not solved'} | {r.seconds:.0f} s | {cpu} | "
                f"{load} | "
                f"{r.ratio_init:.2e} | {r.ratio_trained:.2e} |"
            )
        return "\n".join(lines)
    lines = [
        "| T | init | steps | test MSE | baseline | learned (< 0.05) | ‖∂L/∂h_1‖/‖∂L/∂h_T‖ at init "
        "| after training |",
        "|---:|:---|---:|---:|---:|:---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.length} | {r.init} | {r.steps} | {r.test_mse:.4f} | {r.baseline_mse:.3f} | "
            f"{'yes' if r.learned else 'no'} | {r.ratio_init:.2e} | {r.ratio_trained:.2e} |"
        )
    return "\n".join(lines)


def write_results(results, config: ExperimentConfig, out_dir, figure=None, plot=True) -> dict:
    """results.json, results.md and (``plot``) the figure in ``out_dir``; returns their paths."""
    paths = {
        "json": os.path.join(out_dir, "results.json"),
        "markdown": os.path.join(out_dir, "results.md"),
        "figure": figure or os.path.join(out_dir, "gradient-flow.png"),
    }
    loads = [x for r in results for x in r.load_average]
    _write_atomically(
        paths["json"],
        json.dumps(
            {"config": asdict(config), "learned_mse": LEARNED_MSE, "results": [asdict(r) for r in results]},
            indent=1,
        ),
    )
    _write_atomically(
        paths["markdown"],
        f"# Vanishing-gradient experiment (adding problem)\n\n{results_table(results)}\n\n"
        f"Settings: {asdict(config)}\n"
        + (
            f"\nLoad average (1 min) during the runs: {min(loads):.1f}–{max(loads):.1f} "
            f"on {os.cpu_count()} cores\n"
            if loads
            else ""
        ),
    )
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
    with atomic_write(path, "w", encoding="utf-8") as f:  # all of it or, interrupted, the old file
        f.write(text)
