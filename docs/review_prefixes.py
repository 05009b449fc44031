"""The chapter's review read by the four full-data review classifiers in ``models/reviews/``,
one character at a time: P(negative) after every prefix, in one figure.

    python docs/review_prefixes.py            # (make review-figure) writes docs/img/review-prefixes.png

It also prints what docs/results.md quotes: P(negative) after each clause of the review, what each
model says after reading its first ``max_len`` = 100 characters against all 114, and each model's
accuracy on the test reviews longer than 100 characters, reading their first 100 against all of
them (the evidence for what ``predict`` does with a text longer than the run's ``max_len``).
Needs the ``data`` and ``plot`` extras; about half a minute on one core.
"""

from __future__ import annotations

import json
import logging
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the checkout's tinygrad_rnn

from tinygrad_rnn.data import load_reviews, pad_sequences, train_dev_test_split  # noqa: E402
from tinygrad_rnn.data.splits import SPLIT_SEED  # noqa: E402
from tinygrad_rnn.models.prefixes import CHAPTER_REVIEW, clause_ends, prefix_probabilities  # noqa: E402
from tinygrad_rnn.plotting.prefixes import draw_prefixes  # noqa: E402
from tinygrad_rnn.runs import LABELS, load_run, load_splits  # noqa: E402
from tinygrad_rnn.threads import set_blas_threads  # noqa: E402

MODELS = {
    "vanilla, last state": "rnn-last",
    "vanilla, mean of states": "rnn-mean",
    "LSTM, last state": "lstm-last",
    "GRU, last state": "gru-last",
}
FIGURE = os.path.join(ROOT, "docs", "img", "review-prefixes.png")
NEGATIVE = LABELS.index("negative")


def load_models():
    """label → (config, model, vocabulary, test accuracy) of each shipped classifier."""
    loaded = {}
    for label, name in MODELS.items():
        directory = os.path.join(ROOT, "models", "reviews", name)
        config, model, vocab, _ = load_run(directory, "cpu")
        with open(os.path.join(directory, "metrics.json"), encoding="utf-8") as f:
            loaded[label] = config, model, vocab, json.load(f)["test"]["accuracy"]
    return loaded


def long_test_reviews(max_len: int):
    """The test reviews (of the split every run was trained with) longer than ``max_len``, whole.

    The split is made on the reviews cut at ``max_len`` (two reviews equal once cut are one), so it
    is made here the same way, carrying each review's index to find its full text again."""
    full = load_reviews(None)
    cut = [(text[:max_len], label, i) for i, (text, label) in enumerate(full)]
    _, _, test = train_dev_test_split(cut, seed=SPLIT_SEED, key=lambda ex: tuple(ex[0]))
    return [(full[i][0], label) for _, label, i in test if len(full[i][0]) > max_len]


def accuracy(model, vocab, reviews, cut, batch_size: int = 32) -> float:
    """Accuracy of ``model`` on ``reviews`` reading the first ``cut`` characters (None: all), in
    padded batches of reviews of similar length (the padding is masked: the same answers as one
    review at a time)."""
    texts = sorted(((text[:cut], label) for text, label in reviews), key=lambda ex: len(ex[0]))
    right = 0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        ids, lengths = pad_sequences([vocab.encode(text) for text, _ in chunk])
        labels, _ = model.predict(ids, lengths)
        right += sum(int(predicted == label) for predicted, (_, label) in zip(labels, chunk))
    return right / len(reviews)


def main() -> int:
    set_blas_threads(1)
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    models = load_models()
    tokens = list(CHAPTER_REVIEW)
    curves = {}
    for label, (config, model, vocab, _) in models.items():
        curves[label] = prefix_probabilities(model, vocab.encode(tokens))[:, NEGATIVE]
    max_len = {config["max_len"] for config, *_ in models.values()}
    assert len(max_len) == 1, max_len
    max_len = max_len.pop()

    ends = clause_ends(CHAPTER_REVIEW)
    starts = [0] + ends[:-1]
    print(
        f"P(negative) after each clause of the chapter's review ({len(tokens)} characters; "
        f"the runs were trained on the first {max_len} of each review):"
    )
    print(f"{'t':>4}  {'clause':<22}" + "".join(f"{name:>10}" for name in MODELS.values()))
    for start, end in zip(starts, ends):
        clause = CHAPTER_REVIEW[start:end]
        shown = clause if len(clause) <= 10 else clause[:9] + "…"
        print(
            f"{end:>4}  {shown:<{22 - len(shown)}}" + "".join(f"{curves[k][end - 1]:>10.3f}" for k in MODELS)
        )
    print(f"{max_len:>4}  {'(max_len)':<22}" + "".join(f"{curves[k][max_len - 1]:>10.3f}" for k in MODELS))
    print(
        f"{'':>4}  {'highest after 但是':<20}"
        + "".join(f"{curves[k][ends[3] :].max():>10.3f}" for k in MODELS)
    )
    complaints = list(CHAPTER_REVIEW[ends[3] :])
    alone = {
        label: prefix_probabilities(model, vocab.encode(complaints))[:, NEGATIVE]
        for label, (_, model, vocab, _) in models.items()
    }
    print(f"the complaints alone, from 但是 on ({len(complaints)} characters), after each clause:")
    for start, end in zip(starts[4:], ends[4:]):
        clause = CHAPTER_REVIEW[start:end]
        shown = clause if len(clause) <= 10 else clause[:9] + "…"
        print(
            f"{end - ends[3]:>4}  {shown:<{22 - len(shown)}}"
            + "".join(f"{alone[k][end - ends[3] - 1]:>10.3f}" for k in MODELS)
        )

    train, _, _ = load_splits(next(iter(models.values()))[0])
    but = [label for text, label in train if "但是" in "".join(text)]
    praise_but = [
        label for text, label in train if "但是" in "".join(text) and "不错" in "".join(text).split("但是")[0]
    ]
    print(
        f"\ntraining reviews (their first {max_len} characters) with 但是: {len(but)}, "
        f"{sum(y == NEGATIVE for y in but) / len(but):.0%} negative; "
        "with 不错 ('good') before the first 但是: "
        f"{len(praise_but)}, {sum(y == NEGATIVE for y in praise_but) / len(praise_but):.0%} negative"
    )

    long_reviews = long_test_reviews(max_len)
    print(
        f"\ntest reviews longer than {max_len} characters: {len(long_reviews)} "
        f"({sum(y == NEGATIVE for _, y in long_reviews)} negative); accuracy reading"
    )
    print(f"{'':>26}{'the first ' + str(max_len):>16}{'all of it':>12}")
    for label, (config, model, vocab, _) in models.items():
        first, whole = (
            accuracy(model, vocab, long_reviews, max_len),
            accuracy(model, vocab, long_reviews, None),
        )
        print(f"{label:>26}{first:>16.1%}{whole:>12.1%}")

    from tinygrad_rnn.plotting import require_matplotlib

    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(16, 4.6), dpi=110)
    note = draw_prefixes(
        ax,
        tokens,
        {f"{label} (test {models[label][3]:.1%})": c for label, c in curves.items()},
        ylabel="P(negative)",
    )
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.155, 0.3))  # over the praise's low stretch
    ax.axvline(ends[3] + 0.5, color="black", linewidth=0.8)
    ax.axvline(max_len + 0.5, color="grey", linewidth=0.8, linestyle="--")
    ax.set_title(
        f"The chapter's review, read by the full-data classifiers: P(negative) after every prefix "
        f"(black: 但是 'but' begins; dashed: the {max_len} characters of training)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(FIGURE)
    print(f"\nwrote {os.path.relpath(FIGURE, ROOT)}" + (f"\nnote: {note}" if note else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
