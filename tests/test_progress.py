"""Progress without a terminal: a logged or piped training run prints a progress line at a steady
cadence instead of staying silent until the epoch ends."""

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import train
from tinygrad_rnn.data import BatchIterator
from tinygrad_rnn.models import SequenceClassifier
from tinygrad_rnn.optim import Adam


class FakeClock:
    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_lines_come_at_a_steady_cadence():
    lines = []
    # 100 batches of 64 examples, 1 s each, a line every 10 s at most.
    progress = train._ProgressLines(6400, "epoch 2/5", log=lines.append, every=10.0, clock=FakeClock(1.0))
    for i in range(100):
        progress.set_postfix(loss=f"{1 / (i + 1):.4f}")
        progress.update(64)
    assert len(lines) == 10, lines
    seconds = [int(line.rsplit(" ", 2)[-2]) for line in lines]
    assert all(b - a == 10 for a, b in zip(seconds, seconds[1:])), seconds
    assert lines[0] == "epoch 2/5  640/6,400 examples (10 %)  loss 0.1000  10 s", lines[0]
    assert lines[-1] == "epoch 2/5  6,400/6,400 examples (100 %)  loss 0.0100  100 s", lines[-1]


def test_a_short_epoch_prints_no_progress_line():
    lines = []
    progress = train._ProgressLines(640, "epoch 1/1", log=lines.append, every=10.0, clock=FakeClock(0.1))
    for _ in range(10):
        progress.update(64)
    assert lines == []


def test_fit_prints_progress_lines_when_stderr_is_not_a_terminal(capsys, monkeypatch):
    """pytest's captured stderr is not a terminal, as in ``tinygrad-rnn train … > log 2>&1``."""
    monkeypatch.setattr(train, "PROGRESS_EVERY_SECONDS", 0.0)  # a line after every batch
    rng = np.random.default_rng(0)
    inputs = [list(rng.integers(1, 20, size=rng.integers(2, 9))) for _ in range(40)]
    labels = [int(len(x) > 5) for x in inputs]
    batches = BatchIterator(inputs, labels, batch_size=8, shuffle=True, seed=0)
    tg.manual_seed(0)
    model = SequenceClassifier(20, 4, 4, num_classes=2)
    train.fit(
        model,
        train.ClassificationTask(),
        Adam(model.parameters()),
        batches,
        BatchIterator(inputs, labels, batch_size=8),
        epochs=2,
        progress=True,
    )
    out = capsys.readouterr().out.splitlines()
    progress = [line for line in out if "examples (" in line]
    assert len(progress) == 2 * 5, out  # 5 batches per epoch
    assert progress[0].startswith("epoch 1/2  8/40 examples (20 %)  loss "), progress[0]
    assert progress[-1].startswith("epoch 2/2  40/40 examples (100 %)"), progress[-1]
    # --no-progress: nothing but the epoch lines.
    train.fit(
        model,
        train.ClassificationTask(),
        Adam(model.parameters()),
        batches,
        BatchIterator(inputs, labels, batch_size=8),
        epochs=1,
        progress=False,
    )
    assert not [line for line in capsys.readouterr().out.splitlines() if "examples (" in line]
