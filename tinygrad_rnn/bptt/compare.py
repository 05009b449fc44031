"""Four ways through time, side by side: the same gradient, different costs.

The problem (notation of docs/chapter.md): one recurrent layer over x (B, T, E) with outputs
h_1 … h_T, and the loss L = Σ_t Σ d_t ⊙ h_t for fixed random d_t (what any loss on the outputs
hands back as ∂L/∂h_t through the output at t). Each method returns ∂L/∂θ for the cell's
parameters θ:

* ``bptt``: record the T steps, walk the tape back (``loss.backward()``). Keeps every step:
  memory ∝ T, time ∝ T (a forward and a backward).
* ``checkpoint``: the same walk with ``checkpoint=k``, k = round(√T): one state kept per k steps,
  each segment run again, recording, in the backward. The recurrence's memory ∝ T/k + k ∝ √T (the
  outputs, the input projection and their gradients are B × T × H arrays every taped method
  holds, so the measured total lies between √T and T), time ∝ T with about one extra forward.
  Exact.
* ``rtrl``: real-time recurrent learning (:func:`~tinygrad_rnn.bptt.rtrl`): carry the influence
  M_t = ∂s_t/∂θ forward, nothing of a step kept once it is done. Memory ∝ P · B · state,
  independent of T; time per step ∝ H⁴ for the vanilla cell (P ≈ H² directions through a step of
  cost ≈ H² each). Exact.
* ``truncated``: BPTT over chunks of k steps, the state carried on but detached at each cut, one
  backward per chunk (what ``truncate=k`` computes, done chunk by chunk so only one chunk is ever
  recorded). Memory ∝ k, time ∝ T; *biased*: nothing flows back across a cut.

:func:`compare` measures each method at each T — whether it equals plain BPTT (relative error
≤ :data:`EXACT_TOLERANCE` in float64), its error, time per step, peak memory (tracemalloc) — and
:func:`cost_slopes` fits the log–log slopes that the laws above predict. :func:`truncation_bias`
quantifies what truncation gives up: the cosine and relative error of the truncated gradient of
the adding problem's loss against the full one, for a fresh and a briefly trained model.
"""

from __future__ import annotations

import math
import time
import tracemalloc
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from ..data.adding import adding_problem
from ..nn import cell_kind, recurrent_layer
from ..nn.functional import mse
from ..tensor import Tensor
from .rtrl import rtrl

METHODS = ("bptt", "checkpoint", "rtrl", "truncated")
EXACT_TOLERANCE = 1e-10  # float64: an exact method differs from plain BPTT by rounding only
INPUT_SIZE = 4
R = TypeVar("R")  # what a measured function returns

# The cost laws, as exponents of T: (memory, time of one gradient over the whole sequence, note)
LAWS = {
    "bptt": (1.0, 1.0, "memory ∝ T (every step kept), time ∝ T"),
    "checkpoint": (
        0.5,
        1.0,
        "the recurrence's memory ∝ √T with k = √T (the outputs, the input projection and "
        "their gradients, a few B×T×H arrays, stay ∝ T), time ∝ T at about one extra forward",
    ),
    "rtrl": (0.0, 1.0, "memory ∝ P·B·state, independent of T; time per step ∝ H⁴ (vanilla cell)"),
    "truncated": (0.0, 1.0, "memory ∝ k, independent of T; time ∝ T; biased"),
}


@dataclass
class Measurement:
    """One method at one length: its gradient's error against plain BPTT and its costs."""

    method: str
    T: int
    k: int | None  # segment length (checkpoint) or truncation length (truncated)
    error: float  # max |g − g_bptt| / max |g_bptt| over all parameters
    seconds: float  # one gradient over the whole sequence (best of the repeats)
    peak_bytes: int  # tracemalloc's peak during it, above what was allocated before

    @property
    def exact(self) -> bool:
        return self.error <= EXACT_TOLERANCE

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / self.T


def make_layer(cell: str, hidden: int, *, seed: int = 0, input_size: int = INPUT_SIZE, dtype="float64"):
    """The one-layer recurrent layer of ``cell`` (``nn.recurrent_layer``: any cell the registry
    knows) with weights drawn from ``seed``; an unknown name is refused naming the known ones."""
    return recurrent_layer(cell, input_size, hidden, rng=np.random.default_rng(seed), dtype=dtype)


def segment_length(T: int) -> int:
    """Checkpointing's default k at length T: round(√T), which keeps about 2√T states in all."""
    return max(1, round(math.sqrt(T)))


def make_data(layer, T: int, batch: int, *, seed: int = 0):
    """x (B, T, E) and the output gradients d (B, T, H): standard normal, float64."""
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((batch, T, layer.input_size))
    d = rng.standard_normal((batch, T, layer.hidden_size))
    return x, d


def _cell_grads(layer) -> dict:
    cell = layer.cells[0]
    return {name: p.grad.copy() for name, p in cell.named_parameters()}


def gradient(method: str, layer, x: np.ndarray, d: np.ndarray, k: int | None = None) -> dict:
    """∂L/∂θ of L = Σ_t Σ d_t ⊙ h_t by ``method`` (module docstring), keyed like the cell's
    ``named_parameters()``. ``k``: the segment length (checkpoint; default round(√T)) or the
    truncation length (truncated; required)."""
    T = x.shape[1]
    if method == "rtrl":
        return rtrl(layer.cells[0], x, d)
    layer.zero_grad()
    if method in ("bptt", "checkpoint"):
        layer.checkpoint = None if method == "bptt" else (k or segment_length(T))
        try:
            outputs, _ = layer(Tensor(x))
            (outputs * Tensor(d)).sum().backward()
        finally:
            layer.checkpoint = None
        return _cell_grads(layer)
    if method == "truncated":
        if k is None:
            raise ValueError("truncated BPTT needs k, the steps between cuts")
        state = None
        for start in range(0, T, k):  # one chunk recorded at a time, its backward, then on
            outputs, last = layer(Tensor(x[:, start : start + k]), h0=state)
            (outputs * Tensor(d[:, start : start + k])).sum().backward()
            state = tuple(p.detach() for p in last) if isinstance(last, tuple) else last.detach()
        return _cell_grads(layer)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def relative_error(g: dict, reference: dict) -> float:
    """max |g − reference| / max |reference| over all parameters (0 when both are 0)."""
    scale = max(float(np.abs(r).max()) for r in reference.values())
    diff = max(float(np.abs(g[n] - r).max()) for n, r in reference.items())
    return diff / scale if scale > 0 else diff


def peak_memory(fn: Callable[[], R]) -> tuple[R, int]:
    """``fn()``'s result and tracemalloc's peak during it, above the memory in use when it starts."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


def best_time(fn, repeats: int = 1, budget: float = 0.5, most: int = 7) -> float:
    """The best of at least ``repeats`` runs of ``fn``, and more (up to ``most``) while they have
    taken less than ``budget`` seconds together: a fast measurement is repeated until a stray
    pause of a shared machine no longer decides it, a slow one runs ``repeats`` times."""
    best, spent, runs = math.inf, 0.0, 0
    while runs < repeats or (runs < most and spent < budget):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, spent, runs = min(best, took), spent + took, runs + 1
    return best


def method_k(method: str, T: int, truncate: int) -> int | None:
    """The k a method runs with at length T: round(√T) for checkpointing, ``truncate`` for truncation."""
    if method == "checkpoint":
        return segment_length(T)
    return truncate if method == "truncated" else None


def compare(
    cell: str = "rnn",
    hidden: int = 32,
    lengths=(25, 50, 100, 200, 400),
    batch: int = 8,
    *,
    truncate: int = 10,
    methods=METHODS,
    repeats: int = 1,
    budget: float = 0.5,
    seed: int = 0,
    log=None,
) -> list:
    """Every method at every length: a list of :class:`Measurement` (float64, one process).

    Each gradient is computed once under tracemalloc (peak memory; tracemalloc slows Python down,
    so this run is not timed), then timed by :func:`best_time` (at least ``repeats`` runs, more
    within ``budget`` seconds; the best kept). The error is against plain BPTT on the same weights and data.
    """
    cell_kind(cell)  # an unknown cell is refused before any work
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    layer = make_layer(cell, hidden, seed=seed)
    rows = []
    for T in lengths:
        x, d = make_data(layer, T, batch, seed=seed)
        reference = gradient("bptt", layer, x, d)
        for method in methods:
            k = method_k(method, T, truncate)
            g, peak = peak_memory(lambda: gradient(method, layer, x, d, k))
            seconds = best_time(lambda: gradient(method, layer, x, d, k), repeats, budget)
            rows.append(Measurement(method, T, k, relative_error(g, reference), seconds, peak))
            if log is not None:
                log(f"  T={T:<5} {method:<10} {seconds:7.3f} s  peak {peak / 2**20:7.2f} MiB")
    return rows


def slope(xs, ys) -> float:
    """The least-squares slope of log y against log x (the exponent of a power law)."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def cost_slopes(rows) -> dict:
    """{method: (memory slope, time slope)} of peak memory and of the whole gradient's time
    against T, log–log (None when the method ran at fewer than two lengths)."""
    out: dict[str, tuple[float, float] | None] = {}
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        if len(mine) < 2:
            out[method] = None
            continue
        Ts = [r.T for r in mine]
        out[method] = (slope(Ts, [max(r.peak_bytes, 1) for r in mine]), slope(Ts, [r.seconds for r in mine]))
    return out


def rtrl_hidden_exponent(
    hiddens=(16, 32), T: int = 20, batch: int = 8, *, cell: str = "rnn", repeats: int = 2, seed: int = 0
) -> tuple[tuple, list, float]:
    """``(hiddens, seconds per step at each, fitted exponent of H)`` for RTRL (law: 4 for the
    vanilla cell, once the H⁴ arithmetic outweighs Python's fixed cost per op)."""
    times = []
    for H in hiddens:
        layer = make_layer(cell, H, seed=seed)
        x, d = make_data(layer, T, batch, seed=seed)
        times.append(best_time(lambda: rtrl(layer.cells[0], x, d), repeats) / T)
    return tuple(hiddens), times, slope(hiddens, times)


def format_table(rows) -> str:
    """The measurements as a Markdown table, one row per method and length."""
    lines = [
        "| method | T | k | exact | error vs BPTT | time / step | peak memory |",
        "|---|---:|---:|:---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.T} | {'' if r.k is None else r.k} | {'yes' if r.exact else 'no'} | "
            f"{r.error:.1e} | {r.seconds_per_step * 1e3:.3f} ms | {r.peak_bytes / 2**20:.2f} MiB |"
        )
    return "\n".join(lines)


def format_laws(rows, hidden_exponent=None) -> str:
    """The measured log–log slopes beside the laws, as a Markdown table."""
    slopes = cost_slopes(rows)
    bptt = {r.T: r for r in rows if r.method == "bptt"}
    longest = max(bptt) if bptt else None
    lines = [
        "| method | memory slope (law) | time slope (law) | memory vs BPTT at T = "
        f"{longest} | time vs BPTT (median) | the law |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for method, fitted in slopes.items():
        mem_law, time_law, note = LAWS[method]
        ratios = [r.seconds / bptt[r.T].seconds for r in rows if r.method == method and r.T in bptt]
        ratio = f"{np.median(ratios):.2f}×" if ratios else ""
        last = [r for r in rows if r.method == method and r.T == longest]
        memory = f"{last[0].peak_bytes / max(bptt[longest].peak_bytes, 1):.2f}×" if last else ""
        if method == "rtrl" and hidden_exponent is not None:
            (h1, h2), _, exponent = hidden_exponent
            note += f" (measured: H^{exponent:.1f} between H = {h1} and {h2})"
        if fitted is None:
            lines.append(f"| {method} | ({mem_law:g}) | ({time_law:g}) | {memory} | {ratio} | {note} |")
        else:
            lines.append(
                f"| {method} | {fitted[0]:.2f} ({mem_law:g}) | {fitted[1]:.2f} ({time_law:g}) | {memory} | "
                f"{ratio} | {note} |"
            )
    return "\n".join(lines)


# ---- truncation, quantified -----------------------------------------------------------------------


@dataclass
class TruncationRow:
    state: str  # "fresh" or "trained"
    T: int
    k: int
    cosine: float  # cos ∠(g_k, g) over all parameters flattened together
    error: float  # ‖g_k − g‖ / ‖g‖


def _flat_grads(model) -> np.ndarray:
    return np.concatenate(
        [(p.grad if p.grad is not None else np.zeros(p.shape)).ravel() for p in model.parameters()]
    )


def adding_gradient(model, x: np.ndarray, y: np.ndarray, truncate: int | None) -> np.ndarray:
    """The adding problem's MSE gradient (all parameters, flattened) with ``truncate`` steps
    between cuts (None: full BPTT)."""
    model.rnn.truncate = truncate
    try:
        model.zero_grad()
        mse(model(Tensor(x)), Tensor(y)).backward()
        return _flat_grads(model)
    finally:
        model.rnn.truncate = None


def truncation_bias(
    cell: str = "rnn",
    hidden: int = 32,
    lengths=(25, 50, 100, 200, 400),
    ks=(5, 10, 20),
    *,
    batch: int = 64,
    train_steps: int = 800,
    train_length: int = 20,
    init: str = "uniform",
    seed: int = 0,
    log=None,
) -> tuple[list, float | None]:
    """Cosine and relative error of the truncated gradient (truncate = k) against full BPTT on
    the adding problem's MSE, for a fresh model and (``train_steps`` > 0) the same model trained
    by the experiment's own loop (``bptt.experiment.train_adding``: Adam at lr 1e-2, batches of
    32, clipped at norm 1, at length ``train_length``): the rows, and the trained model's test MSE
    (None if untrained). ``init``: how the vanilla cell's V starts (the gated cells ignore it)."""
    from .experiment import AddingRNN, ExperimentConfig, train_adding

    model = AddingRNN(hidden, init, cell=cell, rng=np.random.default_rng(seed), dtype=np.float64)
    states = ["fresh"] + (["trained"] if train_steps > 0 else [])
    rows, test_mse = [], None
    for state in states:
        if state == "trained":  # the same initial weights (same seed), then trained
            config = ExperimentConfig(
                budget_seconds=None,
                max_steps=train_steps,
                hidden_size=hidden,
                batch_size=32,
                lr=1e-2,
                seed=seed,
            )
            result, model = train_adding(train_length, init, config, cell=cell)
            test_mse = result.test_mse
            if log is not None:
                log(f"  trained {train_steps} steps at T={train_length}: test MSE {test_mse:.4f}")
        for T in lengths:
            x, y = adding_problem(batch, T, seed=20_000_000 + T)
            full = adding_gradient(model, x, y, None)
            for k in ks:
                if k >= T:
                    continue  # truncate ≥ T is plain BPTT
                g = adding_gradient(model, x, y, k)
                norm = np.linalg.norm(full) * np.linalg.norm(g)
                cosine = float(g @ full / norm) if norm > 0 else float("nan")
                rows.append(
                    TruncationRow(state, T, k, cosine, float(np.linalg.norm(g - full) / np.linalg.norm(full)))
                )
    return rows, test_mse


def format_truncation(rows) -> str:
    """The truncation rows as a Markdown table: per model state and T, cosine / relative error per k."""
    ks = sorted({r.k for r in rows})
    lines = [
        "| model | T | " + " | ".join(f"k = {k}: cos, rel. error" for k in ks) + " |",
        "|---|---:|" + "---:|" * len(ks),
    ]
    for state in dict.fromkeys(r.state for r in rows):
        for T in dict.fromkeys(r.T for r in rows if r.state == state):
            cells = []
            for k in ks:
                hit = [r for r in rows if r.state == state and r.T == T and r.k == k]
                cells.append(f"{hit[0].cosine:.4f}, {hit[0].error:.1e}" if hit else "(k ≥ T: exact)")
            lines.append(f"| {state} | {T} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
