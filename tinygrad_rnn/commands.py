"""``tinygrad-rnn train | predict | evaluate``: the three task models on real data.

A *run directory* (``--out``) holds everything needed to use a trained model again::

    config.json         task, data set and its options, model and training settings
    vocab.json          the input vocabulary; target_vocab.json: tags or output tokens
    best.npz            the best-on-dev checkpoint (last.npz: the latest epoch, for --resume)
    metrics.json        test scores, baseline, wall time, one row per epoch
    plot.png            loss and dev metric per epoch (with the 'plot' extra)

``predict`` and ``evaluate`` rebuild the model from ``config.json`` and load ``best.npz``.
The defaults of each data set are the reference configurations of docs/results.md.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import time

from .backend import get_backend, get_default_device, manual_seed
from .cli import CLIError

TASKS = {"classify": ("reviews",), "tag": ("peoples-daily",), "seq2seq": ("numerals", "pinyin")}
LABELS = ("negative", "positive")                 # review labels: 0 and 1
# Reference configurations (docs/results.md): model and training settings per data set.
DEFAULTS = {
    "reviews": dict(embed=64, hidden=128, lr=1e-3, epochs=10, max_len=100, min_freq=1),
    "peoples-daily": dict(embed=64, hidden=128, lr=3e-3, epochs=8, min_freq=2),
    "numerals": dict(embed=32, hidden=256, lr=1e-3, epochs=20, min_freq=1),
    "pinyin": dict(embed=64, hidden=256, lr=1e-3, epochs=20, min_freq=1),
}
COMMON = dict(batch_size=64, clip=1.0, layers=1, seed=0, pooling="mean", direction="to_digits")
SPLIT_SEED = 0          # the data split never changes with --seed (that seeds the model and batches)
CONFIG_FORMAT = "tinygrad_rnn.run"
# The options that make up a run (config.json): model, data and training settings.
SETTINGS = ("epochs", "embed", "hidden", "layers", "pooling", "direction", "lr", "batch_size", "clip",
            "patience", "max_len", "min_freq", "seed", "limit")
# What predict/evaluate/--resume read from config.json (seq2seq also its decode_max_len).
REQUIRED = ("task", "data", "embed", "hidden", "layers", "bidirectional", "feed_context", "pooling",
            "direction", "batch_size", "min_freq", "max_len", "limit", "epochs", "lr", "clip", "patience", "seed")


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
    p.add_argument("--pooling", choices=("last", "mean"), help="classify: last state or mean of states")
    p.add_argument("--bidirectional", action="store_true", help="classify/tag: read both directions")
    p.add_argument("--feed-context", action="store_true",
                   help="seq2seq: feed the encoder's summary to the decoder at every step")
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
    """The run's settings: the data set's reference defaults, overridden by the options given."""
    if args.task not in TASKS:
        raise CLIError(f"unknown task {args.task!r}; choose one of {', '.join(TASKS)}")
    data = args.data or TASKS[args.task][0]
    if data not in DEFAULTS:
        raise CLIError(f"unknown data set {data!r}; choose one of {', '.join(DEFAULTS)}")
    if data not in TASKS[args.task]:
        raise CLIError(f"data set {data!r} does not fit task {args.task!r}, which takes "
                       f"{' or '.join(TASKS[args.task])}")
    settings = {**COMMON, **DEFAULTS[data]}
    for key in SETTINGS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    for key in ("epochs", "embed", "hidden", "layers", "batch_size", "min_freq", "max_len", "limit"):
        low = 0 if key == "epochs" else 1           # --epochs 0 with --resume: re-score, train nothing
        if settings.get(key) is not None and settings[key] < low:
            raise CLIError(f"--{key.replace('_', '-')} must be at least {low}, got {settings[key]}")
    if not settings["lr"] > 0:
        raise CLIError(f"--lr must be positive, got {settings['lr']}")
    return {"format": CONFIG_FORMAT, "version": 1, "task": args.task, "data": data,
            "bidirectional": bool(args.bidirectional), "feed_context": bool(args.feed_context),
            **{k: settings.get(k) for k in SETTINGS}}


def load_config(directory) -> dict:
    """``DIR/config.json``, checked; clear errors for a missing or broken run directory."""
    if not os.path.isdir(directory):
        what = "a file, not a run directory" if os.path.exists(directory) else "no such run directory"
        raise CLIError(f"{directory}: {what} (train one with 'tinygrad-rnn train')")
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise CLIError(f"{directory}: not a run directory (no config.json); train one with 'tinygrad-rnn train'")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CLIError(f"{path}: broken config file ({e})") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise CLIError(f"{path}: not a tinygrad-rnn run configuration")
    required = REQUIRED + (("decode_max_len",) if config.get("task") == "seq2seq" else ())
    missing = [k for k in required if k not in config]
    if missing or config["task"] not in TASKS:
        raise CLIError(f"{path}: broken config file (missing or bad: {', '.join(missing) or 'task'})")
    return config


def write_json(path, obj) -> None:
    """Write ``obj`` as JSON atomically (a crash mid-write must not break a good run directory)."""
    from .checkpoint import atomic_write
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


RUN_FILES = ("config.json", "vocab.json", "target_vocab.json", "best.npz", "last.npz", "metrics.json", "plot.png")


def clear_run(directory) -> None:
    """Remove an earlier run's files before a new run writes its own, so the directory never mixes
    two runs (a new config.json beside an old best.npz, if the new run stopped before its first
    epoch, would describe a model the checkpoint does not hold)."""
    old = [name for name in RUN_FILES if os.path.exists(os.path.join(directory, name))]
    if old:
        print(f"note: replacing the earlier run in {directory} ({', '.join(old)}); --resume continues it instead")
        for name in old:
            os.remove(os.path.join(directory, name))


def run_file(directory, name: str) -> str:
    """``DIR/name``; a missing file is a clear error, not a bare "No such file"."""
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise CLIError(f"{directory}: no {name} (not a complete run directory; train again with "
                       "'tinygrad-rnn train')")
    return path


# --- data --------------------------------------------------------------------------------------
def load_splits(config) -> tuple[list, list, list]:
    """Train / dev / test lists of ``(input tokens, target)`` for the run's data set (80/10/10)."""
    from . import data as D
    name, limit = config["data"], config.get("limit")
    if name == "numerals":
        sizes = (50_000, 5_000, 5_000) if limit is None else (max(1, limit * 8 // 10),
                                                              max(1, limit // 10), max(1, limit // 10))
        return D.load_numerals(config["direction"], *sizes, seed=SPLIT_SEED)
    examples = _load_examples(name, config.get("max_len"))
    # The key is the input alone: the same text never lands in two splits.
    train, dev, test = D.train_dev_test_split(examples, seed=SPLIT_SEED, key=lambda ex: tuple(ex[0]))
    if limit is not None:     # the splits are shuffled, so their starts are random samples
        train, dev, test = train[:max(1, limit * 8 // 10)], dev[:max(1, limit // 10)], test[:max(1, limit // 10)]
    return train, dev, test


@functools.lru_cache(maxsize=4)
def _load_examples(name: str, max_len):
    """The whole data set, read once per process (evaluate after train, tests)."""
    from . import data as D
    if name == "reviews":
        return D.load_reviews(max_len)
    return D.load_peoples_daily() if name == "peoples-daily" else D.load_pinyin()


def build_vocabs(config, train):
    """(input vocabulary, target vocabulary or None) from the training split only."""
    from .data import Vocab
    src = Vocab.build((x for x, _ in train), min_freq=config["min_freq"])
    tgt = None if config["task"] == "classify" else Vocab.build(y for _, y in train)
    return src, tgt


def make_batches(config, examples, src_vocab, tgt_vocab, *, shuffle: bool, seed: int = 0):
    """A length-bucketed :class:`BatchIterator` over encoded examples."""
    from .data import BatchIterator
    inputs = [src_vocab.encode(x) for x, _ in examples]
    if config["task"] == "classify":
        targets = [int(y) for _, y in examples]
    else:
        seq2seq = config["task"] == "seq2seq"
        targets = [tgt_vocab.encode(y, add_bos=seq2seq, add_eos=seq2seq) for _, y in examples]
    return BatchIterator(inputs, targets, batch_size=config["batch_size"], shuffle=shuffle,
                         seed=seed, bucket=True)


def build_model(config, src_vocab, tgt_vocab, device):
    """The task's model with the run's sizes, on ``device``."""
    from . import models
    # Built on ``device`` directly: never on the default device first (which may be unusable).
    task, common = config["task"], dict(padding_idx=0, device=device)
    if task == "classify":
        model = models.SequenceClassifier(len(src_vocab), config["embed"], config["hidden"], len(LABELS),
                                          pooling=config["pooling"], num_layers=config["layers"],
                                          bidirectional=config["bidirectional"], **common)
    elif task == "tag":
        model = models.SequenceTagger(len(src_vocab), config["embed"], config["hidden"], len(tgt_vocab),
                                      num_layers=config["layers"], bidirectional=config["bidirectional"],
                                      **common)
    else:
        model = models.Seq2Seq(len(src_vocab), len(tgt_vocab), config["embed"], config["hidden"],
                               num_layers=config["layers"], feed_context=config["feed_context"], **common)
    return model


def make_task(config, tgt_vocab, beam: int = 1):
    from .train import ClassificationTask, Seq2SeqTask, TaggingTask
    if config["task"] == "classify":
        return ClassificationTask()
    if config["task"] == "tag":
        return TaggingTask(pad_id=tgt_vocab.pad_id)
    return Seq2SeqTask(max_len=config["decode_max_len"], bos_id=tgt_vocab.bos_id,
                       eos_id=tgt_vocab.eos_id, pad_id=tgt_vocab.pad_id, beam_size=beam)


def compute_baseline(config, train, test) -> dict | None:
    from . import baselines
    if config["data"] == "reviews":
        return {"name": "majority class", **baselines.majority_class([y for _, y in train], [y for _, y in test])}
    if config["data"] == "peoples-daily":
        return {"name": "most frequent tag per word", **baselines.most_frequent_tag(train, test)}
    if config["data"] == "pinyin":
        return {"name": "per-character lookup", **baselines.per_token_lookup(train, test)}
    return None                                     # numerals: no meaningful non-learnt baseline


def _device(args) -> str:
    device = args.device or get_default_device()
    get_backend(device)                             # an unusable device fails now, in one line
    return device


def _format_scores(scores: dict) -> str:
    return "  ".join(f"{k} {v:.4f}" for k, v in scores.items() if isinstance(v, float))


# --- train -------------------------------------------------------------------------------------
def train_command(args) -> int:
    from .optim import Adam
    from .train import NonFiniteLossError, evaluate, fit, require_matplotlib

    config = make_config(args)
    device = _device(args)
    out = args.out or os.path.join("runs", f"{config['task']}-{config['data']}")
    if args.resume:
        saved = load_config(out)
        run_file(out, "last.npz")                   # fail now, not after loading the data
        if (saved["task"], saved["data"]) != (config["task"], config["data"]):
            raise CLIError(f"{out} holds a {saved['task']} run on {saved['data']}, "
                           f"not {config['task']} on {config['data']}")
        # The run continues with its saved settings: an option that would change them is refused,
        # never silently ignored (only --epochs may grow the run).
        changed = [f"--{k.replace('_', '-')} {getattr(args, k)}" for k in SETTINGS
                   if k != "epochs" and getattr(args, k, None) is not None and getattr(args, k) != saved.get(k)]
        changed += [f"--{k.replace('_', '-')}" for k in ("bidirectional", "feed_context")
                    if getattr(args, k) and not saved.get(k)]
        if changed:
            raise CLIError(f"--resume continues {out} with its saved settings, so {', '.join(changed)} "
                           "cannot apply; start a new run (another --out) to change them")
        if args.epochs is not None:
            saved["epochs"] = args.epochs
        config = saved
    elif config["epochs"] == 0:
        raise CLIError("--epochs 0 trains nothing (with --resume it re-scores a finished run)")
    started = time.perf_counter()
    print(f"loading {config['data']} ...", flush=True)
    train, dev, test = load_splits(config)
    if args.resume:
        src_vocab, tgt_vocab = load_vocabs(config, out)
    else:
        src_vocab, tgt_vocab = build_vocabs(config, train)
    if config["task"] == "seq2seq":
        config["decode_max_len"] = max(len(y) for _, y in train) + 5
    print(f"{len(train)} train / {len(dev)} dev / {len(test)} test examples; "
          f"input vocabulary {len(src_vocab)}" + (f", target vocabulary {len(tgt_vocab)}" if tgt_vocab else ""))

    manual_seed(config["seed"])                     # the weights; the batch order is seeded below
    model = build_model(config, src_vocab, tgt_vocab, device)
    optimizer = Adam(model.parameters(), lr=config["lr"])
    task = make_task(config, tgt_vocab)
    train_batches = make_batches(config, train, src_vocab, tgt_vocab, shuffle=True, seed=config["seed"])
    dev_batches = make_batches(config, dev, src_vocab, tgt_vocab, shuffle=False)
    test_batches = make_batches(config, test, src_vocab, tgt_vocab, shuffle=False)

    os.makedirs(out, exist_ok=True)
    if not args.resume:
        clear_run(out)
    write_json(os.path.join(out, "config.json"), config)
    src_vocab.save(os.path.join(out, "vocab.json"))
    if tgt_vocab is not None:
        tgt_vocab.save(os.path.join(out, "target_vocab.json"))
    plot_path = os.path.join(out, "plot.png")
    try:
        require_matplotlib()
    except ImportError as e:
        print(f"note: no plot ({e})")
        plot_path = None

    print(f"training {type(model).__name__} on {device}: {sum(p.size for p in model.parameters()):,} "
          f"parameters, {config['epochs']} epochs")
    try:
        result = fit(model, task, optimizer, train_batches, dev_batches, epochs=config["epochs"],
                     clip=config["clip"], patience=config["patience"], checkpoint_dir=out,
                     resume=args.resume, plot_path=plot_path, progress=not args.no_progress)
    except NonFiniteLossError as e:
        raise CLIError(str(e)) from None
    if result.best_epoch is None:
        raise CLIError("no epoch was trained (--epochs 0?): nothing to evaluate")
    test_scores = evaluate(model, task, test_batches)
    baseline = compute_baseline(config, train, test)
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


def command_line(config) -> str:
    """The one ``tinygrad-rnn train`` command that reproduces this run (options at their
    data set's default are left out)."""
    defaults = {**COMMON, **DEFAULTS[config["data"]]}
    words = ["tinygrad-rnn", "train", config["task"], "--data", config["data"]]
    for key in ("epochs", "embed", "hidden", "layers", "lr", "batch_size", "clip", "patience",
                "min_freq", "seed", "limit", "pooling", "max_len", "direction"):
        if config.get(key) is not None and config[key] != defaults.get(key):
            words += [f"--{key.replace('_', '-')}", str(config[key])]
    words += ["--bidirectional"] * config["bidirectional"] + ["--feed-context"] * config["feed_context"]
    return shlex.join(words)


# --- predict / evaluate ------------------------------------------------------------------------
def load_run(directory, device):
    """(config, model with the best weights, input vocab, target vocab) of a run directory."""
    from . import checkpoint
    config = load_config(directory)
    src_vocab, tgt_vocab = load_vocabs(config, directory)
    model = build_model(config, src_vocab, tgt_vocab, device)
    checkpoint.load(run_file(directory, "best.npz"), model)
    return config, model.eval(), src_vocab, tgt_vocab


def load_vocabs(config, directory):
    """(input vocabulary, target vocabulary or None) saved in a run directory."""
    from .data import Vocab
    src_vocab = Vocab.load(run_file(directory, "vocab.json"))
    tgt_vocab = None if config["task"] == "classify" else Vocab.load(run_file(directory, "target_vocab.json"))
    return src_vocab, tgt_vocab


def tokenize(config, text: str) -> list[str]:
    """Characters (reviews, numerals, pinyin; spaces dropped) or space-separated words (tagging)."""
    if config["task"] == "tag":
        return text.split()
    return [c for c in text if not c.isspace()]


def predict_command(args) -> int:
    from .data import Batch, pad_sequences
    from .tensor import no_grad
    texts = [t.strip() for t in args.texts]
    if not all(texts):
        raise CLIError("empty text: every TEXT must contain something to " +
                       "read (put a sentence in quotes)")
    device = _device(args)
    if args.beam < 1:
        raise CLIError(f"--beam must be >= 1, got {args.beam}")
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
    return 0


def evaluate_command(args) -> int:
    from .train import evaluate
    device = _device(args)
    if args.beam < 1:
        raise CLIError(f"--beam must be >= 1, got {args.beam}")
    config, model, src_vocab, tgt_vocab = load_run(args.dir, device)
    train, dev, test = load_splits(config)
    examples = test if args.split == "test" else dev
    batches = make_batches(config, examples, src_vocab, tgt_vocab, shuffle=False)
    scores = evaluate(model, make_task(config, tgt_vocab, beam=args.beam), batches)
    print(f"{args.split} ({len(examples)} examples)  {_format_scores(scores)}")
    return 0
