"""Baselines without a network: what a trained RNN has to beat to have learnt anything.

Each baseline is fitted on the training split and scored on another split, with the same
metrics as :mod:`tinygrad_rnn.train`:

* :func:`majority_class` — always answer the most frequent training label (reviews);
* :func:`most_frequent_tag` — tag each word with the tag it had most often in training, unseen
  words with the most frequent tag overall (part-of-speech tagging);
* :func:`per_token_lookup` — translate token by token with the most frequent training output
  of each input token (pinyin: each character's most common reading). It only works when output
  i belongs to input i, which is exactly why it is strong on pinyin — and says how much of the
  pinyin task is a dictionary lookup rather than sequence modelling.

:func:`baseline_for` picks the one that fits a data set of the command line.
"""

from __future__ import annotations

from collections import Counter, defaultdict


def majority_class(train_labels, test_labels) -> dict:
    """Accuracy of always predicting the most frequent training label."""
    label, _ = Counter(train_labels).most_common(1)[0]
    return {"accuracy": sum(y == label for y in test_labels) / len(test_labels), "label": label}


def _most_frequent_map(pairs):
    """{input token: its most frequent output token} and the most frequent output overall."""
    counts: dict = defaultdict(Counter)
    overall: Counter = Counter()
    for src, tgt in pairs:
        for a, b in zip(src, tgt):
            counts[a][b] += 1
            overall[b] += 1
    # Ties go to the output seen first (Counter.most_common keeps insertion order).
    return {a: c.most_common(1)[0][0] for a, c in counts.items()}, overall.most_common(1)[0][0]


def most_frequent_tag(train, test) -> dict:
    """Token accuracy of tagging each word with its most frequent training tag.

    ``train``/``test``: lists of ``(words, tags)``. Unseen words get the most frequent tag.
    """
    table, fallback = _most_frequent_map(train)
    correct = total = 0
    for words, tags in test:
        correct += sum(table.get(w, fallback) == t for w, t in zip(words, tags))
        total += len(tags)
    return {"accuracy": correct / total}


def per_token_lookup(train, test) -> dict:
    """Exact match and token accuracy of translating token i to token i by a lookup table.

    ``train``/``test``: lists of ``(source tokens, target tokens)`` of equal lengths (pinyin:
    one syllable per character). Unseen tokens get the most frequent output token.
    """
    table, fallback = _most_frequent_map(train)
    exact = correct = total = 0
    for src, tgt in test:
        out = [table.get(a, fallback) for a in src]
        exact += out == list(tgt)
        correct += sum(a == b for a, b in zip(out, tgt))
        total += len(tgt)
    return {"exact_match": exact / len(test), "token_accuracy": correct / total}


def baseline_for(dataset: str, train, test) -> dict | None:
    """The baseline of a data set (name and scores), fitted on ``train`` and scored on ``test``;
    None for the numerals, which have no meaningful baseline without learning."""
    if dataset == "reviews":
        return {"name": "majority class", **majority_class([y for _, y in train], [y for _, y in test])}
    if dataset == "peoples-daily":
        return {"name": "most frequent tag per word", **most_frequent_tag(train, test)}
    if dataset == "pinyin":
        return {"name": "per-character lookup", **per_token_lookup(train, test)}
    return None
