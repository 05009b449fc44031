"""``tinygrad-rnn bptt compare``: four ways through time (``tinygrad_rnn.bptt.compare``), side by side.

Registered by ``cli/bptt.py`` (:func:`add_parser` adds the subcommand to the ``bptt`` tools).
"""

from __future__ import annotations

import argparse
import json
import os
import time

from ..bptt.compare import METHODS as METHOD_NAMES
from ..files import atomic_write
from ..nn import CELLS
from ..threads import add_threads_argument
from .bptt import _int_list, _no_repeats, _positive_int, _say

RTRL_MAX_BYTES = 2**30  # RTRL's P × P identity and P × B × state influence: refuse beyond 1 GiB

DESCRIPTION = """\
The same gradient through time, four ways, on one layer with random output gradients
(L = Σ_t Σ d_t ⊙ h_t, float64):
  bptt        record every step, walk the tape back        memory ∝ T, time ∝ T
  checkpoint  keep one state per k = √T steps, recompute    memory ∝ √T, about one extra forward
  rtrl        carry ∂h_t/∂θ forward (real-time recurrent)   memory independent of T, time/step ∝ H⁴
  truncated   backward over chunks of k steps only          memory ∝ k, biased
For each method and length: whether it equals plain BPTT (relative error ≤ 1e-10), its error,
time per step and peak memory (tracemalloc), with the fitted log–log slopes beside the laws;
then what truncation gives up on the adding problem (cosine and relative error against the full
gradient, fresh and briefly trained). The default run takes 15–40 s on two cores."""


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _lengths(text: str) -> list:
    return sorted(_int_list(text))


def _methods(text: str) -> list:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in METHOD_NAMES for v in values):
        raise ValueError(text)
    _no_repeats(values)
    return [m for m in METHOD_NAMES if m in values]  # bptt first: the others are compared with it


_nonnegative_int.__name__ = "integer >= 0"
_lengths.__name__ = "comma-separated list of lengths >= 2"
_methods.__name__ = f"comma-separated list of {', '.join(METHOD_NAMES)}"


def add_parser(sub) -> None:
    """Add ``compare`` to the ``bptt`` subcommands (``sub``: their subparsers object)."""
    p = sub.add_parser(
        "compare",
        help="BPTT, checkpointed BPTT, RTRL and truncation: exactness, time, memory",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cell", choices=tuple(CELLS), default="rnn", help="rnn (default), lstm or gru")
    p.add_argument(
        "--hidden",
        type=_positive_int,
        default=32,
        help="hidden size H (default 32; RTRL's memory grows as H⁴, keep it small)",
    )
    p.add_argument(
        "--lengths",
        type=_lengths,
        default=[25, 50, 100, 200, 400, 800],
        help="sequence lengths T (default 25,50,100,200,400,800)",
    )
    p.add_argument("--batch", type=_positive_int, default=8, help="sequences per batch B (default 8)")
    p.add_argument(
        "--truncate",
        type=_positive_int,
        default=10,
        help="k of truncated BPTT in the cost table (default 10); the truncation table uses k/2, k and 2k",
    )
    p.add_argument(
        "--methods",
        type=_methods,
        default=list(METHOD_NAMES),
        help="which methods to run (default all four; bptt always runs, as the reference)",
    )
    p.add_argument(
        "--train-steps",
        type=_nonnegative_int,
        default=800,
        help="Adam steps on the adding problem (T = 20) before the trained rows of the truncation "
        "table (default 800, seconds; 0: fresh model only)",
    )
    p.add_argument(
        "--repeats",
        type=_positive_int,
        default=1,
        help="timed runs per measurement at least, best kept (default 1; a fast one is repeated "
        "up to 7 times within half a second)",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the weights and data (default 0)")
    p.add_argument(
        "--out",
        default=os.path.join("runs", "bptt-compare"),
        help="output directory: compare.md, compare.json, compare.png (default runs/bptt-compare)",
    )
    p.add_argument("--figure", default=None, help="write the figure here (default OUT/compare.png)")
    p.add_argument("--no-plot", action="store_true", help="no figure (tables only)")
    add_threads_argument(p)
    p.set_defaults(func=run_compare_command)


def _check(args) -> list:
    """Every option checked before anything runs or is written; the methods to run."""
    methods = list(args.methods)
    if "bptt" not in methods:
        methods.insert(0, "bptt")  # the reference every error is measured against
    if "rtrl" in methods:
        from ..bptt.compare import INPUT_SIZE, make_layer

        # P = a·H² + b·H for every cell; read a and b off cells of size 1 and 2 (a cell of size H
        # itself could be too big to build, which is what this check is for)
        p1, p2 = (
            sum(p.size for p in make_layer(args.cell, h, input_size=INPUT_SIZE).cells[0].parameters())
            for h in (1, 2)
        )
        a = (p2 - 2 * p1) // 2
        H = args.hidden
        P = a * H * H + (p1 - a) * H
        state = 2 if args.cell == "lstm" else 1
        need = 8 * (P * P + 3 * P * args.batch * H * state)
        if need > RTRL_MAX_BYTES:
            raise ValueError(
                f"RTRL at --hidden {H} ({args.cell}: P = {P} parameters) needs about "
                f"{need / 2**30:.1f} GiB (a P × P identity and P × B × state influences); "
                f"use a smaller --hidden, or --methods without rtrl"
            )
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a file; give a directory")
    if args.figure is not None and (args.no_plot or not args.figure.lower().endswith(".png")):
        raise ValueError(
            f"--figure {args.figure}: "
            + ("--no-plot draws no figure" if args.no_plot else "the figure is a PNG; name a .png file")
        )
    if not args.no_plot:
        from ..plotting import require_matplotlib

        require_matplotlib()  # fail now, not after measuring
    return methods


def run_compare_command(args) -> int:
    from ..bptt import compare as C

    methods = _check(args)
    threads = getattr(args, "threads_line", None) or ""
    _say(
        f"bptt compare: {args.cell}, H = {args.hidden}, B = {args.batch}, "
        f"T = {','.join(map(str, args.lengths))}, "
        f"float64; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
        + (f"; {threads}" if threads else "")
    )
    start = time.perf_counter()
    rows = C.compare(
        args.cell,
        args.hidden,
        args.lengths,
        args.batch,
        truncate=args.truncate,
        methods=methods,
        repeats=args.repeats,
        seed=args.seed,
        log=_say,
    )
    exponent = None
    if "rtrl" in methods and args.cell == "rnn" and args.hidden >= 4:
        exponent = C.rtrl_hidden_exponent((args.hidden // 2, args.hidden), batch=args.batch, seed=args.seed)
    k = args.truncate
    ks = sorted({max(1, k // 2), k, 2 * k})
    trunc_rows, test_mse = C.truncation_bias(
        args.cell, args.hidden, args.lengths, ks, train_steps=args.train_steps, seed=args.seed, log=_say
    )
    wall = time.perf_counter() - start

    report = [
        f"## {args.cell}, H = {args.hidden}, B = {args.batch}, float64: one gradient of L = Σ_t Σ d_t ⊙ h_t",
        "",
        C.format_table(rows),
        "",
        "exact: relative error against plain BPTT ≤ 1e-10; k: segment length (checkpoint, round(√T)) or "
        "steps between cuts (truncated); peak memory: tracemalloc, above what was allocated before",
        "",
        "Log–log slopes against T (fitted over the lengths), beside the laws:",
        "",
        C.format_laws(rows, exponent),
        "",
        "Truncation on the adding problem (MSE of a head on h_T, batch 64): cosine and relative error "
        "‖g_k − g‖/‖g‖ of the truncated gradient against full BPTT, all parameters"
        + (
            f"; trained = {args.train_steps} Adam steps at T = 20, test MSE {test_mse:.3f} "
            f"(0.167 = always predicting 1)"
            if test_mse is not None
            else ""
        )
        + ":",
        "",
        C.format_truncation(trunc_rows),
    ]
    text = "\n".join(report)
    print(text)
    print(f"\nwall time {wall:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")

    os.makedirs(args.out, exist_ok=True)
    with atomic_write(os.path.join(args.out, "compare.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    slopes = C.cost_slopes(rows)
    data = {
        "cell": args.cell,
        "hidden": args.hidden,
        "batch": args.batch,
        "rows": [
            dict(
                method=r.method,
                T=r.T,
                k=r.k,
                exact=r.exact,
                error=r.error,
                seconds=r.seconds,
                peak_bytes=r.peak_bytes,
            )
            for r in rows
        ],
        "slopes": slopes,
        "rtrl_hidden_exponent": None if exponent is None else exponent[2],
        "truncation": [r.__dict__ for r in trunc_rows],
        "trained_test_mse": test_mse,
    }
    with atomic_write(os.path.join(args.out, "compare.json"), "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=float)
    written = [os.path.join(args.out, "compare.md"), os.path.join(args.out, "compare.json")]
    if not args.no_plot:
        from ..plotting.compare import plot_compare

        figure = args.figure or os.path.join(args.out, "compare.png")
        os.makedirs(os.path.dirname(os.path.abspath(figure)), exist_ok=True)
        plot_compare(
            rows,
            figure,
            slopes=slopes,
            laws=C.LAWS,
            title=f"four ways through time: {args.cell}, H = {args.hidden}, B = {args.batch}, float64",
        )
        written.append(figure)
    print(f"wrote {', '.join(written)}")
    return 0
