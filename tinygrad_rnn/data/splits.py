"""The train / dev / test splits of the data sets the command line trains on (80 / 10 / 10).

The split depends only on the data set and its options, never on the run's ``--seed`` (that seeds
the weights and the batch order), so every run on a data set sees the same test examples, and
``evaluate`` rebuilds exactly the split a run was trained on.
"""

from __future__ import annotations

import functools

from .batching import train_dev_test_split
from .numerals import load_numerals
from .sources import load_peoples_daily, load_pinyin, load_reviews

DATASETS = ("reviews", "peoples-daily", "numerals", "pinyin")
SPLIT_SEED = 0


def dataset_splits(
    name: str, *, limit: int | None = None, max_len: int | None = None, direction: str = "to_digits"
) -> tuple[list, list, list]:
    """Train / dev / test lists of ``(input tokens, target)`` for the data set ``name``.

    ``limit``: about ``limit`` examples in all (80 % / 10 % / 10 %, at least one each);
    ``max_len``: reviews keep their first ``max_len`` characters; ``direction``: numerals
    ``to_digits`` or ``to_chinese``.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    sizes = None if limit is None else (max(1, limit * 8 // 10), max(1, limit // 10), max(1, limit // 10))
    if name == "numerals":
        return load_numerals(direction, *(sizes or (50_000, 5_000, 5_000)), seed=SPLIT_SEED)
    examples = _load_examples(name, max_len)
    # The key is the input alone: the same text never lands in two splits.
    train, dev, test = train_dev_test_split(examples, seed=SPLIT_SEED, key=lambda ex: tuple(ex[0]))
    if sizes is not None:  # the splits are shuffled, so their starts are random samples
        train, dev, test = train[: sizes[0]], dev[: sizes[1]], test[: sizes[2]]
    return train, dev, test


@functools.lru_cache(maxsize=4)
def _load_examples(name: str, max_len):
    """The whole data set, read once per process (evaluate after train, tests)."""
    if name == "reviews":
        return load_reviews(max_len)
    return load_peoples_daily() if name == "peoples-daily" else load_pinyin()
