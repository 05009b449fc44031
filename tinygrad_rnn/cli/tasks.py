"""``tinygrad-rnn train | predict | evaluate``: the three task models on real data.

``train`` writes a run directory (``--out``); ``predict`` and ``evaluate`` read one back. What a
run directory holds, and the code that reads and writes it, is :mod:`tinygrad_rnn.runs`; what
differs between tasks and data sets (their defaults, options, models, outputs) is asked of the
task registry, :mod:`tinygrad_rnn.tasks`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any, NamedTuple

from ..backend import get_backend, get_default_device, manual_seed
from ..data.vocab import SPECIALS
from ..runs import (
    build_vocabs,
    check_new_run_directory,
    clear_run,
    command_line,
    default_run_directory,
    load_config,
    load_run,
    load_splits,
    load_vocabs,
    locked,
    make_batches,
    run_file,
    write_json,
)
from ..tasks import (
    COMMON,
    CONFIG_FORMAT,
    CONFIG_VERSION,
    DATASETS,
    DEFAULT_CELL,
    DEFAULT_DROPOUT,
    DEFAULTS,
    LABELS,
    SCHEMA,
    SETTINGS,
    TASK_OPTIONS,
    TASKS,
    setting_problem,
)
from ..threads import add_threads_argument, set_blas_threads
from .errors import CLIError

# For the data sets whose idle time was not measured: the reviews' idle/busy ratio (an estimate, "≈").
IDLE_OVER_BUSY = DATASETS["reviews"].minutes[0] / DATASETS["reviews"].minutes[1]

CELL_NAMES = {"rnn": "vanilla tanh RNN cell", "lstm": "LSTM cell", "gru": "GRU cell"}  # the training banner
assert set(CELL_NAMES) == set(SCHEMA["cell"][1])


def _defaults_of(key) -> str:
    """``reviews 10, peoples-daily 8, …``: a setting's default per data set, for help lines."""
    return ", ".join(f"{data} {_shown(DEFAULTS[data][key])}" for data in DEFAULTS if key in DEFAULTS[data])


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _minutes(value) -> str:
    return f"{value * 60:.0f} s" if value < 1 else f"{value:.0f} min"


def default_runs_text(task=None, data=None) -> str:
    """The default settings and expected wall time of every data set's default run (of one task
    or data set when given), for ``train --help``."""
    lines = []
    for name, spec in TASKS.items():
        if task in TASKS and name != task:
            continue
        lines.append(f"{name}: {spec.summary} (best epoch: highest dev {spec.metric.replace('_', ' ')})")
        for d in spec.datasets:
            if data in DEFAULTS and d != data:
                continue
            settings = {
                **DEFAULTS[d],
                **{k: COMMON[k] for k in TASK_OPTIONS if k in COMMON and spec.takes(k, d)},
            }
            flags = " ".join(f"--{k.replace('_', '-')} {_shown(v)}" for k, v in settings.items())
            idle, busy = DATASETS[d].minutes
            idle_text = _minutes(idle) if idle is not None else "≈ " + _minutes(busy * IDLE_OVER_BUSY)
            lines += [
                f"  tinygrad-rnn train {name} --data {d}",
                f"      defaults: {flags}",
                f"      expected wall time on a 2-core CPU: {idle_text} idle, about {_minutes(busy)} "
                f"when the machine is busy (load 7-10)",
            ]
    common = " ".join(
        f"--{k.replace('_', '-')} {_shown(v)}" for k, v in COMMON.items() if k not in TASK_OPTIONS
    )
    lines += [
        f"every data set: {common}, one BLAS thread (--threads); no --patience (every epoch runs)",
        "(the reference configurations of docs/results.md; an option given replaces its default)",
    ]
    return "\n".join(lines)


class _TrainHelp(argparse.Action):
    """``-h``/``--help`` for ``train``: the options, then the defaults and expected wall time of the
    task (and data set) named before it — ``train tag --help`` — or of every task."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        task, data = getattr(namespace, "task", None), getattr(namespace, "data", None)
        parser.epilog = default_runs_text(task, data)
        hidden = []
        if task in TASKS:  # only the options this task (and data set) takes
            data = data if data in TASKS[task].datasets else None
            hidden = [
                a
                for a in parser._actions
                if a.dest in TASK_OPTIONS
                and not TASKS[task].takes(a.dest, data)
                and a.help != argparse.SUPPRESS
            ]
        saved = [(a, a.help) for a in hidden]
        for action in hidden:
            action.help = argparse.SUPPRESS
        try:
            parser.print_help()
        finally:
            for action, text in saved:
                action.help = text
        parser.exit()


def add_parsers(subparsers) -> None:
    """Add ``train``, ``predict`` and ``evaluate`` to the ``tinygrad-rnn`` parser."""
    p = subparsers.add_parser(
        "train",
        help="train a task model on real data",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a task model; print test scores beside a baseline; write a run "
        "directory. Each data set has its own defaults (listed below; "
        "'train TASK --help' shows one task's, and only the options it "
        "takes: an option of another task is refused).",
    )
    p.add_argument(
        "-h",
        "--help",
        action=_TrainHelp,
        help="show this help, with the defaults and expected time of TASK's default run",
    )
    p.add_argument("task", metavar="TASK", help=" | ".join(TASKS))
    p.add_argument(
        "--data",
        help="; ".join(f"{name}: {' or '.join(t.datasets)}" for name, t in TASKS.items())
        + " (default: the first)",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu, or $TINYGRAD_RNN_DEVICE)")
    p.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help=f"passes over the training split (default: {_defaults_of('epochs')})",
    )
    p.add_argument(
        "--embed", type=int, metavar="E", help=f"embedding size E (default: {_defaults_of('embed')})"
    )
    p.add_argument(
        "--hidden", type=int, metavar="H", help=f"hidden size H (default: {_defaults_of('hidden')})"
    )
    p.add_argument("--layers", type=int, help=f"stacked RNN layers (default {COMMON['layers']})")
    p.add_argument(
        "--cell",
        choices=SCHEMA["cell"][1],
        help="recurrent cell of every RNN in the model: rnn (tanh), lstm or gru (default rnn)",
    )
    p.add_argument(
        "--pooling",
        choices=("last", "mean"),
        help=f"classify: the review's summary, last state or mean of states (default {COMMON['pooling']})",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="the RNN also reads right to left: classify's and tag's RNN, or seq2seq's encoder "
        "(its decoder then starts from both directions' final states, joined by a learned "
        "layer) (default: left to right only)",
    )
    p.add_argument(
        "--feed-context",
        action="store_true",
        help="seq2seq: feed the encoder's summary to the decoder at every step (default: first step only)",
    )
    p.add_argument(
        "--attention",
        choices=SCHEMA["attention"][1],
        default=None,
        help="seq2seq: every decoder step reads all encoder states (Bahdanau et al., 2015); "
        "with --bidirectional the encoder reads both ways (default: no attention)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        metavar="P",
        help="seq2seq: while training, zero each element of the embedded tokens and of the output "
        "layer's input with probability P (inverted dropout; default 0: none)",
    )
    p.add_argument(
        "--direction",
        choices=("to_digits", "to_chinese"),
        help=f"numerals: which way to translate (default {COMMON['direction']})",
    )
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: {_defaults_of('lr')})")
    p.add_argument("--batch-size", type=int, help=f"examples per batch (default {COMMON['batch_size']})")
    p.add_argument("--clip", type=float, help=f"gradient-norm clipping (default {COMMON['clip']:g})")
    p.add_argument(
        "--patience",
        type=int,
        help="early stopping: stop after this many epochs without a better dev score (default: never)",
    )
    p.add_argument(
        "--max-len",
        type=int,
        help=f"reviews: characters kept per review (default {DEFAULTS['reviews']['max_len']})",
    )
    p.add_argument(
        "--min-freq",
        type=int,
        help=f"keep input tokens seen this often in training, others become <unk> "
        f"(default: {_defaults_of('min_freq')})",
    )
    p.add_argument(
        "--seed", type=int, help=f"seeds the weights and the batch order (default {COMMON['seed']})"
    )
    p.add_argument(
        "--limit", type=int, help="use only about N examples in all, for quick runs (default: all)"
    )
    p.add_argument(
        "--out",
        help="run directory (default runs/TASK-DATA, then what sets the model apart, "
        "e.g. runs/seq2seq-numerals-gru-bi-attention)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (refused without it: nothing is replaced silently)",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (on a terminal) or progress lines (in a log)",
    )
    add_threads_argument(p)
    p.set_defaults(func=train_command)

    p = subparsers.add_parser(
        "predict",
        help="apply a trained model to text",
        description="Classify, tag (words separated by spaces) or translate each TEXT "
        "with the best checkpoint of a run directory. A review is read whole, "
        "also beyond the run's --max-len.",
    )
    p.add_argument("dir", metavar="DIR", help="a run directory written by 'tinygrad-rnn train'")
    p.add_argument(
        "texts",
        metavar="TEXT",
        nargs="+",
        help="one or more texts, each in quotes: a review, a sentence with words separated by "
        "spaces (tag), a numeral or number, or characters for pinyin",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu, or $TINYGRAD_RNN_DEVICE)")
    p.add_argument("--beam", type=int, default=1, help="seq2seq: beam size, 1 to 100 (default 1 = greedy)")
    p.add_argument(
        "--attention",
        metavar="PNG",
        default=None,
        help="seq2seq runs with attention: draw what the decoder read of one TEXT to this PNG; "
        "a bare file name is written inside DIR, a path (./out.png) where it says "
        "(printed as text when matplotlib or a Chinese font is missing; default: no drawing)",
    )
    p.add_argument(
        "--prefixes",
        metavar="PNG",
        nargs="?",
        const="",
        default=None,
        help="classify runs: P(class) after every prefix of each TEXT, one character at a time, "
        "drawn in the terminal; with PNG (one TEXT) also plotted to that file, a bare file "
        "name inside DIR, a path (./out.png) where it says (default: off; put it after the texts)",
    )
    add_threads_argument(p)
    p.set_defaults(func=predict_command)

    p = subparsers.add_parser(
        "evaluate",
        help="score a trained model on its test split",
        description="Rebuild the run's data split and score its best checkpoint.",
    )
    p.add_argument("dir", metavar="DIR", help="a run directory written by 'tinygrad-rnn train'")
    p.add_argument(
        "--split",
        choices=("dev", "test"),
        default="test",
        help="which held-out split to score (default test)",
    )
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu, or $TINYGRAD_RNN_DEVICE)")
    p.add_argument("--beam", type=int, default=1, help="seq2seq: beam size, 1 to 100 (default 1 = greedy)")
    add_threads_argument(p)
    p.set_defaults(func=evaluate_command)


# --- configuration -----------------------------------------------------------------------------
def make_config(args) -> dict:
    """The run's settings: the data set's reference defaults, overridden by the options given.
    Every option is checked here (type, range, finite), before anything on disk is touched."""
    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r}; choose one of {', '.join(TASKS)}")
    data = args.data or TASKS[args.task].datasets[0]
    if data not in DEFAULTS:
        raise CLIError(f"unknown data set {data!r}; choose one of {', '.join(DEFAULTS)}")
    if data not in TASKS[args.task].datasets:
        raise CLIError(
            f"data set {data!r} does not fit task {args.task!r}, which takes "
            f"{' or '.join(TASKS[args.task].datasets)}"
        )
    if args.epochs == 0:
        raise CLIError("--epochs 0 trains nothing; give at least 1")
    task = TASKS[args.task]
    for key in TASK_OPTIONS:  # an option of another task: refused, not ignored
        value = getattr(args, key, None)
        if value is not None and value is not False and not task.takes(key, data):  # 0.0 is given too
            where = f" on {data}" if task.takes(key) else ""
            raise CLIError(
                f"--{key.replace('_', '-')} applies to {task.applies_to(key)} only, not to {args.task}{where}"
            )
    attention, dropout = getattr(args, "attention", None), getattr(args, "dropout", None)
    if attention is not None and args.feed_context:
        raise CLIError(
            "--attention and --feed-context both give the decoder the source at every step; choose one"
        )
    if dropout is not None:
        problem = setting_problem("dropout", dropout)
        if problem:
            raise CLIError(f"--dropout {problem}")
    settings = {**COMMON, **DEFAULTS[data]}
    for key in SETTINGS:
        value = getattr(args, key, None)
        if value is not None:
            problem = setting_problem(key, value)
            if problem:
                raise CLIError(f"--{key.replace('_', '-')} {problem}")
            settings[key] = value
    return {
        "format": CONFIG_FORMAT,
        "version": CONFIG_VERSION,
        "task": args.task,
        "data": data,
        "bidirectional": bool(args.bidirectional),
        "feed_context": bool(args.feed_context),
        "attention": attention,
        "cell": getattr(args, "cell", None) or DEFAULT_CELL,
        "dropout": DEFAULT_DROPOUT if dropout is None else dropout,
        **{k: settings.get(k) for k in SETTINGS},
    }


# --- helpers -------------------------------------------------------------------------------------
def _device(args) -> str:
    device = args.device or get_default_device()
    get_backend(device)  # an unusable device fails now, in one line
    return device


def _check_beam(args, config) -> None:
    """--beam applies to decoding: refused, not ignored, for a run that does not decode; at most
    MAX_BEAM_SIZE (a beam of thousands would run for minutes)."""
    from ..models.decoding import MAX_BEAM_SIZE

    if not 1 <= args.beam <= MAX_BEAM_SIZE:
        raise CLIError(f"--beam must be between 1 and {MAX_BEAM_SIZE}, got {args.beam}")
    if args.beam != 1 and not TASKS[config["task"]].decodes:
        raise CLIError(
            f"--beam {args.beam} applies to seq2seq runs only; {args.dir} is a {config['task']} run"
        )


def _format_scores(scores: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))


# --- train -------------------------------------------------------------------------------------
def train_command(args) -> int:
    from ..optim import Adam
    from ..plotting import require_matplotlib

    # Everything is checked before anything on disk is touched: a refused command changes nothing.
    config = make_config(args)
    device = _device(args)
    out = args.out or default_run_directory(config)
    overwrite = getattr(args, "overwrite", False)
    if args.resume and overwrite:
        raise CLIError("--resume continues the run in --out and --overwrite replaces it; choose one")
    if args.resume:
        config = _resumed_config(args, config, out)
    else:
        check_new_run_directory(out, overwrite)
    started = time.perf_counter()
    print(f"loading {config['data']} ...", flush=True)
    train, dev, test = load_splits(config)
    if args.resume:
        src_vocab, tgt_vocab = load_vocabs(config, out)
    else:
        src_vocab, tgt_vocab = build_vocabs(config, train)
    spec = TASKS[config["task"]]
    if not args.resume:
        config.update(spec.derived_settings(train))
    print(
        f"{len(train)} train / {len(dev)} dev / {len(test)} test examples; "
        f"input vocabulary {len(src_vocab)}" + (f", target vocabulary {len(tgt_vocab)}" if tgt_vocab else "")
    )

    manual_seed(config["seed"])  # the weights; the batch order is seeded below
    model = spec.build_model(config, src_vocab, tgt_vocab, device)
    optimizer = Adam(model.parameters(), lr=config["lr"])
    task = spec.trainer(config, tgt_vocab)
    train_batches = make_batches(config, train, src_vocab, tgt_vocab, shuffle=True, seed=config["seed"])
    dev_batches = make_batches(config, dev, src_vocab, tgt_vocab, shuffle=False)
    test_batches = make_batches(config, test, src_vocab, tgt_vocab, shuffle=False)
    plot_path: str | None = os.path.join(out, "plot.png")
    try:
        require_matplotlib()
    except ImportError as e:
        print(f"note: no plot ({e})")
        plot_path = None
    try:
        with locked(out):  # one writer per run directory, for the whole run
            prepared = _Prepared(
                model,
                optimizer,
                task,
                src_vocab,
                tgt_vocab,
                train_batches,
                dev_batches,
                test_batches,
                train,
                test,
                plot_path,
                started,
            )
            return _train_locked(args, config, out, device, prepared)
    except KeyboardInterrupt:
        print(f"interrupted; {_resume_hint(args, config, out)}", file=sys.stderr)
        return 130


def _resume_hint(args, config, out) -> str:
    """What to type after Ctrl-C: the exact ``--resume`` command, or why there is nothing to resume."""
    words = ["tinygrad-rnn", "train", config["task"], "--data", config["data"], "--out", out]
    words += ["--device", args.device] if args.device else []
    if not os.path.isfile(os.path.join(out, "last.npz")):
        return (
            "no epoch had finished, so there is nothing to resume: run the same command again "
            f"(with --overwrite: {out} holds the unfinished run's files)"
        )
    return f"continue where it stopped with: {shlex.join(words + ['--resume'])}"


def _resumed_config(args, config, out) -> dict:
    """The saved config of the run in ``out`` that ``--resume`` continues, checked against the
    options given (only ``--epochs`` may change, and never below the epochs already run)."""
    from ..train import read_fit_record

    saved = load_config(out)
    done = read_fit_record(run_file(out, "last.npz"))["epoch"]  # fail now, not after the data
    if (saved["task"], saved["data"]) != (config["task"], config["data"]):
        raise CLIError(
            f"{out} holds a {saved['task']} run on {saved['data']}, not {config['task']} on {config['data']}"
        )
    # The run continues with its saved settings: an option that would change them is refused,
    # never silently ignored (only --epochs may grow the run).
    changed = [
        f"--{k.replace('_', '-')} {getattr(args, k)}"
        for k in SETTINGS
        if k != "epochs" and getattr(args, k, None) is not None and getattr(args, k) != saved.get(k)
    ]
    changed += [
        f"--{k.replace('_', '-')}"
        for k in ("bidirectional", "feed_context")
        if getattr(args, k) and not saved.get(k)
    ]
    if args.attention is not None and args.attention != saved["attention"]:
        changed.append(f"--attention {args.attention}")
    if getattr(args, "cell", None) is not None and args.cell != saved["cell"]:
        changed.append(f"--cell {args.cell}")
    if getattr(args, "dropout", None) is not None and args.dropout != saved["dropout"]:
        changed.append(f"--dropout {args.dropout:g}")
    if changed:
        raise CLIError(
            f"--resume continues {out} with its saved settings, so {', '.join(changed)} "
            "cannot apply; start a new run (another --out) to change them"
        )
    if args.epochs is not None and args.epochs < done:
        raise CLIError(
            f"--epochs {args.epochs} is fewer than the {done} epochs {out} has already run; "
            f"give --epochs {done} to re-score it, or more to train on"
        )
    if args.epochs is not None:
        saved["epochs"] = args.epochs
    return saved


class _Prepared(NamedTuple):
    """What ``train`` builds before it takes the run directory's lock: the model and what trains
    and scores it, the data (split, encoded and batched), where the plot goes, when it started."""

    model: Any
    optimizer: Any
    task: Any
    src_vocab: Any
    tgt_vocab: Any
    train_batches: Any
    dev_batches: Any
    test_batches: Any
    train: list
    test: list
    plot_path: str | None
    started: float


def _train_locked(args, config, out, device, prepared: _Prepared) -> int:
    """The part of ``train`` that writes: run holding the lock of ``out``."""
    from ..baselines import baseline_for
    from ..train import NonFiniteLossError, evaluate, fit

    if args.resume:  # the run it continues, read again under the lock
        if _resumed_config(args, make_config(args), out) != config:
            raise CLIError(f"{out} changed while its run was being prepared; nothing was written, try again")
    else:
        clear_run(out, overwrite=getattr(args, "overwrite", False))
    write_json(os.path.join(out, "config.json"), config)
    prepared.src_vocab.save(os.path.join(out, "vocab.json"))
    if prepared.tgt_vocab is not None:
        prepared.tgt_vocab.save(os.path.join(out, "target_vocab.json"))

    epochs = config["epochs"]
    threads = getattr(args, "threads_line", None) or set_blas_threads(getattr(args, "threads", None))
    print(
        f"training {type(prepared.model).__name__} ({CELL_NAMES[config['cell']]}) on {device}: "
        f"{sum(p.size for p in prepared.model.parameters()):,} "
        f"parameters, {epochs} epoch{'s' if epochs != 1 else ''}; {threads}"
    )
    try:
        result = fit(
            prepared.model,
            prepared.task,
            prepared.optimizer,
            prepared.train_batches,
            prepared.dev_batches,
            epochs=config["epochs"],
            clip=config["clip"],
            patience=config["patience"],
            checkpoint_dir=out,
            resume=args.resume,
            plot_path=prepared.plot_path,
            progress=not args.no_progress,
        )
    except NonFiniteLossError as e:
        raise CLIError(str(e)) from None
    if result.best_epoch is None:
        raise CLIError("no epoch was trained: nothing to evaluate")
    test_scores = evaluate(prepared.model, prepared.task, prepared.test_batches)
    baseline = baseline_for(config["data"], prepared.train, prepared.test)
    wall = time.perf_counter() - prepared.started
    metrics = {
        "test": test_scores,
        "best_epoch": result.best_epoch,
        "best_dev": result.best_score,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "baseline": baseline,
        "wall_seconds": round(wall, 1),
        "train_seconds": round(sum(h["train_seconds"] for h in result.history), 1),
        "device": device,
        "command": command_line(config),
        "history": result.history,
    }
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(
        f"test  {_format_scores(test_scores)}  (best dev epoch {result.best_epoch} of {len(result.history)})"
    )
    if baseline is not None:
        print(f"baseline ({baseline['name']}): {_format_scores(baseline)}")
    elif DATASETS[config["data"]].no_baseline:
        print(f"baseline: none for {config['data']}. {DATASETS[config['data']].no_baseline}")
    print(
        f"wrote {out}/: best.npz, last.npz, config.json, vocab.json, metrics.json"
        + (", plot.png" if prepared.plot_path else "")
        + f"  ({wall:.0f} s)"
    )
    return 0


def predict_command(args) -> int:
    from ..data import Batch, pad_sequences
    from ..tensor import no_grad

    texts = [t.strip() for t in args.texts]
    if not all(texts):
        raise CLIError(
            "empty text: every TEXT must contain something to " + "read (put a sentence in quotes)"
        )
    _check_decodable(texts)
    device = _device(args)
    saved = load_config(args.dir)  # the options are checked against the run before any work
    _check_beam(args, saved)
    args.attention = _in_run_directory(args.dir, args.attention)  # a bare name: beside the run
    args.prefixes = _in_run_directory(args.dir, args.prefixes)
    if args.attention is not None:
        _check_attention_option(args, saved, texts)
    if args.prefixes is not None:
        _check_prefixes_option(args, saved, texts)
    config, model, src_vocab, tgt_vocab = load_run(args.dir, device)
    spec = TASKS[config["task"]]
    task = spec.trainer(config, tgt_vocab, beam=args.beam)
    tokens = [spec.tokenize(t) for t in texts]
    if config["max_len"] is not None and any(len(t) > config["max_len"] for t in tokens):
        # Read whole: a recurrent model takes any length, and on the test reviews longer than
        # max_len reading all of them is right more often (docs/results.md, "The chapter's review").
        print(
            f"(reading every character; the run was trained on the first {config['max_len']} of each review)"
        )
    _check_known(config, src_vocab, texts, tokens)
    ids, lengths = pad_sequences([src_vocab.encode(t) for t in tokens])
    batch = Batch(ids, lengths, None, None, None)
    with no_grad():
        predictions = task.predict(model, batch)
    for line in spec.format_predictions(config, texts, tokens, predictions, tgt_vocab):
        print(line)
    if args.prefixes is not None:
        _show_prefixes(args.prefixes, model, src_vocab, tokens)
    if args.attention is not None:
        _show_attention(args.attention, config, model, src_vocab, tgt_vocab, tokens[0], args.beam)
    return 0


def _shown_text(text: str, width: int = 30) -> str:
    return repr(text if len(text) <= width else text[:width] + "…")


def _check_decodable(texts) -> None:
    """Refuse text that is not UTF-8. Python hands undecodable bytes of argv over as lone
    surrogates (U+DC80–U+DCFF, PEP 383); a model would read each as ``<unk>`` and still answer,
    with full confidence, about a text it never saw."""
    for n, text in enumerate(texts, 1):
        bad = [c for c in text if 0xD800 <= ord(c) <= 0xDFFF]
        if bad:
            raw = bytes(ord(c) - 0xDC00 for c in bad if 0xDC80 <= ord(c) <= 0xDCFF)[:4]
            raise CLIError(
                f"TEXT {n} is not valid UTF-8 (bytes {raw.hex(' ') or '?'}): give the text in "
                "UTF-8 (convert it first, e.g. iconv -f GBK -t UTF-8); nothing was predicted"
            )


# Numerals follow exact rules over a closed alphabet: a character outside it is refused. Other
# models answer with a warning when most tokens are unknown, and refuse when every one is.
UNKNOWN_WARNING_SHARE = 0.5


def _check_known(config, src_vocab, texts, tokens) -> None:
    """Say when a model is asked about text it cannot read: tokens outside its vocabulary all
    become the one ``<unk>`` embedding, so its answer says nothing about them."""
    unit = TASKS[config["task"]].token_unit
    for text, toks in zip(texts, tokens):
        unknown = [t for t in toks if src_vocab.token_to_id(t) < len(SPECIALS)]  # <unk>, or a special
        if not unknown:
            continue
        names = ", ".join(map(repr, dict.fromkeys(unknown)))
        if DATASETS[config["data"]].closed_alphabet:
            alphabet = "".join(t for t in src_vocab.itos[len(SPECIALS) :])
            raise CLIError(
                f"{_shown_text(text)}: {names} not in what this numerals model reads "
                f"({alphabet}); nothing was predicted"
            )
        if len(unknown) == len(toks):
            raise CLIError(
                f"{_shown_text(text)}: no {unit} of it is in the model's vocabulary ({names}), "
                "so there is nothing to read; nothing was predicted"
            )
        if len(unknown) > UNKNOWN_WARNING_SHARE * len(toks):
            print(
                f"warning: {_shown_text(text)}: {len(unknown)} of {len(toks)} {unit}s are unknown to the "
                f"model ({names}); it reads them all as <unk>, so its answer is little more than a guess",
                file=sys.stderr,
            )


def _in_run_directory(directory, path):
    """Where a figure option's file goes: a bare file name (``out.png``) inside the run directory,
    beside the run it shows; a path with a directory part (``./out.png``, ``figs/out.png``) as given."""
    if not path or os.path.dirname(path):
        return path
    return os.path.join(directory, path)


def _check_one_figure(what: str, option: str, path: str, texts) -> None:
    """A figure option draws one TEXT into a file whose directory exists; refused before any work."""
    if len(texts) != 1:
        raise CLIError(f"{what}: give one TEXT, not {len(texts)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"{option}: no such directory {folder}")


def _check_attention_option(args, config, texts) -> None:
    """``predict --attention PNG``: refused before any work unless it can be drawn."""
    if not config["attention"]:
        raise CLIError(
            f"--attention draws attention weights; {args.dir} is a {config['task']} run "
            "without attention (train one with 'train seq2seq --attention additive')"
        )
    _check_one_figure("--attention draws one heatmap", f"--attention {args.attention}", args.attention, texts)


def _show_attention(path, config, model, src_vocab, tgt_vocab, tokens, beam) -> None:
    """Draw the weights α of one decoded text to ``path``, or print them without matplotlib."""
    from ..models.decoding import attention_for
    from ..plotting.attention import plot_attention, render_attention
    from ..tensor import no_grad

    with no_grad():
        output, weights = attention_for(model, src_vocab, tgt_vocab, tokens, config["decode_max_len"], beam)
    try:
        words = [w for w in output if w != "<eos>"]
        title = f"{''.join(tokens)} → {DATASETS[config['data']].output_separator.join(words)}"
        note = plot_attention(
            weights, tokens, output, path, title=title + (f" (beam {beam})" if beam > 1 else "")
        )
    except ImportError as e:
        print(f"note: {e}; the attention weights as text instead:")
        print(render_attention(weights, tokens, output))
        return
    print(f"wrote {path}: attention of {len(output)} output tokens over {len(tokens)} source tokens")
    if note:  # the figure's labels are boxes: show it readably too
        print(f"note: {note}", file=sys.stderr)
        print(render_attention(weights, tokens, output))


def _check_prefixes_option(args, config, texts) -> None:
    """``predict --prefixes [PNG]``: refused before any work unless it applies and can be written."""
    if not TASKS[config["task"]].shows_prefixes:
        raise CLIError(
            f"--prefixes shows a classifier's P(class) after every prefix; {args.dir} is a "
            f"{config['task']} run, not classify"
        )
    if not args.prefixes:
        return
    if not args.prefixes.lower().endswith(".png"):
        raise CLIError(
            f"--prefixes takes an optional PNG file ending in .png, got {args.prefixes!r} "
            "(put --prefixes after the texts)"
        )
    _check_one_figure(
        f"--prefixes {args.prefixes} plots one text", f"--prefixes {args.prefixes}", args.prefixes, texts
    )


def _show_prefixes(path, model, src_vocab, texts_tokens) -> None:
    """P(negative) after every prefix of each text, in the terminal; with ``path`` also a PNG."""
    from ..models.prefixes import prefix_probabilities
    from ..plotting.prefixes import plot_prefixes, render_prefixes

    shown = LABELS.index("negative")
    for tokens in texts_tokens:
        probs = prefix_probabilities(model, src_vocab.encode(tokens))
        print()
        print(render_prefixes(tokens, probs, shown, LABELS[shown]))
    if not path:
        return
    try:
        note = plot_prefixes(
            tokens,
            probs[:, shown],
            path,
            ylabel=f"P({LABELS[shown]})",
            title=f"P({LABELS[shown]}) after every prefix",
        )
    except ImportError as e:
        print(f"note: no plot ({e}); the rendering above shows the same numbers")
        return
    print(f"wrote {path}: P({LABELS[shown]}) after each of {len(tokens)} prefixes")
    if note:  # the rendering above shows the same numbers readably
        print(f"note: {note}", file=sys.stderr)


def evaluate_command(args) -> int:
    from ..train import evaluate

    device = _device(args)
    _check_beam(args, load_config(args.dir))
    config, model, src_vocab, tgt_vocab = load_run(args.dir, device)
    train, dev, test = load_splits(config)
    examples = test if args.split == "test" else dev
    batches = make_batches(config, examples, src_vocab, tgt_vocab, shuffle=False)
    scores = evaluate(model, TASKS[config["task"]].trainer(config, tgt_vocab, beam=args.beam), batches)
    print(f"{args.split} ({len(examples)} examples)  {_format_scores(scores)}")
    return 0
