"""tinygrad_rnn.train: the fit loop (learning, reproducibility, resume, best checkpoint, early
stopping, clipping, non-finite loss, plots) and the three tasks' scores."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn, serialization
from tinygrad_rnn.data import Batch, BatchIterator
from tinygrad_rnn.models import SequenceClassifier, SequenceTagger, padded_loss
from tinygrad_rnn.nn import functional as F
from tinygrad_rnn.optim import SGD, Adam
from tinygrad_rnn.plotting.training import plot_history
from tinygrad_rnn.train import ClassificationTask, NonFiniteLossError, Seq2SeqTask, TaggingTask, evaluate, fit

try:
    import matplotlib  # noqa: F401

    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


class TinyClassifier(nn.Module):
    """Embedding → RNN → mean of the states → Linear (the contract of models.SequenceClassifier)."""

    def __init__(self, vocab=12, embed=6, hidden=8, classes=2):
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.rnn = nn.RNN(embed, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, tokens, lengths):
        states, _ = self.rnn(self.embed(tg.Tensor(tokens)), lengths=lengths)
        return self.out(F.masked_mean(states, lengths))

    # The classifier's own loss and decision rule: what ClassificationTask delegates to.
    loss, predict = SequenceClassifier.loss, SequenceClassifier.predict
    loss_from_logits = staticmethod(SequenceClassifier.loss_from_logits)
    predict_from_logits = staticmethod(SequenceClassifier.predict_from_logits)


def toy_data(n, seed):
    """Label 1 when token 5 occurs in the sequence: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(4, 12, rng.integers(2, 7)).tolist() for _ in range(n)]
    return seqs, [int(5 in s) for s in seqs]


def run(
    seed=0,
    epochs=3,
    tmp=None,
    resume=False,
    task=None,
    patience=None,
    lr=0.05,
    log=None,
    progress=False,
    **kw,
):
    tg.manual_seed(seed)
    model = TinyClassifier()
    opt = Adam(model.parameters(), lr=lr)
    x, y = toy_data(96, 0)
    dx, dy = toy_data(48, 1)
    train = BatchIterator(x, y, batch_size=16, seed=seed)
    dev = BatchIterator(dx, dy, batch_size=32, shuffle=False)
    result = fit(
        model,
        task or ClassificationTask(),
        opt,
        train,
        dev,
        epochs=epochs,
        checkpoint_dir=tmp,
        resume=resume,
        patience=patience,
        progress=progress,
        log=log or (lambda *a: None),
        **kw,
    )
    return model, result


def same_params(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_fit_learns_and_keeps_the_best_epoch(tmp_path):
    model, result = run(epochs=6, tmp=tmp_path)
    history = result.history
    assert len(history) == 6
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"], history
    best = max(range(6), key=lambda i: history[i]["dev_accuracy"])
    assert result.best_epoch == best + 1 and result.best_score == history[best]["dev_accuracy"]
    assert result.best_score > 0.85, history
    # The model ends with the best weights, and best.npz holds them too.
    dx, dy = toy_data(48, 1)
    dev = BatchIterator(dx, dy, batch_size=32, shuffle=False)
    assert evaluate(model, ClassificationTask(), dev)["accuracy"] == result.best_score
    fresh = TinyClassifier()
    meta = serialization.load(tmp_path / "best.npz", fresh)
    assert same_params(fresh, model) and meta["fit"]["best_epoch"] == result.best_epoch


def test_same_seed_same_numbers_other_seed_other_numbers():
    m1, r1 = run(seed=3)
    m2, r2 = run(seed=3)
    assert _strip(r1) == _strip(r2) and same_params(m1, m2)
    m3, r3 = run(seed=4)
    assert _strip(r3) != _strip(r1) and not same_params(m1, m3)


def _strip(result):
    """The history without timings (which differ from run to run)."""
    return [
        {k: v for k, v in h.items() if k not in ("train_seconds", "examples_per_second")}
        for h in result.history
    ]


def test_resume_continues_exactly(tmp_path):
    straight, r_straight = run(epochs=3, tmp=tmp_path / "a")
    run(epochs=2, tmp=tmp_path / "b")  # stops after epoch 2 ...
    lines = []  # a fresh model (its random weights are replaced by the checkpoint's)
    resumed, r_resumed = run(epochs=3, tmp=tmp_path / "b", resume=True, log=lines.append)
    assert any("resumed" in line and "after epoch 2" in line for line in lines), lines
    assert _strip(r_resumed) == _strip(r_straight), "resuming must give the uninterrupted run's numbers"
    assert same_params(resumed, straight)
    assert r_resumed.best_epoch == r_straight.best_epoch


def test_resume_restores_the_rng_state(tmp_path):
    run(epochs=1, tmp=tmp_path)
    expected = serialization.load(tmp_path / "last.npz", TinyClassifier())["fit"]["rng_state"]
    tg.manual_seed(555)
    run(epochs=1, tmp=tmp_path, resume=True, seed=555)  # nothing left to do: only the restore
    assert tg.backend.host_rng().bit_generator.state == expected


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        run(epochs=1, tmp=tmp_path / "nothing-here", resume=True)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        run(epochs=1, resume=True)


class ScriptedTask(ClassificationTask):
    """Real training steps, but dev scores (and optionally a nan loss) come from a script."""

    def __init__(self, scores, nan_at_epoch=None):
        self.scores, self.nan_at_epoch, self.calls = list(scores), nan_at_epoch, 0

    def loss(self, model, batch):
        loss = super().loss(model, batch)
        if self.nan_at_epoch is not None and self.calls + 1 == self.nan_at_epoch:
            return loss * float("nan")
        return loss

    def evaluate(self, model, batches):
        self.calls += 1
        return {"loss": 1.0, "accuracy": self.scores[self.calls - 1]}


def test_early_stopping_after_patience_epochs():
    lines = []
    _, result = run(
        epochs=10, task=ScriptedTask([0.5, 0.6, 0.55, 0.58, 0.9, 0.9]), patience=2, log=lines.append
    )
    assert [h["dev_accuracy"] for h in result.history] == [0.5, 0.6, 0.55, 0.58]
    assert result.stopped_early and result.best_epoch == 2 and result.best_score == 0.6
    assert any("early stop" in line for line in lines)


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    tg.manual_seed(0)
    with pytest.raises(NonFiniteLossError) as info:
        run(epochs=5, tmp=tmp_path, task=ScriptedTask([0.5, 0.7, 0.6], nan_at_epoch=3))
    message = str(info.value)
    assert "nan" in message and "epoch 3, batch 1" in message and "epoch 2" in message, message
    meta = serialization.load(tmp_path / "best.npz", TinyClassifier())
    assert meta["fit"]["epoch"] == 2 and meta["fit"]["best_epoch"] == 2
    last = serialization.load(tmp_path / "last.npz", TinyClassifier())
    assert last["fit"]["epoch"] == 2, "the nan epoch must not overwrite the last good state"
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


def test_nonfinite_loss_in_the_first_epoch_says_no_checkpoint():
    with pytest.raises(NonFiniteLossError, match="no checkpoint had been written"):
        run(epochs=2, task=ScriptedTask([0.5], nan_at_epoch=1))


def test_gradient_clipping_bounds_the_step():
    # SGD with lr 1: the parameter change equals the (clipped) gradient, so its norm ≤ clip.
    tg.manual_seed(0)
    model = TinyClassifier()
    before = np.concatenate([p.ravel() for p in model.state_dict().values()])
    x, y = toy_data(16, 0)
    batches = BatchIterator(x, y, batch_size=16)
    fit(
        model,
        ClassificationTask(),
        SGD(model.parameters(), lr=1.0),
        batches,
        batches,
        epochs=1,
        clip=1e-3,
        progress=False,
        log=lambda *a: None,
    )
    after = np.concatenate([p.ravel() for p in model.state_dict().values()])
    assert 0 < np.linalg.norm(after - before) <= 1e-3 * (1 + 1e-5)


def test_progress_bar_and_epoch_lines(capsys):
    run(epochs=1, progress=True, log=print)
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "dev accuracy" in out and "ex/s" in out


def test_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        run(epochs=1, patience=0)
    with pytest.raises(ValueError, match="epochs"):
        run(epochs=-1)


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib (the 'plot' extra) is not installed")
def test_plot_is_written_every_epoch(tmp_path):
    path = tmp_path / "plot.png"
    run(epochs=2, plot_path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["plot.png"]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
        plot_history([], "x.png", "accuracy")
    with pytest.raises(ImportError, match="plot"):
        run(epochs=1, plot_path="never-written.png")


# --- the tasks' scores, on fixed outputs -------------------------------------------------------
class FixedLogits(nn.Module):
    """Returns the given logits whatever the input (plus a parameter, so it is a model); scores
    them with the real models' rules (classifier for (B, C) logits, tagger for (B, T, K))."""

    def __init__(self, logits):
        self.logits = tg.Tensor(np.asarray(logits, dtype=np.float64))
        self.p = nn.Parameter(np.zeros(1))
        self.rules = SequenceTagger if self.logits.ndim == 3 else SequenceClassifier

    def forward(self, *inputs):
        return self.logits + self.p * 0.0

    def loss_from_logits(self, *args, **kw):
        return self.rules.loss_from_logits(*args, **kw)

    def predict_from_logits(self, *args, **kw):
        return self.rules.predict_from_logits(*args, **kw)

    def predict(self, tokens, lengths):
        return self.predict_from_logits(self(tokens, lengths), lengths)


def test_tagging_accuracy_ignores_padding():
    # Two sentences of 3 and 1 tokens; the prediction is the argmax over 3 tags (ids 1..2 real).
    logits = np.full((2, 3, 3), -5.0)
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 1] = 5  # predicts 1 2 1
    logits[1, 0, 2] = logits[1, 1, 1] = logits[1, 2, 1] = 5  # predicts 2 (then padding)
    targets = np.array([[1, 1, 1], [2, 0, 0]])
    batch = Batch(np.ones((2, 3), int), np.array([3, 1]), targets, np.array([3, 1]), np.arange(2))
    scores = evaluate(FixedLogits(logits), TaggingTask(), [batch])
    assert scores["accuracy"] == 3 / 4  # right: 1 _ 1 | 2
    assert TaggingTask().predict(FixedLogits(logits), batch) == [[1, 2, 1], [2]]


def test_classification_scores():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    batch = Batch(np.ones((3, 2), int), np.array([2, 2, 1]), np.array([0, 0, 0]), None, np.arange(3))
    scores = evaluate(FixedLogits(logits), ClassificationTask(), [batch])
    assert scores["accuracy"] == 2 / 3
    expected = -np.mean([np.log(np.exp(l[0]) / np.exp(l).sum()) for l in logits])
    assert scores["loss"] == pytest.approx(expected, rel=1e-9)


def test_scoring_runs_the_model_once_per_batch():
    calls = []

    class Counted(FixedLogits):
        def forward(self, *inputs):
            calls.append(1)
            return super().forward(*inputs)

    batch = Batch(np.ones((3, 2), int), np.array([2, 2, 1]), np.array([0, 1, 0]), None, np.arange(3))
    evaluate(Counted(np.zeros((3, 2))), ClassificationTask(), [batch, batch])
    assert len(calls) == 2, "loss and accuracy must come from one forward pass per batch"
    calls.clear()
    tags = Batch(np.ones((2, 3), int), np.array([3, 1]), np.ones((2, 3), int), np.array([3, 1]), np.arange(2))
    evaluate(Counted(np.zeros((2, 3, 3))), TaggingTask(), [tags])
    assert len(calls) == 1


class FixedDecoder(FixedLogits):
    def __init__(self, logits, outputs):
        super().__init__(logits)
        self.outputs = outputs

    def loss(self, src, src_lengths, tgt_in, tgt_out, out_lengths, reduction="mean"):
        return padded_loss(self(src, src_lengths, tgt_in), tgt_out, out_lengths, reduction)

    def generate(self, src, src_lengths, max_len, bos_id, eos_id, beam_size=1):
        assert max_len == 7 and (bos_id, eos_id) == (2, 3)
        return self.outputs


def test_seq2seq_scores_exact_match_and_token_accuracy():
    # Targets <bos> 4 5 6 <eos> and <bos> 7 <eos> <pad> <pad>.
    targets = np.array([[2, 4, 5, 6, 3], [2, 7, 3, 0, 0]])
    batch = Batch(np.ones((2, 2), int), np.array([2, 1]), targets, np.array([5, 3]), np.arange(2))
    logits = np.zeros((2, 4, 8))
    model = FixedDecoder(logits, outputs=[[4, 9, 6, 8], [7]])
    scores = evaluate(model, Seq2SeqTask(max_len=7), [batch])
    assert scores["exact_match"] == 1 / 2
    assert scores["token_accuracy"] == 3 / 4  # 4 _ 6 | 7
    assert scores["loss"] == pytest.approx(np.log(8), rel=1e-9)  # uniform over 8 tokens


# --- the tasks delegate to the models and mask by length ---------------------------------------
def test_tasks_use_the_models_own_loss_and_mask_by_length_not_by_pad_id():
    """What a padded target position holds never matters: the models mask by lengths."""
    from tinygrad_rnn.models import Seq2Seq

    tg.manual_seed(0)
    tagger = SequenceTagger(10, 4, 5, 6, dtype="float64")
    inputs, lengths = np.array([[4, 5, 6], [7, 8, 0]]), np.array([3, 2])
    for pad in (0, 5):  # 5 is a real tag id
        tags = np.array([[1, 2, 3], [4, 1, pad]])
        batch = Batch(inputs, lengths, tags, lengths, np.arange(2))
        assert TaggingTask().loss(tagger, batch).item() == tagger.loss(inputs, lengths, tags).item()
        assert evaluate(tagger, TaggingTask(), [batch]) == evaluate(
            tagger,
            TaggingTask(),
            [batch._replace(targets=np.where(np.arange(3) < lengths[:, None], tags, 0))],
        )

    s2s = Seq2Seq(10, 9, 4, 5, dtype="float64")
    targets = np.array([[2, 4, 5, 3], [2, 6, 3, 0]])  # <bos> y <eos> <pad>
    batch = Batch(inputs, lengths, targets, np.array([4, 3]), np.arange(2))
    expected = s2s.loss(inputs, lengths, targets[:, :-1], targets[:, 1:], np.array([3, 2])).item()
    assert Seq2SeqTask(max_len=5).loss(s2s, batch).item() == expected
    other_pad = batch._replace(targets=np.array([[2, 4, 5, 3], [2, 6, 3, 7]]))
    assert Seq2SeqTask(max_len=5).loss(s2s, other_pad).item() == expected


@pytest.mark.skipif(not HAVE_MPL, reason="needs matplotlib")
def test_plotting_keeps_a_backend_someone_else_chose():
    """A notebook's inline figures keep showing after a library plot: the file-only backend is
    chosen only when no backend was chosen before (here: pyplot already imported with 'svg')."""
    script = (
        "import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot\n"
        "from tinygrad_rnn.plotting import require_matplotlib; require_matplotlib()\n"
        "print(matplotlib.get_backend())"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "svg"
    fresh = subprocess.run(
        [
            sys.executable,
            "-c",
            "import matplotlib\nfrom tinygrad_rnn.plotting import "
            "require_matplotlib; require_matplotlib(); print(matplotlib.get_backend())",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert fresh.stdout.strip().lower() == "agg"


def test_evaluate_restores_every_modules_mode():
    """A model in train mode with one submodule in eval mode on purpose (a frozen part) comes back
    exactly so, not with every submodule switched to the top level's mode."""
    from tinygrad_rnn.models import Seq2Seq

    model = Seq2Seq(6, 7, 4, 5, dropout=0.5)
    model.train()
    model.encoder.eval()
    before = [(name, m.training) for name, m in model.named_modules()]
    seen = []

    class Spy:
        def evaluate(self, m, batches):
            seen.append([x.training for x in m.modules()])
            return {}

    tg.train.evaluate(model, Spy(), [])
    assert seen == [[False] * len(seen[0])]  # all in eval mode while scoring
    after = [(name, m.training) for name, m in model.named_modules()]
    assert after == before and not model.encoder.training and model.training
