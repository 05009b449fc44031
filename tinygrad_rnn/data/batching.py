"""From lists of token ids to padded batches, and from one data set to train/dev/test splits.

An RNN runs a whole batch in lock-step, t = 1..T, so a batch of sequences of different lengths
is one ``(B, T)`` array of ids, the short rows filled with ``<pad>`` (id 0), plus the true
``lengths`` ``(B,)``: the model must ignore the padded steps (the state keeps h, the loss skips
them). Everything here produces NumPy arrays and plain lists; the trainer wraps them in Tensors.

Padding is wasted work: a batch costs ``B × max(length)`` steps. *Length bucketing* puts
sequences of similar length together — sort by length within chunks of many batches, cut the
chunk into batches, shuffle the batches — so batches stay random but padding stays small.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Iterator, NamedTuple, Sequence

import numpy as np


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_id: int = 0, max_len: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pad id lists to one array: ``ids`` int64 ``(B, T)`` with ``T = max length``, ``lengths`` int64
    ``(B,)``.

    ``ids[b, t]`` is the t-th token of sequence b for ``t < lengths[b]`` and ``pad_id`` after.
    ``max_len`` truncates longer sequences (their ``lengths`` say the truncated length).
    """
    if len(sequences) == 0:
        raise ValueError("pad_sequences got no sequences (an empty batch)")
    if max_len is not None and max_len < 0:
        raise ValueError(f"max_len must be >= 0 or None, got {max_len}")
    rows = []
    for b, seq in enumerate(sequences):
        row = np.asarray(seq).reshape(-1)
        if row.size and row.dtype.kind not in "iu":  # 1.7 must not silently become id 1
            raise TypeError(f"sequence {b} holds {row.dtype} values; token ids must be integers")
        rows.append(row.astype(np.int64))
    if max_len is not None:
        rows = [row[:max_len] for row in rows]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    ids = np.full((len(rows), int(lengths.max())), pad_id, dtype=np.int64)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = row
    return ids, lengths


def batch_indices(
    lengths: Sequence[int] | np.ndarray | int,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | np.random.SeedSequence | None = 0,
    bucket: bool = False,
    bucket_chunk: int = 50,
) -> list[np.ndarray]:
    """Split example indices ``0..N-1`` into batches; every index appears in exactly one batch.

    ``lengths``: the length of every example (or just ``N`` when ``bucket`` is off).
    ``shuffle``: a random order drawn from ``seed`` (same seed → same batches).
    ``bucket``: sort by length within chunks of ``bucket_chunk`` batches, so each batch holds
    sequences of similar length; with ``shuffle`` the batches are then shuffled, so the model
    does not see all short batches first. The last batch may be smaller: nothing is dropped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if bucket_chunk < 1:
        raise ValueError(f"bucket_chunk must be >= 1, got {bucket_chunk}")
    if isinstance(lengths, (int, np.integer)):
        if bucket:
            raise ValueError("bucket=True needs the length of every example, not just their number")
        n, lens = int(lengths), None
    else:
        lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
        n = len(lens)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n) if shuffle else np.arange(n)
    if not bucket:
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]

    assert lens is not None  # a bare count with bucket=True was refused above
    chunk = batch_size * bucket_chunk
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = order[start : start + chunk]
        # A stable sort keeps the shuffled order among equal lengths.
        part = part[np.argsort(lens[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


class Batch(NamedTuple):
    """One padded batch. ``targets`` is ``(B,)`` for one label per example (``target_lengths``
    is then None) or ``(B, T_out)`` padded with ``target_lengths`` for sequence targets.
    ``indices`` are the examples' positions in the data set (to put predictions back in order),
    None for texts that come from no data set (``predict`` on the command line)."""

    inputs: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray | None
    target_lengths: np.ndarray | None
    indices: np.ndarray | None


class BatchIterator:
    """Iterate over padded :class:`Batch` es of ``(inputs, targets)`` examples, epoch after epoch.

    ``inputs``: a list of id lists. ``targets``: None, a list of labels (ints), or a list of id
    lists (tags for a tagger, output tokens for a decoder). Every ``iter()`` is one epoch with
    its own order, drawn from ``(seed, epoch)``: the same seed gives the same epochs, and
    ``set_epoch(e)`` lets a resumed run continue exactly where it stopped.

    For token-id data. Dense float data (the adding problem) needs no padding: index its
    arrays with :func:`batch_indices` instead.
    """

    def __init__(
        self,
        inputs: Sequence[Sequence[int]],
        targets: Sequence[Any] | None = None,
        *,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        bucket: bool = False,
        bucket_chunk: int = 50,
        pad_id: int = 0,
        target_pad_id: int | None = None,
    ):
        if targets is not None and len(targets) != len(inputs):
            raise ValueError(f"inputs and targets differ in number: {len(inputs)} vs {len(targets)}")
        if len(inputs) == 0:
            raise ValueError("BatchIterator got an empty data set")
        self.inputs, self.targets = inputs, targets
        self.lengths = np.array([len(seq) for seq in inputs], dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.bucket, self.bucket_chunk = bucket, bucket_chunk
        self.pad_id = pad_id
        self.target_pad_id = pad_id if target_pad_id is None else target_pad_id
        self._sequence_targets = targets is not None and not np.isscalar(targets[0])
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The next ``iter()`` gives epoch ``epoch``'s order."""
        self.epoch = int(epoch)

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray]:
        """The index batches of one epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        # One generator per (seed, epoch): each epoch is reproducible on its own.
        seed = np.random.SeedSequence([self.seed, epoch]) if self.shuffle else None
        return batch_indices(
            self.lengths,
            self.batch_size,
            shuffle=self.shuffle,
            seed=seed,
            bucket=self.bucket,
            bucket_chunk=self.bucket_chunk,
        )

    def __len__(self) -> int:
        return -(-len(self.inputs) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        batches = self.batch_indices()
        self.epoch += 1
        for idx in batches:
            yield self.make_batch(idx)

    def make_batch(self, idx: np.ndarray) -> Batch:
        """Pad the examples ``idx`` into one :class:`Batch`."""
        ids, lengths = pad_sequences([self.inputs[i] for i in idx], self.pad_id)
        if self.targets is None:
            return Batch(ids, lengths, None, None, idx)
        if self._sequence_targets:
            tgt, tgt_lengths = pad_sequences([self.targets[i] for i in idx], self.target_pad_id)
            return Batch(ids, lengths, tgt, tgt_lengths, idx)
        return Batch(ids, lengths, np.asarray([self.targets[i] for i in idx]), None, idx)


def _hashable(item: Any) -> Hashable:
    """Lists (and lists inside tuples) become tuples so they can be dict keys."""
    if isinstance(item, (list, tuple)):
        return tuple(_hashable(x) for x in item)
    if isinstance(item, np.ndarray):
        return tuple(item.tolist())
    return item


def deduplicate(items: Sequence[Any], key: Callable[[Any], Hashable] | None = None) -> list[Any]:
    """Keep the first item of every ``key`` (default: the whole item; lists count as tuples)."""
    seen: set = set()
    out = []
    for item in items:
        k = _hashable(item if key is None else key(item))
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


def train_dev_test_split(
    items: Sequence[Any],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    key: Callable[[Any], Hashable] | None = None,
) -> tuple[list[Any], list[Any], list[Any]]:
    """Shuffle with ``seed`` and cut into train / dev / test; duplicates are removed first.

    Duplicates (same ``key``, by default the whole item; e.g. ``key=lambda ex: ex[0]`` for the
    text alone) would let a test example be seen in training, so only the first is kept and no
    key lands in two splits. Sizes: ``round(N·f_train)``, ``round(N·f_dev)``, the rest is test.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    unique = deduplicate(items, key)
    n = len(unique)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * fractions[0]))
    n_dev = min(int(round(n * fractions[1])), n - n_train)
    pick = lambda idx: [unique[i] for i in idx]
    return (pick(order[:n_train]), pick(order[n_train : n_train + n_dev]), pick(order[n_train + n_dev :]))
