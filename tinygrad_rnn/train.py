"""Training: the loop that turns a model, batches and an optimizer into a trained model.

One step is backpropagation through time followed by an update::

    loss = task.loss(model, batch)       # forward over t = 1..T, masked cross-entropy
    loss.backward()                      # BPTT: the tape is walked back from t = T to t = 1
    clip_grad_norm_(params, clip)        # ‖∂L/∂θ‖ ≤ clip, against exploding gradients
    optimizer.step()

:func:`fit` repeats that over epochs and adds what a real run needs: a progress bar (loss,
examples/s), a dev evaluation after every epoch, the best-on-dev checkpoint, early stopping,
resuming, a loss/metric plot, and a clear stop when the loss stops being a number.

A *task* adapts one batch to its model, which defines the loss and the decision rule itself
(padding masked by length); the three tasks are the three ways of using an RNN of the chapter we
follow (docs/chapter.md, section 4):

* :class:`ClassificationTask` — sequence → class: ``SequenceClassifier.loss``/``predict``;
* :class:`TaggingTask` — synchronous sequence → sequence: ``SequenceTagger.loss``/``predict``;
* :class:`Seq2SeqTask` — encoder–decoder: ``Seq2Seq.loss`` with teacher forcing for the loss,
  ``Seq2Seq.generate`` (greedy or beam) for the scores.

Batches are :class:`tinygrad_rnn.data.Batch` es (NumPy arrays); a task hands them to its model's
``loss``/``predict``, which move the ids to the model's device.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import serialization
from .backend import host_rng
from .optim import NonFiniteGradientError, clip_grad_norm_
from .plotting import require_matplotlib
from .plotting.training import plot_history
from .tensor import Tensor

BEST, LAST = "best.npz", "last.npz"


class NonFiniteLossError(FloatingPointError):
    """The loss (or a gradient) became inf or nan; training stopped, the last good checkpoint is kept."""


# --- tasks -----------------------------------------------------------------------------------
# A task only adapts a Batch to its model's own ``loss``/``predict``: the models define the
# loss (padding masked by length, never by a pad id) and the decision rule. The ids stay host
# arrays here; each model moves them to its device and builds its masks from the lengths.


class _LabellingTask:
    """A task whose targets are labels of the input (one per sequence, or one per token): the
    model's own ``loss(tokens, lengths, targets)``, scored by ``accuracy`` (the dev metric)."""

    metric = "accuracy"

    def loss(self, model, batch) -> Tensor:
        return model.loss(batch.inputs, batch.lengths, batch.targets)

    def predict(self, model, batch):
        """The model's own decision: (class ids (B,), probabilities (B, C)) on the host for a
        classifier, one list of tag ids per sequence (as long as it) for a tagger."""
        return model.predict(batch.inputs, batch.lengths)


class ClassificationTask(_LabellingTask):
    """Sequence → class: ``model.loss(tokens, lengths, labels)`` (a
    :class:`~tinygrad_rnn.models.SequenceClassifier`).

    Scores: ``loss`` (mean over examples) and ``accuracy`` (the dev metric).
    """

    def evaluate(self, model, batches) -> dict:
        total_loss = correct = n = 0
        for batch in batches:
            logits = model(batch.inputs, batch.lengths)  # one forward pass for loss and accuracy
            total_loss += model.loss_from_logits(logits, batch.targets, batch.lengths, reduction="sum").item()
            labels, _ = model.predict_from_logits(logits, batch.lengths)
            correct += int((labels == batch.targets).sum())
            n += len(batch.targets)
        return {"loss": total_loss / n, "accuracy": correct / n}


class TaggingTask(_LabellingTask):
    """Synchronous sequence → sequence: ``model.loss(tokens, lengths, tags)`` (a
    :class:`~tinygrad_rnn.models.SequenceTagger`): one tag per token.

    Steps ``t >= lengths[b]`` are padding, ignored by the loss and by the token ``accuracy``
    (the dev metric), whatever id pads the tags.
    """

    def evaluate(self, model, batches) -> dict:
        total_loss = correct = n = 0
        for batch in batches:
            logits = model(batch.inputs, batch.lengths)  # one forward pass for loss and accuracy
            total_loss += model.loss_from_logits(logits, batch.targets, batch.lengths, reduction="sum").item()
            for tags, gold, length in zip(
                model.predict_from_logits(logits, batch.lengths), batch.targets, batch.lengths
            ):
                correct += sum(a == b for a, b in zip(tags, gold[:length].tolist()))
            n += int(np.sum(batch.lengths))
        return {"loss": total_loss / n, "accuracy": correct / n}


class Seq2SeqTask:
    """Asynchronous sequence → sequence with an encoder–decoder (a :class:`~tinygrad_rnn.models.Seq2Seq`).

    Targets are encoded ``<bos> y_1 … y_m <eos>`` (``target_lengths`` = m + 2). Teacher forcing:
    the decoder reads ``<bos> y_1 … y_m`` and must predict ``y_1 … y_m <eos>`` (the same row
    shifted by one, m + 1 true steps), so the loss is ``model.loss`` of every true next token.

    Scores: teacher-forced ``loss`` per token; with greedy (or beam) decoding up to ``max_len``
    tokens (``model.generate``), ``exact_match`` (the whole output right: the dev metric) and
    ``token_accuracy`` (output token i equals target token i, over all target tokens).
    """

    metric = "exact_match"

    def __init__(self, max_len: int, bos_id: int = 2, eos_id: int = 3, beam_size: int = 1):
        self.max_len, self.bos_id, self.eos_id, self.beam_size = max_len, bos_id, eos_id, beam_size

    def loss(self, model, batch, reduction: str = "mean") -> Tensor:
        targets = batch.targets
        return model.loss(
            batch.inputs,
            batch.lengths,
            targets[:, :-1],
            targets[:, 1:],  # <bos> y → y <eos>
            np.asarray(batch.target_lengths) - 1,
            reduction=reduction,
        )

    def predict(self, model, batch) -> list[list[int]]:
        """Decoded token ids per sequence (without ``<bos>``/``<eos>``)."""
        return model.generate(
            batch.inputs,
            batch.lengths,
            max_len=self.max_len,
            bos_id=self.bos_id,
            eos_id=self.eos_id,
            beam_size=self.beam_size,
        )

    def evaluate(self, model, batches) -> dict:
        total_loss = tokens = exact = correct = target_tokens = n = 0
        for batch in batches:
            total_loss += self.loss(model, batch, reduction="sum").item()
            tokens += int(np.sum(batch.target_lengths)) - len(batch.target_lengths)
            for out, row, m in zip(self.predict(model, batch), batch.targets, batch.target_lengths):
                gold = row[1 : m - 1].tolist()  # strip <bos> and <eos>
                exact += out == gold
                correct += sum(a == b for a, b in zip(out, gold))
                target_tokens += len(gold)
                n += 1
        return {
            "loss": total_loss / tokens,
            "exact_match": exact / n,
            "token_accuracy": correct / max(target_tokens, 1),
        }


def evaluate(model, task, batches) -> dict:
    """Score ``model`` on ``batches`` without recording a graph (eval mode, ``no_grad``); every
    module's mode is restored after, as ``Seq2Seq.generate`` restores it."""
    from .models.common import inference

    with inference(model):
        return task.evaluate(model, batches)


# --- progress --------------------------------------------------------------------------------
PROGRESS_EVERY_SECONDS = 10.0  # without a terminal: one progress line at most this often


def _progress_bar(total, desc, enabled, log=print):
    """How an epoch shows its progress: a tqdm bar counting examples (its rate is examples/s) when
    stderr is a terminal and tqdm is installed; otherwise — a log file, a pipe, no tqdm — a
    :class:`_ProgressLines` that prints a line every :data:`PROGRESS_EVERY_SECONDS`, so a logged
    run is never silent for a whole epoch. ``enabled=False`` shows nothing."""
    if not enabled:
        return _NoBar()
    stderr = sys.stderr
    if stderr is not None and hasattr(stderr, "isatty") and stderr.isatty():
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass  # pip install -e '.[progress]' adds the bar
        else:
            return tqdm(total=total, desc=desc, unit="ex", leave=False, dynamic_ncols=True)
    return _ProgressLines(total, desc, log)


class _NoBar:
    def update(self, n):
        pass

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


class _ProgressLines:
    """Progress for logs: ``epoch 2/10  3,200/13,886 examples (23 %)  loss 0.6012  14 s``, at most
    one line every ``every`` seconds (the first after ``every`` seconds; none for a short epoch)."""

    def __init__(self, total, desc, log=print, every=None, clock=time.monotonic):
        self.total, self.desc, self.log, self.clock = total, desc, log, clock
        self.every = PROGRESS_EVERY_SECONDS if every is None else every
        self.start = self.last = clock()
        self.seen, self.loss = 0, None

    def set_postfix(self, loss=None, **_):
        self.loss = loss

    def update(self, n):
        self.seen += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            done = f"{self.seen:,}" + (
                f"/{self.total:,} examples ({100 * self.seen / self.total:.0f} %)"
                if self.total
                else " examples"
            )
            loss = f"  loss {self.loss}" if self.loss is not None else ""
            self.log(f"{self.desc}  {done}{loss}  {now - self.start:.0f} s")
            if self.log is print:
                sys.stdout.flush()  # a file or pipe is block-buffered: show the line now

    def close(self):
        pass


# --- the loop --------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` did: one dict per epoch in ``history``, and the best epoch on dev."""

    history: list = field(default_factory=list)
    best_epoch: int | None = None  # 1-based
    best_score: float | None = None
    stopped_early: bool = False
    checkpoint: str | None = None  # path of the best checkpoint, if one was written


def fit(
    model,
    task,
    optimizer,
    train_batches,
    dev_batches,
    *,
    epochs: int,
    clip: float | None = 1.0,
    patience: int | None = None,
    checkpoint_dir=None,
    resume: bool = False,
    plot_path=None,
    progress: bool = True,
    log=print,
    meta: dict | None = None,
) -> FitResult:
    """Train ``model`` for up to ``epochs`` epochs; return a :class:`FitResult`.

    * ``train_batches``: a :class:`~tinygrad_rnn.data.BatchIterator` (its ``set_epoch`` makes the
      order of every epoch reproducible, resumed or not) or any re-iterable of batches;
      ``dev_batches``: batches scored after every epoch with ``task.evaluate``.
    * ``clip``: the gradient norm is clipped to this (None: no clipping).
    * ``patience``: stop after this many epochs without a better dev score (None: never).
    * ``checkpoint_dir``: writes ``best.npz`` (the best dev score so far) and ``last.npz`` (the
      end of the latest epoch: model, optimizer, epoch, history and RNG state), both atomically.
      ``resume=True`` continues from ``last.npz`` there exactly where it stopped.
    * ``plot_path``: a PNG of loss and dev metric per epoch, redrawn after every epoch (needs
      matplotlib: ``pip install -e '.[plot]'``).
    * ``meta``: extra JSON saved in both checkpoints.

    At the end the model holds the best-on-dev weights. A non-finite loss or gradient raises
    :class:`NonFiniteLossError`; the checkpoints on disk are the last good ones.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    if plot_path is not None:
        require_matplotlib()  # fail now, not after the first epoch
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs the checkpoint_dir of the run to continue")
    params = model.parameters()
    best_path = last_path = None
    if checkpoint_dir is not None:
        os.makedirs(checkpoint_dir, exist_ok=True)
        best_path, last_path = os.path.join(checkpoint_dir, BEST), os.path.join(checkpoint_dir, LAST)

    result, start_epoch, bad_epochs, best_state = FitResult(), 0, 0, None
    if resume:
        saved = serialization.load(last_path, model, optimizer, check_meta=check_fit_record)["fit"]
        start_epoch, bad_epochs = saved["epoch"], saved["bad_epochs"]
        result.history, result.best_epoch, result.best_score = (
            saved["history"],
            saved["best_epoch"],
            saved["best_score"],
        )
        host_rng().bit_generator.state = saved["rng_state"]
        log(f"resumed from {last_path} after epoch {start_epoch}")
        if patience is not None and bad_epochs >= patience:
            result.stopped_early = True
            start_epoch = epochs  # it had already stopped
    if result.best_epoch is not None and best_path is not None and os.path.exists(best_path):
        result.checkpoint = best_path

    model.train()
    for epoch in range(start_epoch, epochs):
        if hasattr(train_batches, "set_epoch"):
            train_batches.set_epoch(epoch)
        total = len(train_batches.inputs) if hasattr(train_batches, "inputs") else None
        bar = _progress_bar(total, f"epoch {epoch + 1}/{epochs}", progress, log)
        start, loss_sum, seen = time.perf_counter(), 0.0, 0
        try:
            for step, batch in enumerate(train_batches):
                loss = task.loss(model, batch)
                value = loss.item()
                if not math.isfinite(value):
                    _stop(
                        result,
                        model,
                        best_state,
                        f"the loss is {value} at epoch {epoch + 1}, batch {step + 1}",
                    )
                optimizer.zero_grad()
                loss.backward()  # backpropagation through time
                if clip is not None:
                    clip_grad_norm_(params, clip)
                try:
                    optimizer.step()
                except NonFiniteGradientError as e:
                    _stop(result, model, best_state, f"at epoch {epoch + 1}, batch {step + 1}: {e}")
                n = len(batch.lengths)
                loss_sum, seen = loss_sum + value * n, seen + n
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
                bar.update(n)
        finally:
            bar.close()
        train_seconds = time.perf_counter() - start

        scores = evaluate(model, task, dev_batches)
        score = scores[task.metric]
        improved = result.best_score is None or score > result.best_score
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            **{f"dev_{k}": v for k, v in scores.items()},
            "train_seconds": round(train_seconds, 3),
            "examples_per_second": round(seen / train_seconds, 1) if train_seconds > 0 else None,
        }
        result.history.append(record)
        if improved:
            result.best_epoch, result.best_score, bad_epochs = epoch + 1, score, 0
            best_state = model.state_dict()  # host copies: the best weights so far
        else:
            bad_epochs += 1
        log(
            f"epoch {epoch + 1}/{epochs}  train loss {record['train_loss']:.4f}  dev loss "
            f"{scores['loss']:.4f}  dev {task.metric} {score:.4f}{'  (best)' if improved else ''}  "
            f"{train_seconds:.1f} s, {record['examples_per_second'] or 0:.0f} ex/s"
        )

        if checkpoint_dir is not None:
            state = {
                "fit": {
                    "epoch": epoch + 1,
                    "bad_epochs": bad_epochs,
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "best_score": result.best_score,
                    "rng_state": host_rng().bit_generator.state,
                },
                **(meta or {}),
            }
            if improved:
                serialization.save(best_path, model, optimizer, meta=state)
                result.checkpoint = best_path
            serialization.save(last_path, model, optimizer, meta=state)
        if plot_path is not None:
            plot_history(result.history, plot_path, task.metric)
        if patience is not None and bad_epochs >= patience:
            log(
                f"early stop: no better dev {task.metric} for {patience} epochs "
                f"(best {result.best_score:.4f} at epoch {result.best_epoch})"
            )
            result.stopped_early = True
            break

    _restore_best(model, best_state, result)
    return result


def _is_count(v, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def check_fit_record(meta) -> dict:
    """The ``fit`` record of a checkpoint's ``meta`` (what :func:`fit` saves to resume), checked
    completely before anything is loaded: types, ranges, and that its parts agree. A ValueError
    says what is wrong."""
    if not isinstance(meta, dict) or not isinstance(meta.get("fit"), dict):
        raise ValueError("no 'fit' record in its metadata: not a checkpoint that fit() wrote to resume from")
    record = meta["fit"]
    problems = []
    for key, low in (("epoch", 1), ("bad_epochs", 0)):
        if not _is_count(record.get(key), low):
            problems.append(f"{key} = {record.get(key)!r} (want an integer ≥ {low})")
    history = record.get("history")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        problems.append(f"history = {str(history)[:40]} (want a list of per-epoch records)")
    elif _is_count(record.get("epoch")) and len(history) != record["epoch"]:
        problems.append(f"{len(history)} history records for epoch {record['epoch']}")
    else:  # what metrics.json and the plot read of every epoch
        problems += [
            f"history[{i}]: {p}" for i, h in enumerate(history) for p in _epoch_record_problems(h, i + 1)
        ]
    best_epoch, best_score = record.get("best_epoch"), record.get("best_score")
    if not (_is_count(best_epoch, 1) and serialization.is_finite_number(best_score)):
        problems.append(f"best_epoch = {best_epoch!r}, best_score = {best_score!r}")
    state = record.get("rng_state")
    try:  # assign it to a spare generator of the same kind first
        type(host_rng().bit_generator)().state = state
    except (TypeError, ValueError, KeyError):
        problems.append("rng_state is not a state of this NumPy generator")
    if problems:
        raise ValueError("broken 'fit' record: " + "; ".join(problems))
    return record


def _epoch_record_problems(h: dict, epoch: int) -> list:
    """What is wrong with one epoch's history record (as :func:`fit` writes it), "name = value"."""
    problems = (
        []
        if h.get("epoch") == epoch and _is_count(h.get("epoch"), 1)
        else [f"epoch = {h.get('epoch')!r} (want {epoch})"]
    )
    for key in ("train_loss", "dev_loss", "train_seconds"):
        if not serialization.is_finite_number(h.get(key)) or (key == "train_seconds" and h[key] < 0):
            problems.append(f"{key} = {h.get(key)!r} (want a finite number)")
    speed = h.get("examples_per_second")
    if speed is not None and not serialization.is_finite_number(speed):
        problems.append(f"examples_per_second = {speed!r} (want a finite number or null)")
    problems += [
        f"{k} = {v!r} (want a finite number)"
        for k, v in h.items()
        if k.startswith("dev_") and k != "dev_loss" and not serialization.is_finite_number(v)
    ]
    unknown = sorted(
        k
        for k in h
        if k not in ("epoch", "train_loss", "train_seconds", "examples_per_second")
        and not k.startswith("dev_")
    )
    if unknown:
        problems.append(f"unknown fields {', '.join(map(repr, unknown))}")
    return problems


def read_fit_record(path) -> dict:
    """The checked ``fit`` record of the checkpoint at ``path`` (see :func:`check_fit_record`),
    without loading it into a model; a problem is a :class:`~tinygrad_rnn.serialization.CheckpointError`
    naming the file."""
    meta = serialization.read_meta(path)
    try:
        return check_fit_record(meta)
    except ValueError as e:
        raise serialization.CheckpointError(f"{path}: {e}") from None


def _restore_best(model, best_state, result: FitResult) -> None:
    """Put the best-on-dev weights back into ``model`` (from memory, or from best.npz after a resume)."""
    if best_state is not None:
        model.load_state_dict(best_state)
    elif result.checkpoint is not None:
        serialization.load(result.checkpoint, model)


def _stop(result: FitResult, model, best_state, what: str):
    """Stop on a non-finite loss/gradient: restore the best weights, say what happened, raise."""
    _restore_best(model, best_state, result)
    if result.best_epoch is None:
        kept = "no checkpoint had been written yet; the model keeps its last finite weights"
    else:
        where = f" ({result.checkpoint})" if result.checkpoint else ""
        kept = (
            f"the model holds the best weights so far, from epoch {result.best_epoch}{where}; "
            "checkpoints on disk are unchanged"
        )
    raise NonFiniteLossError(
        f"training stopped: {what}. {kept}. Try a lower learning rate or gradient clipping (clip)."
    )
