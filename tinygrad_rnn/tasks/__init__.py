"""The task registry: one object per task the command line trains — classify, tag, seq2seq.

Each :class:`Task` knows what differs between the three ways of using an RNN (docs/chapter.md,
section 4), so that run directories (:mod:`tinygrad_rnn.runs`) and the command line
(:mod:`tinygrad_rnn.cli.tasks`) ask it instead of comparing task names:

* its **data sets** (:data:`DATASETS`: each with its reference defaults of docs/results.md and the
  settings only it reads) and how a text is cut into tokens;
* its **options**: the settings only this task takes (``--pooling`` for classify, ``--attention``
  for seq2seq, …); any other task refuses them;
* its **targets**: a class id, or tokens of a target vocabulary (with ``<bos>``/``<eos>`` for
  seq2seq), and its **model builder**;
* its **metric** and training adapter (:mod:`tinygrad_rnn.train`'s task classes).

Adding a task is adding one subclass here and an entry in :data:`TASKS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data import DATASETS as DATA_SET_NAMES
from ..data import Vocab
from .schema import (
    COMMON,
    CONFIG_FORMAT,
    CONFIG_VERSION,
    DEFAULT_CELL,
    DEFAULT_DROPOUT,
    MAX_DECODE_LEN,
    MAXIMA,
    REQUIRED,
    SCHEMA,
    SETTINGS,
    RunError,
    check_config,
    setting_problem,
)

LABELS = ("negative", "positive")  # review labels: 0 and 1


@dataclass(frozen=True)
class DataSet:
    """A data set: its reference configuration (docs/results.md) and the settings only it reads."""

    name: str
    defaults: dict
    options: tuple = ()  # e.g. ("max_len",): only the reviews are cut
    output_separator: str = ""  # between output tokens when printed (pinyin: " ")
    closed_alphabet: bool = False  # input outside the training alphabet is refused
    no_baseline: str | None = None  # why there is no baseline to compare with
    # Expected wall time of the default run on a 2-core CPU with one BLAS thread, in minutes:
    # (idle machine or None, busy machine). Busy: one epoch of the default configuration measured
    # on 2026-11-30 at load average 7-10, times its epochs, plus loading and scoring (docs/results.md
    # gives the per-epoch times). Idle: measured for the reviews (make run, 39 s); for the others
    # ``train --help`` scales the busy time by the reviews' idle/busy ratio, an estimate ("≈").
    minutes: tuple = (None, None)


DATASETS = {
    d.name: d
    for d in (
        DataSet(
            "reviews",
            dict(embed=64, hidden=128, lr=1e-3, epochs=10, max_len=100, min_freq=1),
            ("max_len",),
            minutes=(0.65, 5),
        ),
        DataSet(
            "peoples-daily", dict(embed=64, hidden=128, lr=3e-3, epochs=8, min_freq=2), minutes=(None, 12)
        ),
        DataSet(
            "numerals",
            dict(embed=32, hidden=256, lr=1e-3, epochs=20, min_freq=1),
            ("direction",),
            closed_alphabet=True,
            minutes=(None, 40),
            no_baseline="A numeral follows exact rules, so a baseline that knows them scores 100 %, and one "
            "that does not gets no number right (every test number is new); compare the plain "
            "decoder with --feed-context instead (docs/results.md)",
        ),
        DataSet(
            "pinyin",
            dict(embed=64, hidden=256, lr=1e-3, epochs=20, min_freq=1),
            output_separator=" ",
            minutes=(None, 44),
        ),
    )
}
assert set(DATASETS) == set(DATA_SET_NAMES)
DEFAULTS = {name: d.defaults for name, d in DATASETS.items()}


@dataclass(frozen=True)
class Task:
    """What one task is. Subclasses fill in the model and the targets."""

    name: str
    summary: str  # one line for ``train --help``
    datasets: tuple  # the first is the default
    options: tuple = ()  # settings only this task takes
    metric: str = "accuracy"  # the dev score that picks the best epoch
    saved_settings: tuple = field(default=())  # config.json fields only this task has
    # Not fields: what the task's model can do, for the options of predict and evaluate.
    has_target_vocab = True  # targets are tokens (target_vocab.json)
    decodes = False  # generates outputs: --beam, --attention PNG
    shows_prefixes = False  # a classifier: --prefixes
    token_unit = "character"  # what one input token is, in messages

    # ---- data ---------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """Characters, spaces dropped (reviews, numerals, pinyin)."""
        return [c for c in text if not c.isspace()]

    def target_vocab(self, train):
        """The target vocabulary built from the training split, or None when targets are classes."""
        return Vocab.build(y for _, y in train)

    def encode_targets(self, examples, tgt_vocab) -> list:
        return [tgt_vocab.encode(y) for _, y in examples]

    def derived_settings(self, train) -> dict:
        """Settings a new run takes from its training split (seq2seq: how long it may decode)."""
        return {}

    def format_predictions(self, config, texts, tokens, predictions, tgt_vocab) -> list[str]:
        """What ``predict`` prints: one line per text."""
        raise NotImplementedError

    # ---- model --------------------------------------------------------------------------
    def build_model(self, config, src_vocab, tgt_vocab, device):
        raise NotImplementedError

    def trainer(self, config, tgt_vocab, beam: int = 1):
        """The :mod:`tinygrad_rnn.train` task that trains and scores this task's model."""
        raise NotImplementedError

    # ---- options ------------------------------------------------------------------------
    def takes(self, setting: str, data: str | None = None) -> bool:
        """Whether this task (on ``data``, or on any of its data sets) reads ``setting``."""
        if setting not in TASK_OPTIONS:
            return True  # a setting every task reads
        names = (data,) if data is not None else self.datasets
        return setting in self.options or any(setting in DATASETS[d].options for d in names)

    @staticmethod
    def applies_to(setting: str) -> str:
        """Who takes ``setting``, in words: "seq2seq", "classify", "numerals" …"""
        owners = [t.name for t in TASKS.values() if setting in t.options]
        owners += [d.name for d in DATASETS.values() if setting in d.options]
        return " and ".join(owners)


def _common_model_args(config, device) -> dict:
    # Built on ``device`` directly: never on the default device first (which may be unusable).
    return dict(padding_idx=0, cell=config["cell"], device=device)


class Classify(Task):
    has_target_vocab = False
    shows_prefixes = True

    def target_vocab(self, train):
        return None  # the targets are class ids: 0 negative, 1 positive

    def encode_targets(self, examples, tgt_vocab) -> list:
        return [int(y) for _, y in examples]

    def build_model(self, config, src_vocab, tgt_vocab, device):
        from ..models import SequenceClassifier

        return SequenceClassifier(
            len(src_vocab),
            config["embed"],
            config["hidden"],
            len(LABELS),
            pooling=config["pooling"],
            num_layers=config["layers"],
            bidirectional=config["bidirectional"],
            **_common_model_args(config, device),
        )

    def trainer(self, config, tgt_vocab, beam: int = 1):
        from ..train import ClassificationTask

        return ClassificationTask()

    def format_predictions(self, config, texts, tokens, predictions, tgt_vocab) -> list[str]:
        labels, probs = predictions
        return [f"{LABELS[label]}  {p[label]:.3f}  {text}" for text, label, p in zip(texts, labels, probs)]


class Tag(Task):
    token_unit = "word"

    def tokenize(self, text: str) -> list[str]:
        """Space-separated words: the tagger labels words, not characters."""
        return text.split()

    def build_model(self, config, src_vocab, tgt_vocab, device):
        from ..models import SequenceTagger

        return SequenceTagger(
            len(src_vocab),
            config["embed"],
            config["hidden"],
            len(tgt_vocab),
            num_layers=config["layers"],
            bidirectional=config["bidirectional"],
            **_common_model_args(config, device),
        )

    def trainer(self, config, tgt_vocab, beam: int = 1):
        from ..train import TaggingTask

        return TaggingTask()

    def format_predictions(self, config, texts, tokens, predictions, tgt_vocab) -> list[str]:
        return [
            "  ".join(f"{w}/{tgt_vocab.id_to_token(t)}" for w, t in zip(words, tags))
            for words, tags in zip(tokens, predictions)
        ]


class Translate(Task):
    decodes = True

    def derived_settings(self, train) -> dict:
        # Room for the longest training target and a few more tokens; never without end.
        return {"decode_max_len": min(max(len(y) for _, y in train) + 5, MAX_DECODE_LEN)}

    def format_predictions(self, config, texts, tokens, predictions, tgt_vocab) -> list[str]:
        join = DATASETS[config["data"]].output_separator
        return [f"{text}  →  {join.join(tgt_vocab.decode(out))}" for text, out in zip(texts, predictions)]

    def encode_targets(self, examples, tgt_vocab) -> list:
        return [tgt_vocab.encode(y, add_bos=True, add_eos=True) for _, y in examples]

    def build_model(self, config, src_vocab, tgt_vocab, device):
        from ..models import Seq2Seq

        return Seq2Seq(
            len(src_vocab),
            len(tgt_vocab),
            config["embed"],
            config["hidden"],
            num_layers=config["layers"],
            feed_context=config["feed_context"],
            attention=config["attention"],
            bidirectional=config["bidirectional"],
            dropout=config["dropout"],
            **_common_model_args(config, device),
        )

    def trainer(self, config, tgt_vocab, beam: int = 1):
        from ..train import Seq2SeqTask

        return Seq2SeqTask(
            max_len=config["decode_max_len"], bos_id=tgt_vocab.bos_id, eos_id=tgt_vocab.eos_id, beam_size=beam
        )


TASKS = {
    t.name: t
    for t in (
        Classify(
            "classify",
            "sequence → class: is a shopping review positive or negative?",
            ("reviews",),
            options=("pooling",),
        ),
        Tag("tag", "one tag per word: the part of speech of every word (People's Daily)", ("peoples-daily",)),
        Translate(
            "seq2seq",
            "encoder–decoder: Chinese numerals ↔ digits, or characters → pinyin",
            ("numerals", "pinyin"),
            options=("feed_context", "attention", "dropout"),
            metric="exact_match",
            saved_settings=("decode_max_len",),
        ),
    )
}
# Settings that only some tasks or data sets take: any other refuses them.
TASK_OPTIONS = tuple(
    dict.fromkeys(
        [o for t in TASKS.values() for o in t.options] + [o for d in DATASETS.values() for o in d.options]
    )
)
assert {d for t in TASKS.values() for d in t.datasets} == set(DATASETS)

__all__ = [
    "TASKS",
    "DATASETS",
    "DEFAULTS",
    "LABELS",
    "Task",
    "DataSet",
    "TASK_OPTIONS",
    "COMMON",
    "CONFIG_FORMAT",
    "CONFIG_VERSION",
    "DEFAULT_CELL",
    "DEFAULT_DROPOUT",
    "MAX_DECODE_LEN",
    "MAXIMA",
    "REQUIRED",
    "SCHEMA",
    "SETTINGS",
    "RunError",
    "check_config",
    "setting_problem",
]
