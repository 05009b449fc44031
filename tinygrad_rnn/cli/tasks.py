"""``tinygrad-rnn train | predict | evaluate``: the three task models on real data.

``train`` writes a run directory (``--out``); ``predict`` and ``evaluate`` read one back. What a
run directory holds, and the code that reads and writes it, is :mod:`tinygrad_rnn.runs`.
"""

from __future__ import annotations

import os
import time

from ..backend import get_backend, get_default_device, manual_seed
from ..runs import (COMMON, CONFIG_FORMAT, CONFIG_VERSION, DEFAULT_CELL, DEFAULTS, LABELS, SETTINGS, TASKS, build_model,
                    build_vocabs, check_new_run_directory, clear_run, command_line, load_config, load_run,
                    load_splits, load_vocabs, locked, MAX_DECODE_LEN, make_batches, make_task, run_file, SCHEMA, setting_problem,
                    tokenize, write_json)
from .errors import CLIError


def add_parsers(subparsers) -> None:
    """Add ``train``, ``predict`` and ``evaluate`` to the ``tinygrad-rnn`` parser."""
    p = subparsers.add_parser("train", help="train a task model on real data",
                              description="Train a task model; print test scores; write a run directory.")
    p.add_argument("task", metavar="TASK", help="classify | tag | seq2seq")
    p.add_argument("--data", help="reviews (classify) | peoples-daily (tag) | numerals, pinyin (seq2seq)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cpu, or $TINYGRAD_RNN_DEVICE)")
    p.add_argument("--epochs", type=int, help="number of epochs")
    p.add_argument("--embed", type=int, help="embedding size E")
    p.add_argument("--hidden", type=int, help="hidden size H")
    p.add_argument("--layers", type=int, help="stacked RNN layers (default 1)")
    p.add_argument("--cell", choices=SCHEMA["cell"][1],
                   help="recurrent cell of every RNN in the model: rnn (tanh), lstm or gru (default rnn)")
    p.add_argument("--pooling", choices=("last", "mean"), help="classify: last state or mean of states")
    p.add_argument("--bidirectional", action="store_true", help="classify/tag: read both directions")
    p.add_argument("--feed-context", action="store_true",
                   help="seq2seq: feed the encoder's summary to the decoder at every step")
    p.add_argument("--attention", choices=SCHEMA["attention"][1], default=None,
                   help="seq2seq: every decoder step reads all encoder states (Bahdanau et al., 2015); "
                        "with --bidirectional the encoder reads both ways (default: no attention)")
    p.add_argument("--direction", choices=("to_digits", "to_chinese"), help="numerals: which way")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--batch-size", type=int, help="examples per batch (default 64)")
    p.add_argument("--clip", type=float, help="gradient-norm clipping (default 1.0)")
    p.add_argument("--patience", type=int, help="early stopping: epochs without a better dev score")
    p.add_argument("--max-len", type=int, help="reviews: characters kept per review (default 100)")
    p.add_argument("--min-freq", type=int, help="keep input tokens seen this often in training")
    p.add_argument("--seed", type=int, help="seeds the weights and the batch order (default 0)")
    p.add_argument("--limit", type=int, help="use only about N examples in all (quick runs)")
    p.add_argument("--out", help="run directory (default runs/TASK-DATA)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=train_command)

    p = subparsers.add_parser("predict", help="apply a trained model to text",
                              description="Classify, tag (words separated by spaces) or translate each TEXT.")
    p.add_argument("dir", metavar="DIR", help="a run directory written by 'tinygrad-rnn train'")
    p.add_argument("texts", metavar="TEXT", nargs="+")
    p.add_argument("--device", default=None)
    p.add_argument("--beam", type=int, default=1, help="seq2seq: beam size (1 = greedy)")
    p.add_argument("--attention", metavar="PNG", default=None,
                   help="seq2seq runs with attention: draw what the decoder read of one TEXT to this PNG "
                        "(printed as text when matplotlib is missing)")
    p.set_defaults(func=predict_command)

    p = subparsers.add_parser("evaluate", help="score a trained model on its test split",
                              description="Rebuild the run's data split and score its best checkpoint.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--split", choices=("dev", "test"), default="test")
    p.add_argument("--device", default=None)
    p.add_argument("--beam", type=int, default=1, help="seq2seq: beam size (1 = greedy)")
    p.set_defaults(func=evaluate_command)


# --- configuration -----------------------------------------------------------------------------
def make_config(args) -> dict:
    """The run's settings: the data set's reference defaults, overridden by the options given.
    Every option is checked here (type, range, finite), before anything on disk is touched."""
    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r}; choose one of {', '.join(TASKS)}")
    data = args.data or TASKS[args.task][0]
    if data not in DEFAULTS:
        raise CLIError(f"unknown data set {data!r}; choose one of {', '.join(DEFAULTS)}")
    if data not in TASKS[args.task]:
        raise CLIError(f"data set {data!r} does not fit task {args.task!r}, which takes "
                       f"{' or '.join(TASKS[args.task])}")
    if args.epochs == 0:
        raise CLIError("--epochs 0 trains nothing; give at least 1")
    attention = getattr(args, "attention", None)
    if attention is not None and args.task != "seq2seq":
        raise CLIError(f"--attention applies to seq2seq only, not to {args.task}")
    if attention is not None and args.feed_context:
        raise CLIError("--attention and --feed-context both give the decoder the source at every step; choose one")
    settings = {**COMMON, **DEFAULTS[data]}
    for key in SETTINGS:
        value = getattr(args, key, None)
        if value is not None:
            problem = setting_problem(key, value)
            if problem:
                raise CLIError(f"--{key.replace('_', '-')} {problem}")
            settings[key] = value
    return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, "task": args.task, "data": data,
            "bidirectional": bool(args.bidirectional), "feed_context": bool(args.feed_context),
            "attention": attention, "cell": getattr(args, "cell", None) or DEFAULT_CELL,
            **{k: settings.get(k) for k in SETTINGS}}


# --- helpers -------------------------------------------------------------------------------------
def _device(args) -> str:
    device = args.device or get_default_device()
    get_backend(device)                             # an unusable device fails now, in one line
    return device


def _check_beam(args, config) -> None:
    """--beam applies to decoding: refused, not ignored, for a run that does not decode."""
    if args.beam != 1 and config["task"] != "seq2seq":
        raise CLIError(f"--beam {args.beam} applies to seq2seq runs only; {args.dir} is a {config['task']} run")


def _format_scores(scores: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))


# --- train -------------------------------------------------------------------------------------
def train_command(args) -> int:
    from ..optim import Adam
    from ..plotting import require_matplotlib

    # Everything is checked before anything on disk is touched: a refused command changes nothing.
    config = make_config(args)
    device = _device(args)
    out = args.out or os.path.join("runs", f"{config['task']}-{config['data']}")
    if args.resume:
        config = _resumed_config(args, config, out)
    else:
        check_new_run_directory(out)
    started = time.perf_counter()
    print(f"loading {config['data']} ...", flush=True)
    train, dev, test = load_splits(config)
    if args.resume:
        src_vocab, tgt_vocab = load_vocabs(config, out)
    else:
        src_vocab, tgt_vocab = build_vocabs(config, train)
    if config["task"] == "seq2seq" and not args.resume:
        config["decode_max_len"] = min(max(len(y) for _, y in train) + 5, MAX_DECODE_LEN)
    print(f"{len(train)} train / {len(dev)} dev / {len(test)} test examples; "
          f"input vocabulary {len(src_vocab)}" + (f", target vocabulary {len(tgt_vocab)}" if tgt_vocab else ""))

    manual_seed(config["seed"])                     # the weights; the batch order is seeded below
    model = build_model(config, src_vocab, tgt_vocab, device)
    optimizer = Adam(model.parameters(), lr=config["lr"])
    task = make_task(config, tgt_vocab)
    train_batches = make_batches(config, train, src_vocab, tgt_vocab, shuffle=True, seed=config["seed"])
    dev_batches = make_batches(config, dev, src_vocab, tgt_vocab, shuffle=False)
    test_batches = make_batches(config, test, src_vocab, tgt_vocab, shuffle=False)
    plot_path = os.path.join(out, "plot.png")
    try:
        require_matplotlib()
    except ImportError as e:
        print(f"note: no plot ({e})")
        plot_path = None
    with locked(out):                               # one writer per run directory, for the whole run
        return _train_locked(args, config, out, device, model, optimizer, task, src_vocab, tgt_vocab,
                             train_batches, dev_batches, test_batches, train, test, plot_path, started)


def _resumed_config(args, config, out) -> dict:
    """The saved config of the run in ``out`` that ``--resume`` continues, checked against the
    options given (only ``--epochs`` may change, and never below the epochs already run)."""
    from ..train import read_fit_record
    saved = load_config(out)
    done = read_fit_record(run_file(out, "last.npz"))["epoch"]      # fail now, not after the data
    if (saved["task"], saved["data"]) != (config["task"], config["data"]):
        raise CLIError(f"{out} holds a {saved['task']} run on {saved['data']}, "
                       f"not {config['task']} on {config['data']}")
    # The run continues with its saved settings: an option that would change them is refused,
    # never silently ignored (only --epochs may grow the run).
    changed = [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in SETTINGS
               if k != "epochs" and getattr(args, k, None) is not None and getattr(args, k) != saved.get(k)]
    changed += [f"--{k.replace('_', '-')}" for k in ("bidirectional", "feed_context")
                if getattr(args, k) and not saved.get(k)]
    if args.attention is not None and args.attention != saved.get("attention"):
        changed.append(f"--attention {args.attention}")
    if getattr(args, "cell", None) is not None and args.cell != saved.get("cell", DEFAULT_CELL):
        changed.append(f"--cell {args.cell}")
    if changed:
        raise CLIError(f"--resume continues {out} with its saved settings, so {', '.join(changed)} "
                       "cannot apply; start a new run (another --out) to change them")
    if args.epochs is not None and args.epochs < done:
        raise CLIError(f"--epochs {args.epochs} is fewer than the {done} epochs {out} has already run; "
                       f"give --epochs {done} to re-score it, or more to train on")
    if args.epochs is not None:
        saved["epochs"] = args.epochs
    return saved


def _train_locked(args, config, out, device, model, optimizer, task, src_vocab, tgt_vocab,
                  train_batches, dev_batches, test_batches, train, test, plot_path, started) -> int:
    """The part of ``train`` that writes: run holding the lock of ``out``."""
    from ..baselines import baseline_for
    from ..train import NonFiniteLossError, evaluate, fit
    if args.resume:                                 # the run it continues, read again under the lock
        if _resumed_config(args, make_config(args), out) != config:
            raise CLIError(f"{out} changed while its run was being prepared; nothing was written, try again")
    else:
        clear_run(out)
    write_json(os.path.join(out, "config.json"), config)
    src_vocab.save(os.path.join(out, "vocab.json"))
    if tgt_vocab is not None:
        tgt_vocab.save(os.path.join(out, "target_vocab.json"))

    print(f"training {type(model).__name__} on {device}: {sum(p.size for p in model.parameters()):,} "
          f"parameters, {config['epochs']} epochs")
    try:
        result = fit(model, task, optimizer, train_batches, dev_batches, epochs=config["epochs"],
                     clip=config["clip"], patience=config["patience"], checkpoint_dir=out,
                     resume=args.resume, plot_path=plot_path, progress=not args.no_progress)
    except NonFiniteLossError as e:
        raise CLIError(str(e)) from None
    if result.best_epoch is None:
        raise CLIError("no epoch was trained: nothing to evaluate")
    test_scores = evaluate(model, task, test_batches)
    baseline = baseline_for(config["data"], train, test)
    wall = time.perf_counter() - started
    metrics = {"test": test_scores, "best_epoch": result.best_epoch, "best_dev": result.best_score,
               "epochs_run": len(result.history), "stopped_early": result.stopped_early,
               "baseline": baseline, "wall_seconds": round(wall, 1),
               "train_seconds": round(sum(h["train_seconds"] for h in result.history), 1),
               "device": device, "command": command_line(config),
               "history": result.history}
    write_json(os.path.join(out, "metrics.json"), metrics)
    print(f"test  {_format_scores(test_scores)}  (best dev epoch {result.best_epoch} of {len(result.history)})")
    if baseline is not None:
        print(f"baseline ({baseline['name']}): {_format_scores(baseline)}")
    print(f"wrote {out}/: best.npz, last.npz, config.json, vocab.json, metrics.json"
          + (", plot.png" if plot_path else "") + f"  ({wall:.0f} s)")
    return 0


def predict_command(args) -> int:
    from ..data import Batch, pad_sequences
    from ..tensor import no_grad
    texts = [t.strip() for t in args.texts]
    if not all(texts):
        raise CLIError("empty text: every TEXT must contain something to " +
                       "read (put a sentence in quotes)")
    device = _device(args)
    if args.beam < 1:
        raise CLIError(f"--beam must be >= 1, got {args.beam}")
    _check_beam(args, load_config(args.dir))
    if args.attention is not None:
        _check_attention_option(args, load_config(args.dir), texts)
    config, model, src_vocab, tgt_vocab = load_run(args.dir, device)
    task = make_task(config, tgt_vocab, beam=args.beam)
    tokens = [tokenize(config, t) for t in texts]
    if config["task"] == "classify" and config.get("max_len"):
        # read what training read: the first max_len characters of each review
        cut = config["max_len"]
        if any(len(t) > cut for t in tokens):
            print(f"(reading the first {cut} characters of each text, as in training)")
        tokens = [t[:cut] for t in tokens]
    ids, lengths = pad_sequences([src_vocab.encode(t) for t in tokens])
    batch = Batch(ids, lengths, None, None, None)
    with no_grad():
        predictions = task.predict(model, batch)
    if config["task"] == "classify":
        labels, probs = predictions
        for text, label, p in zip(texts, labels, probs):
            print(f"{LABELS[label]}  {p[label]:.3f}  {text}")
    elif config["task"] == "tag":
        for words, tags in zip(tokens, predictions):
            print("  ".join(f"{w}/{tgt_vocab.id_to_token(t)}" for w, t in zip(words, tags)))
    else:
        join = " " if config["data"] == "pinyin" else ""
        for text, out in zip(texts, predictions):
            print(f"{text}  →  {join.join(tgt_vocab.decode(out))}")
        if args.attention is not None:
            _show_attention(args.attention, config, model, src_vocab, tgt_vocab, tokens[0], args.beam)
    return 0


def _check_attention_option(args, config, texts) -> None:
    """``predict --attention PNG``: refused before any work unless it can be drawn."""
    if config["task"] != "seq2seq" or not config.get("attention"):
        raise CLIError(f"--attention draws attention weights; {args.dir} is a {config['task']} run "
                       "without attention (train one with 'train seq2seq --attention additive')")
    if len(texts) != 1:
        raise CLIError(f"--attention draws one heatmap: give one TEXT, not {len(texts)}")
    folder = os.path.dirname(os.path.abspath(args.attention))
    if not os.path.isdir(folder):
        raise CLIError(f"--attention {args.attention}: no such directory {folder}")


def _show_attention(path, config, model, src_vocab, tgt_vocab, tokens, beam) -> None:
    """Draw the weights α of one decoded text to ``path``, or print them without matplotlib."""
    from ..models.attention_plot import attention_for, plot_attention, render_attention
    from ..tensor import no_grad
    with no_grad():
        output, weights = attention_for(model, src_vocab, tgt_vocab, tokens, config["decode_max_len"], beam)
    try:
        note = plot_attention(weights, tokens, output, path, title=f"{''.join(tokens)} (beam {beam})")
    except ImportError as e:
        print(f"note: {e}; the attention weights as text instead:")
        print(render_attention(weights, tokens, output))
        return
    print(f"wrote {path}: attention of {len(output)} output tokens over {len(tokens)} source tokens")
    if note:
        print(f"note: {note}")


def evaluate_command(args) -> int:
    from ..train import evaluate
    device = _device(args)
    if args.beam < 1:
        raise CLIError(f"--beam must be >= 1, got {args.beam}")
    _check_beam(args, load_config(args.dir))
    config, model, src_vocab, tgt_vocab = load_run(args.dir, device)
    train, dev, test = load_splits(config)
    examples = test if args.split == "test" else dev
    batches = make_batches(config, examples, src_vocab, tgt_vocab, shuffle=False)
    scores = evaluate(model, make_task(config, tgt_vocab, beam=args.beam), batches)
    print(f"{args.split} ({len(examples)} examples)  {_format_scores(scores)}")
    return 0
