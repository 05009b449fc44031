"""A vocabulary: the table between tokens (characters, words, tags, syllables) and integer ids.

An RNN never sees text, only ids: ``x_t`` is row ``id_t`` of the embedding matrix. Four special
tokens come first, in this order, so their ids are the same in every vocabulary:

====  =========  ==========================================================
 id    token      used for
====  =========  ==========================================================
 0     ``<pad>``  filling short sequences up to the batch's length ``T``
 1     ``<unk>``  any token not in the vocabulary (rare, or unseen in training)
 2     ``<bos>``  "begin of sequence": the decoder's first input
 3     ``<eos>``  "end of sequence": the decoder says it is done
====  =========  ==========================================================

The ordinary tokens follow, most frequent first (ties broken by the token itself), so building
twice from the same data gives the same ids.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable, Sequence

from ..files import atomic_write

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
_FORMAT = "tinygrad_rnn.vocab"


class Vocab:
    """Token ↔ id table with the specials ``<pad>``=0, ``<unk>``=1, ``<bos>``=2, ``<eos>``=3.

    ``Vocab(tokens)`` takes the ordinary tokens in id order (ids 4, 5, …); usually you call
    :meth:`Vocab.build` instead, which counts tokens and keeps those seen ``min_freq`` times.
    """

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str] = ()):
        self._itos: list[str] = list(SPECIALS)
        self._stoi: dict[str, int] = {tok: i for i, tok in enumerate(SPECIALS)}
        for tok in tokens:
            if not isinstance(tok, str):
                raise TypeError(f"vocabulary tokens must be str, got {tok!r} ({type(tok).__name__})")
            if tok in self._stoi:
                raise ValueError(f"token {tok!r} appears twice (or is a special token)")
            self._stoi[tok] = len(self._itos)
            self._itos.append(tok)

    @classmethod
    def build(
        cls, sequences: Iterable[Iterable[str]], min_freq: int = 1, max_size: int | None = None
    ) -> "Vocab":
        """Count the tokens of ``sequences`` and keep those seen at least ``min_freq`` times.

        Order: by frequency, highest first, then by the token (so ids are deterministic).
        ``max_size`` caps the number of ordinary tokens (the specials come on top). A string is a
        sequence of characters, so ``Vocab.build(["我很好", ...])`` is a character vocabulary.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        for special in SPECIALS:  # a literal "<pad>" in the data is not a new token
            counts.pop(special, None)
        kept = sorted(
            (tok for tok, c in counts.items() if c >= min_freq), key=lambda tok: (-counts[tok], tok)
        )
        return cls(kept[:max_size] if max_size is not None else kept)

    # --- the table --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token) -> bool:
        return token in self._stoi

    def __iter__(self):
        return iter(self._itos)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self._itos == other._itos

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, first={self._itos[len(SPECIALS) : len(SPECIALS) + 5]})"

    @property
    def itos(self) -> list[str]:
        """All tokens in id order, specials included (a copy)."""
        return list(self._itos)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; ``unk_id`` when it is not in the vocabulary."""
        return self._stoi.get(token, self.unk_id)

    def id_to_token(self, idx: int) -> str:
        """The token with id ``idx``; IndexError names the vocabulary size when out of range."""
        i = int(idx)
        if not 0 <= i < len(self._itos):
            raise IndexError(f"token id {idx} is out of range for a vocabulary of size {len(self)}")
        return self._itos[i]

    __getitem__ = token_to_id

    # --- sequences --------------------------------------------------------------------------
    def encode(self, tokens: Iterable[str], add_bos: bool = False, add_eos: bool = False) -> list[int]:
        """Tokens → ids (unknown tokens → ``unk_id``), optionally wrapped in ``<bos>`` … ``<eos>``."""
        ids = [self._stoi.get(tok, self.unk_id) for tok in tokens]
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int], strip_specials: bool = True, stop_at_eos: bool = False) -> list[str]:
        """Ids → tokens.

        ``strip_specials`` drops ``<pad>``, ``<bos>`` and ``<eos>`` (``<unk>`` stays: it stands
        for a real token). ``stop_at_eos`` ends the output at the first ``<eos>``, which is
        what a decoder's output means (anything after it is noise).
        """
        out = []
        for i in ids:
            i = int(i)
            if stop_at_eos and i == self.eos_id:
                break
            if strip_specials and i in (self.pad_id, self.bos_id, self.eos_id):
                continue
            out.append(self.id_to_token(i))
        return out

    # --- saving -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "tokens": list(self._itos)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"not a saved tinygrad_rnn vocabulary (expected format {_FORMAT!r})")
        tokens = d.get("tokens")
        if not isinstance(tokens, list) or tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a saved vocabulary must start with the specials {list(SPECIALS)}")
        return cls(tokens[len(SPECIALS) :])

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as UTF-8 JSON (Chinese stays readable: ``ensure_ascii=False``),
        atomically: a crash never leaves half a vocabulary behind."""
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=0)
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """Read a vocabulary written by :meth:`save`; a broken file gives a ValueError naming it."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{os.fspath(path)}: not a valid vocabulary JSON file ({e})") from None
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from None


def encode_all(
    vocab: Vocab, sequences: Iterable[Sequence[str]], add_bos: bool = False, add_eos: bool = False
) -> list[list[int]]:
    """:meth:`Vocab.encode` for every sequence."""
    return [vocab.encode(seq, add_bos=add_bos, add_eos=add_eos) for seq in sequences]
