"""``tinygrad-rnn bptt …``: the BPTT tools on the command line (see :data:`DESCRIPTION`).

Each subcommand parses its arguments and calls the library (``tinygrad_rnn.bptt``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import numpy as np

from ..nn import CELLS
from ..nn.cells import INITS
from ..nn.recurrent_layers import check_init
from ..threads import add_threads_argument, set_blas_threads

DESCRIPTION = """\
See backpropagation through time at work:
  experiment  the vanishing-gradient experiment on the adding problem (a table and a figure)
  flow        ‖∂L/∂h_t‖ per step of a fresh or trained model, beside the Jacobian norms
  graph       the unrolled graph as Graphviz DOT (and SVG when 'dot' is installed)
  trace       every forward op and backward step of a tiny RNN, in order, as a table
  compare     BPTT, checkpointed BPTT, RTRL and truncation: exactness, time and memory against T"""

GRAPHVIZ_HINT = (
    "the 'dot' program of Graphviz is not installed, so no SVG was written; get it with "
    "'apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or from "
    "graphviz.org, or paste the DOT above into any Graphviz viewer"
)


def add_parser(subparsers) -> None:
    """Add ``bptt`` and its subcommands (each sets ``func``) to the top-level parser."""
    bptt = subparsers.add_parser(
        "bptt",
        help="see backpropagation through time: experiment, flow, graph, trace, compare",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = bptt.add_subparsers(dest="bptt_command", metavar="TOOL")
    sub.required = True

    p = sub.add_parser(
        "experiment",
        help="train on the adding problem per length and cell/init; where does learning stop?",
        description="Without --cells: the vanilla RNN per length and init of V, 40 s per run "
        "(about 8 minutes). With --cells rnn,lstm,gru: the cure experiment, 3,000 steps "
        "per run, hidden 64, test MSE every 100 steps, float32 (docs/bptt.md).",
    )
    p.add_argument(
        "--cells",
        type=_cell_list,
        default=None,
        help="rnn, lstm, gru, comma-separated; switches to the cure set-up (3,000 steps, hidden 64, "
        "lengths 50,100,200,400, test every 100 steps, float32) unless the options below say otherwise "
        "(default: none, the vanilla experiment)",
    )
    p.add_argument(
        "--lengths",
        type=_int_list,
        default=None,
        help="sequence lengths (default 10,25,50,100; with --cells 50,100,200,400)",
    )
    p.add_argument(
        "--init",
        type=_init_list,
        default=None,
        help=f"initialisations of V, comma-separated (default {','.join(INITS)}; with --cells uniform)",
    )
    p.add_argument(
        "--budget-seconds",
        type=_positive_float,
        default=None,
        help="training time per run (default 40 without --cells: the whole default run takes about "
        "8 minutes; none with --cells)",
    )
    p.add_argument(
        "--max-steps",
        "--steps",
        dest="max_steps",
        type=_positive_int,
        default=None,
        help="stop each run after this many steps (default: the time budget alone; with --cells 3000)",
    )
    p.add_argument(
        "--eval-every",
        type=_positive_int,
        default=None,
        help="test MSE every N steps, for 'solved at step N' (default: at the end only; with --cells 100)",
    )
    p.add_argument(
        "--stop-when-solved",
        action="store_true",
        help="end a run at the first evaluation with test MSE < 0.05 (saves time; the test MSE "
        "reported is then the one at that step)",
    )
    p.add_argument(
        "--forget-bias",
        type=_forget_bias,
        default=1.0,
        help="the LSTM's forget-gate bias at the start (default 1; 'none' draws it like the other "
        "biases, as PyTorch does; 'chrono': b_f = log U(1, T - 1) and b_i = -b_f for each "
        "run's length T, Tallec & Ollivier 2018)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=None,
        help="dtype of the training (default float64; with --cells float32); flows are measured in float64",
    )
    p.add_argument(
        "--hidden", type=_positive_int, default=None, help="hidden size H (default 32; with --cells 64)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=64, help="sequences per batch (default 64)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument(
        "--clip", type=_positive_float, default=1.0, help="gradient clipping max norm (default 1.0)"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the data and the weights (default 0)")
    p.add_argument(
        "--out",
        default=None,
        help="output directory: results.md/.json, gradient-flow.png, checkpoints/ "
        "(default runs/bptt-experiment; with --cells runs/bptt-cure)",
    )
    p.add_argument("--figure", default=None, help="write the figure here (default OUT/gradient-flow.png)")
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="train up to N runs at once (default 1: one after another); each job is one process "
        "using --threads BLAS threads, so keep jobs × threads at most the number of cores; "
        "the results are the same as with 1",
    )
    add_threads_argument(p)
    p.set_defaults(func=run_experiment_command)

    p = sub.add_parser(
        "flow",
        help="‖∂L/∂h_t‖ per step of a fresh or trained model (PNG + terminal)",
        description="Backpropagate one loss at the last step through a fresh or trained RNN and "
        "show how much gradient ‖∂L/∂h_t‖ reaches each earlier step, beside the norms "
        "of the step Jacobians that shrink it (a table here, a figure as PNG). "
        "Seconds on a 2-core CPU.",
    )
    p.add_argument(
        "--task",
        choices=["adding"],
        default="adding",
        help="the data the sequences come from (default adding: the adding problem)",
    )
    p.add_argument(
        "--length",
        type=_positive_int,
        default=None,
        help="sequence length T (default 100, or the checkpoint's length)",
    )
    p.add_argument(
        "--init", choices=INITS, default=None, help="initialisation of V for a fresh model (default uniform)"
    )
    p.add_argument(
        "--cell",
        choices=tuple(CELLS),
        default=None,
        help="cell of a fresh model: rnn (default), lstm (shows the cell-state path diag(f_t) too) or gru",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        help="a model saved by 'bptt experiment': its .npz file, or the experiment's output "
        "directory (the file for --length and --init is picked); default: a fresh model",
    )
    p.add_argument(
        "--hidden",
        type=_positive_int,
        default=None,
        help="hidden size of a fresh model (default 32; a checkpoint has its own)",
    )
    p.add_argument(
        "--batch", type=_positive_int, default=128, help="sequences the flow is averaged over (default 128)"
    )
    p.add_argument(
        "--truncate",
        type=_positive_int,
        default=None,
        help="truncated BPTT: detach the state every K steps (nn.RNN's truncate=K; default: never)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the sequences and a fresh model's weights (default 0)"
    )
    p.add_argument(
        "--out", default=None, help="PNG path (default runs/bptt-flow/<task>-T<length>-<init>.png)"
    )
    p.add_argument("--no-plot", action="store_true", help="terminal output only")
    p.add_argument("--rows", type=_positive_int, default=25, help="steps shown in the terminal (default 25)")
    add_threads_argument(p)
    p.set_defaults(func=run_flow_command)

    p = sub.add_parser(
        "graph",
        help="the unrolled graph as Graphviz DOT (SVG too when 'dot' is installed)",
        description="Build a tiny RNN unrolled over a few steps, with a linear head and an MSE loss, "
        "and print the graph that backward() walks as Graphviz DOT, each time step in "
        "its own box; with Graphviz's 'dot' installed, also write it as SVG.",
    )
    p.add_argument("--steps", type=_positive_int, default=3, help="time steps to unroll (default 3)")
    p.add_argument(
        "--hidden", type=_positive_int, default=3, help="hidden size H of the drawn RNN (default 3)"
    )
    p.add_argument(
        "--rnn",
        action="store_true",
        help="draw the layer (nn.RNN, nn.LSTM, nn.GRU: input term of all steps in one product) "
        "instead of the cell step by step",
    )
    p.add_argument("--cell", choices=tuple(CELLS), default="rnn", help="rnn (default), lstm or gru")
    p.add_argument("--out", default=None, help="SVG path (default runs/bptt-graph-T<steps>.svg)")
    p.set_defaults(func=run_graph_command)

    p = sub.add_parser(
        "trace",
        help="watch BPTT run: every forward op and backward step with shapes and t",
        description="Run a tiny RNN forward and backward once and print, in order, every op the "
        "forward pass records and every backward step that walks them back from "
        "t = T to t = 1, with its time step and shapes.",
    )
    p.add_argument("--steps", type=_positive_int, default=3, help="time steps T (default 3)")
    p.add_argument("--batch", type=_positive_int, default=2, help="sequences in the batch B (default 2)")
    p.add_argument("--hidden", type=_positive_int, default=3, help="hidden size H (default 3)")
    p.add_argument(
        "--phase",
        choices=["all", "forward", "backward"],
        default="all",
        help="which part of the trace to print (default all)",
    )
    p.add_argument("--cell", choices=tuple(CELLS), default="rnn", help="rnn (default), lstm or gru")
    p.add_argument("--seed", type=int, default=0, help="seeds the inputs and weights (default 0)")
    p.set_defaults(func=run_trace_command)

    from . import compare  # four ways through time: its own module

    compare.add_parser(sub)


# ---- argument types (argparse turns their ValueError/TypeError into a usage error) --------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _int_list(text: str) -> list:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 2:
        raise ValueError(text)
    return _no_repeats(values)


def _no_repeats(values: list) -> list:
    """A list option names each value once: a repeat would run (and report) the same thing twice."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(repeated)} given twice; name each once")
    return values


def _cell_list(text: str) -> list:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in CELLS for v in values):
        raise ValueError(text)
    return _no_repeats(values)


def _forget_bias(text: str):
    word = text.strip().lower()
    if word in ("none", "chrono"):
        return None if word == "none" else "chrono"
    value = float(text)
    if not math.isfinite(value):  # nan would train a NaN model, inf saturate every gate
        raise ValueError(text)
    return value


def _init_list(text: str) -> list:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values or any(v not in INITS for v in values):
        raise ValueError(text)
    return _no_repeats(values)


_positive_int.__name__ = "positive integer"
_positive_float.__name__ = "positive number"
_int_list.__name__ = "comma-separated list of lengths >= 2"
_init_list.__name__ = f"comma-separated list of {', '.join(INITS)}"
_cell_list.__name__ = "comma-separated list of rnn, lstm, gru"
_forget_bias.__name__ = "finite number, 'none' or 'chrono'"


def _say(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---- experiment ---------------------------------------------------------------------------------


def run_experiment_command(args) -> int:
    from ..bptt.experiment import (
        CURE_LENGTHS,
        CURE_SETUP,
        DEFAULT_BUDGET_SECONDS,
        DEFAULT_LENGTHS,
        ExperimentConfig,
        results_table,
        run_experiment,
    )

    cure = args.cells is not None
    if cure and args.init is not None and "rnn" not in args.cells:
        raise ValueError(
            f"--init sets the vanilla RNN's V; --cells {','.join(args.cells)} has no rnn, so it "
            "would change nothing (add rnn to --cells, or leave --init out)"
        )
    base = (
        CURE_SETUP
        if cure
        else dict(
            budget_seconds=DEFAULT_BUDGET_SECONDS,
            max_steps=None,
            hidden_size=32,
            eval_every=None,
            dtype="float64",
        )
    )
    given = {
        "budget_seconds": args.budget_seconds,
        "max_steps": args.max_steps,
        "hidden_size": args.hidden,
        "eval_every": args.eval_every,
        "dtype": args.dtype,
    }
    settings: dict[str, Any] = {k: v if v is not None else base[k] for k, v in given.items()}
    if cure and args.budget_seconds is not None and args.max_steps is None:
        settings["max_steps"] = None  # a budget alone: no step limit
    config = ExperimentConfig(
        **settings,
        batch_size=args.batch_size,
        lr=args.lr,
        clip=args.clip,
        seed=args.seed,
        stop_when_solved=args.stop_when_solved,
        forget_bias=args.forget_bias,
    )
    cells = args.cells or ["rnn"]
    lengths = args.lengths or list(CURE_LENGTHS if cure else DEFAULT_LENGTHS)
    inits = args.init or (["uniform"] if cure else list(INITS))
    out = args.out or os.path.join("runs", "bptt-cure" if cure else "bptt-experiment")
    threads = getattr(args, "threads_line", None) or set_blas_threads(args.threads)
    runs = len(lengths) * sum(len(inits) if c == "rnn" else 1 for c in cells)
    jobs = min(args.jobs, runs)
    _say(
        f"{runs} runs × {config.limit()}"
        + (
            f" (about {runs * config.budget_seconds / 60:.1f} min of training)"
            if config.budget_seconds
            else ""
        )
        + (f", {jobs} at a time in {jobs} processes" if jobs > 1 else "")
        + f"; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; {threads}"
        + (" per process" if jobs > 1 else "")
    )
    start = time.perf_counter()
    results = run_experiment(
        lengths,
        inits,
        config,
        out_dir=out,
        figure=args.figure,
        log=_say,
        cells=cells,
        jobs=args.jobs,
        threads=args.threads,
    )
    wall = time.perf_counter() - start
    print(results_table(results))
    print(
        f"\nwall time {wall:.0f} s; baseline MSE (always predict 1) = 0.167; learned = test MSE < 0.05; "
        f"load average {os.getloadavg()[0]:.2f} at the end"
    )
    figure = args.figure or os.path.join(out, "gradient-flow.png")
    print(
        f"wrote {os.path.join(out, 'results.md')}, {os.path.join(out, 'results.json')}, "
        + (f"{figure}, " if os.path.exists(figure) else "")
        + f"checkpoints in {os.path.join(out, 'checkpoints')}"
    )
    if not os.path.exists(figure):
        from ..plotting import PLOT_INSTALL_HINT

        print(f"no figure: plotting needs matplotlib: {PLOT_INSTALL_HINT}")
    return 0


# ---- flow ---------------------------------------------------------------------------------------


def _find_checkpoint(path: str, length, init, cell=None) -> str:
    """The .npz itself, or in an experiment directory the file for ``length``, ``init`` and ``cell``
    (gated cells' files are named by the cell: ``adding-T100-lstm.npz``)."""
    from ..bptt.experiment import checkpoint_name

    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no checkpoint at {path}")
        return path
    if length is None:
        raise ValueError(f"{path} is a directory: pass --length (and --init) to pick a checkpoint in it")
    name = checkpoint_name(length, init or "uniform", cell or "rnn")
    for candidate in (os.path.join(path, "checkpoints", name), os.path.join(path, name)):
        if os.path.exists(candidate):
            return candidate
    found = sorted(
        f
        for d in (path, os.path.join(path, "checkpoints"))
        if os.path.isdir(d)
        for f in os.listdir(d)
        if f.endswith(".npz")
    )
    raise FileNotFoundError(
        f"no {name} in {path} or {os.path.join(path, 'checkpoints')}; "
        f"found: {', '.join(found) or 'no .npz files'}"
    )


def run_flow_command(args) -> int:
    from ..bptt.experiment import AddingRNN, load_adding_model
    from ..bptt.flow import format_gradient_flow, gradient_ratio
    from ..bptt.jacobian import jacobian_view
    from ..data.adding import adding_problem
    from ..plotting import require_matplotlib
    from ..plotting.bptt import plot_gradient_flow
    from ..tensor import Tensor

    if not args.no_plot:
        require_matplotlib()  # fail now, not after computing the whole table
    if args.checkpoint:
        if args.hidden is not None:
            raise ValueError(
                f"--hidden {args.hidden} sizes a fresh model; the model in {args.checkpoint} has "
                "its own size (leave --hidden out, or leave --checkpoint out for a fresh model)"
            )
        if args.init is not None and args.cell not in (None, "rnn"):
            raise ValueError(
                f"--init sets the vanilla RNN's V; a {args.cell} checkpoint has none (leave --init out)"
            )
        path = _find_checkpoint(args.checkpoint, args.length, args.init, args.cell)
        model, meta = load_adding_model(path)
        if args.init is not None and args.init != meta.get("init"):
            raise ValueError(f"{path} holds a model with init {meta.get('init')!r}, not {args.init!r}")
        length = args.length or int(meta["length"])
        init, cell = meta.get("init", "uniform"), meta.get("cell", "rnn")
        what = (
            f"trained model {path} (T = {meta['length']}, {meta.get('steps', '?')} steps, "
            f"test MSE {meta.get('test_mse', float('nan')):.4f})"
        )
        tag = f"{init}-trained"
        if args.cell is not None and type(model.rnn) is not CELLS[args.cell].layer:
            raise ValueError(f"{path} holds a {type(model.rnn).__name__}, not a {args.cell} model")
    else:
        length, init = args.length or 100, args.init or "uniform"
        cell, hidden = args.cell or "rnn", args.hidden or 32
        check_init(cell, init)  # AddingRNN applies init to the rnn cell only, without a word
        # the experiment's model, as a fresh one: the same weights as its run with this seed
        model = AddingRNN(hidden, init, cell=cell, rng=np.random.default_rng(args.seed), dtype=np.float64)
        what = f"fresh model (H = {hidden}, seed {args.seed}" + ("" if cell == "rnn" else f", {cell}") + ")"
        tag = init if cell == "rnn" else cell
    rnn, loss_for = model.rnn, model.loss_fn
    if args.truncate:
        rnn.truncate = args.truncate
        what += f", truncated BPTT every {args.truncate} steps"
        tag += f"-truncate{args.truncate}"
    x, y = adding_problem(args.batch, length, seed=20_000_000 + args.seed)
    view = jacobian_view(rnn, x, loss_for(Tensor(y)), max_sequences=args.batch)
    title = (
        f"adding problem, T = {length}, V init {init}: {what}\n"
        f"loss = MSE of the head on h_T; ‖∂L/∂h_1‖/‖∂L/∂h_T‖ = {gradient_ratio(view.gradient):.2e}; "
        f"σ_max(V) = {view.sigma_max_V:.3f}"
    )
    s = "h" if view.cell_step is None else "s"  # the state: h, or the LSTM's s = [h ; c]
    columns: dict[str, np.ndarray | None] = {f"‖∂{s}_T/∂{s}_t‖₂": view.product, "‖∂h_t/∂h_t−1‖₂": view.step}
    if view.cell_step is not None:  # the LSTM: the cell-state path beside the hidden path
        columns.update(
            {
                "‖∂L/∂c_t‖": view.cell_gradient,
                "‖diag(f_t)‖₂": view.cell_step,
                "‖Π f‖ (c path)": view.cell_path,
            }
        )
    print(format_gradient_flow(view.gradient, max_rows=args.rows, title=title, columns=columns))
    print(
        f"‖∂{s}_T/∂{s}_t‖₂: spectral norm of the product of step Jacobians J_T ⋯ J_(t+1), "
        f"J_t = ∂{s}_t/∂{s}_(t−1) (vanilla: diag(1 − h_t²) Vᵀ; bptt/jacobian.py has every cell's), "
        f"batch means; ‖∂L/∂h_t‖ ≤ ‖∂L/∂h_T‖ · ‖∂{s}_T/∂{s}_t‖₂"
    )
    if view.cell_step is not None:
        print(
            "LSTM cell-state path: ∂c_t/∂c_(t−1) = diag(f_t), no Vᵀ and no tanh' — the constant error "
            "carousel; ‖Π f‖ = ‖∂c_T/∂c_t‖₂ along it alone"
        )
    if args.no_plot:
        return 0
    out = args.out or os.path.join("runs", "bptt-flow", f"{args.task}-T{length}-{tag}.png")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    lines = {
        "‖∂L/∂h_t‖ (autograd)": view.gradient,
        f"‖∂L/∂h_T‖ · ‖∂{s}_T/∂{s}_t‖₂ (Jacobian bound)": view.bound,
    }
    if view.cell_gradient is not None:
        lines["‖∂L/∂c_t‖ (LSTM cell state, autograd)"] = view.cell_gradient
    model_name = f"V init {init}" if cell == "rnn" else cell
    plot_gradient_flow(
        lines,
        out,
        title=f"Gradient flow, adding problem, T = {length}, {model_name} "
        + ("(trained)" if args.checkpoint else "(fresh)"),
    )
    print(f"wrote {out}")
    return 0


# ---- graph and trace ----------------------------------------------------------------------------


def run_graph_command(args) -> int:
    from ..bptt.graph import unrolled_graph

    dot_source = unrolled_graph(args.steps, hidden_size=args.hidden, use_rnn=args.rnn, cell=args.cell)
    print(dot_source, end="")
    dot = shutil.which("dot")
    if dot is None:
        _say(GRAPHVIZ_HINT)
        return 0
    out = args.out or os.path.join(
        "runs", f"bptt-graph-T{args.steps}" + ("" if args.cell == "rnn" else f"-{args.cell}") + ".svg"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    done = subprocess.run([dot, "-Tsvg", "-o", out], input=dot_source.encode("utf-8"), capture_output=True)
    if done.returncode != 0:
        raise OSError(f"dot failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
    _say(f"wrote {out}")
    return 0


def run_trace_command(args) -> int:
    from ..bptt.experiment import AddingRNN
    from ..bptt.tracing import trace
    from ..nn.functional import mse
    from ..tensor import Tensor

    rng = np.random.default_rng(args.seed)
    model = AddingRNN(args.hidden, cell=args.cell, rng=rng)  # the layer, then its head, from rng
    rnn = model.rnn
    x = Tensor(rng.standard_normal((args.batch, args.steps, 2)))
    y = Tensor(rng.standard_normal((args.batch, 1)))
    with trace(params=dict(model.named_parameters())) as tr:
        _, last = rnn(x)
        loss = mse(model.head(model.last_hidden(last)), y)
        loss.backward()
    print(
        f"nn.{type(rnn).__name__}(2, {args.hidden}) over T = {args.steps} steps "
        f"({CELLS[args.cell].equation}), "
        f"batch {args.batch}, head Linear({args.hidden}, 1), MSE loss on h_T"
    )
    print(tr.table(None if args.phase == "all" else args.phase))
    print(
        f"forward visits t = {tr.step_order('forward')}; "
        f"backward (BPTT) visits t = {tr.step_order('backward')}"
    )
    return 0
