"""Chinese numerals: the converter against hand-checked forms and against the independent parser."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_rnn.data.numerals import (
    MAX_NUMBER,
    load_numerals,
    numeral_pairs,
    numeral_splits,
    parse_chinese,
    sample_numbers,
    to_chinese,
)

# Checked by hand against the rules of the issue (and ordinary usage).
HAND_CHECKED = {
    0: "零",
    7: "七",
    10: "十",
    15: "十五",
    20: "二十",
    22: "二十二",
    100: "一百",
    105: "一百零五",
    110: "一百一十",
    200: "二百",
    1000: "一千",
    1001: "一千零一",
    1010: "一千零一十",
    1100: "一千一百",
    2002: "二千零二",
    10_000: "一万",
    10_010: "一万零一十",
    11_000: "一万一千",
    20_000: "二万",
    100_000: "十万",
    120_003: "十二万零三",
    150_000: "十五万",
    1_001_000: "一百万一千",
    1_000_100: "一百万零一百",
    10_000_001: "一千万零一",
    10_100_000: "一千零一十万",
    10_001_000: "一千万一千",
    20_000_002: "二千万零二",
    99_999_999: "九千九百九十九万九千九百九十九",
}
TRICKY = [
    0,
    1,
    9,
    10,
    11,
    15,
    19,
    20,
    99,
    100,
    101,
    105,
    110,
    111,
    999,
    1000,
    1001,
    1010,
    1011,
    1100,
    9999,
    10_000,
    10_001,
    10_010,
    10_100,
    10_101,
    11_000,
    20_000,
    99_999,
    100_000,
    100_001,
    101_000,
    110_000,
    120_003,
    1_000_000,
    1_001_000,
    1_000_999,
    10_000_000,
    10_000_001,
    10_010_000,
    99_999_999,
]


@pytest.mark.parametrize("n,expected", sorted(HAND_CHECKED.items()))
def test_hand_checked_forms(n, expected):
    assert to_chinese(n) == expected
    assert parse_chinese(expected) == n


def test_round_trip_tricky_and_dense():
    # Every number below 20,000 (all the zero patterns of one 万-group and of 1万..1万9999),
    # plus the tricky ones: parse(to_chinese(n)) == n.
    for n in [*range(20_000), *TRICKY]:
        s = to_chinese(n)
        assert parse_chinese(s) == n, f"{n} -> {s!r} -> {parse_chinese(s)}"


@given(st.integers(0, MAX_NUMBER))
def test_round_trip_hypothesis(n):
    s = to_chinese(n)
    assert parse_chinese(s) == n, f"{n} -> {s!r}"
    assert "两" not in s and not s.startswith("一十") and "零零" not in s


@settings(max_examples=300)
@given(st.text(alphabet="零一二三四五六七八九十百千万", min_size=1, max_size=9))
def test_parser_accepts_only_the_standard_form(s):
    # Whatever the parser accepts must be exactly the converter's output for that value.
    try:
        n = parse_chinese(s)
    except ValueError:
        return
    assert to_chinese(n) == s, f"parser accepted non-standard {s!r} as {n}"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "两",
        "一十五",
        "一百一",
        "三万五",
        "十万一百",
        "一千一十",
        "一百零一十",
        "零零",
        "一零",
        "十万零",
        "万",
        "一万万",
        "四千零万",
        "百",
        "一二",
        "5",
    ],
)
def test_parser_rejects_malformed(bad):
    with pytest.raises(ValueError):
        parse_chinese(bad)


@pytest.mark.parametrize("bad", [-1, MAX_NUMBER + 1])
def test_converter_range(bad):
    with pytest.raises(ValueError, match="0..99,999,999"):
        to_chinese(bad)


def test_converter_type():
    with pytest.raises(TypeError):
        to_chinese(1.5)
    assert to_chinese(np.int64(105)) == "一百零五"


def test_splits_disjoint_seeded_and_length_uniform():
    train, dev, test = numeral_splits(5_000, 500, 500, seed=3)
    assert (len(train), len(dev), len(test)) == (5_000, 500, 500)
    all_numbers = train + dev + test
    assert len(set(all_numbers)) == 6_000, "splits must hold distinct numbers"
    assert all(0 <= n <= MAX_NUMBER for n in all_numbers)
    assert numeral_splits(5_000, 500, 500, seed=3) == (train, dev, test)
    assert numeral_splits(5_000, 500, 500, seed=4) != (train, dev, test)
    # The digit count is uniform over draws: 1- and 2-digit numbers (10 and 90 of them) are
    # used up by their ~1/8 of the draws, 5..8 digits (no repeats) come out about equally often.
    counts = np.bincount([len(str(n)) for n in all_numbers], minlength=9)
    assert counts[1] == 10 and counts[2] == 90, counts
    long = counts[5:9]
    assert np.all(np.abs(long / long.mean() - 1) < 0.15), f"5..8-digit counts {long} not uniform"
    assert counts[3] < 900 and counts[4] < long.min(), counts


def test_sample_numbers_exhausts_small_ranges():
    numbers = sample_numbers(100, seed=0, max_digits=2)  # all of 0..99
    assert sorted(numbers) == list(range(100))
    with pytest.raises(ValueError, match="distinct"):
        sample_numbers(101, max_digits=2)


def test_pairs_both_directions():
    to_digits = numeral_pairs([120_003, 15], "to_digits")
    assert to_digits == [(list("十二万零三"), list("120003")), (list("十五"), list("15"))]
    to_zh = numeral_pairs([120_003], "to_chinese")
    assert to_zh == [(list("120003"), list("十二万零三"))]
    with pytest.raises(ValueError, match="direction"):
        numeral_pairs([1], "sideways")
    train, dev, test = load_numerals("to_chinese", 50, 5, 5, seed=1)
    assert (len(train), len(dev), len(test)) == (50, 5, 5)
    assert all(to_chinese(int("".join(src))) == "".join(tgt) for src, tgt in train)


def test_generate_on_an_empty_batch_gives_empty_results_in_every_mode():
    from tinygrad_rnn.models import Seq2Seq

    src, lengths = np.zeros((0, 3), dtype=np.int64), np.zeros((0,), dtype=np.int64)
    for attention in (None, "additive"):
        model = Seq2Seq(6, 7, 4, 5, attention=attention, rng=np.random.default_rng(0))
        for beam in (1, 3):
            assert model.generate(src, lengths, 5, 2, 3, beam_size=beam) == []
            tokens, scores = model.generate(src, lengths, 5, 2, 3, beam_size=beam, return_scores=True)
            assert tokens == [] and scores.shape == (0,)
            if attention:
                *_, alpha = model.generate(src, lengths, 5, 2, 3, beam_size=beam, return_attention=True)
                assert alpha.shape == (0, 5, 3)


def test_the_beam_is_bounded():
    from tinygrad_rnn.models import Seq2Seq
    from tinygrad_rnn.models.seq2seq import MAX_BEAM_SIZE

    model = Seq2Seq(6, 7, 4, 5, rng=np.random.default_rng(0))
    src, lengths = np.array([[4, 5]]), np.array([2])
    with pytest.raises(ValueError, match=f"beam_size must be at most {MAX_BEAM_SIZE}, got 100000"):
        model.generate(src, lengths, 5, 2, 3, beam_size=100_000)
    assert len(model.generate(src, lengths, 5, 2, 3, beam_size=MAX_BEAM_SIZE)) == 1
