"""Chinese numerals ↔ digits: a generated, genuinely asynchronous sequence → sequence task.

``12003`` ↔ ``一万二千零三``: the input and output lengths differ, and an output token depends on
the whole input (is there a 万? how many zeros follow?), so the model must read everything
before it writes: the encoder–decoder of the chapter we follow (docs/chapter.md, section 4).

The standard form, for 0 ≤ n ≤ 99,999,999, with exactly these rules:

* simplified characters, ``二`` (never ``两``), units ``十 百 千 万``;
* a number is split into 万-groups: ``n = high·10⁴ + low``, each group 0..9999 written as
  digit+unit pairs (``三千二百``);
* one ``零`` stands for any run of zeros *between* non-zero digits of a group
  (``一百零五`` = 105, ``一千零一十`` = 1010); trailing zeros are silent (``一千`` = 1000);
* ``零`` after ``万`` when the low group is 1–999 (``十二万零三`` = 120,003,
  ``一万零一十`` = 10,010), none when it is ≥ 1000 (``一百万一千`` = 1,001,000);
* ``十`` instead of ``一十`` only at the very start (``十五``, ``十万``), elsewhere ``一十``
  (``一百一十``, ``一万零一十``).

:func:`to_chinese` writes that form; :func:`parse_chinese` reads it with a different algorithm
(a left-to-right scan with running totals), so a round-trip test checks one against the other.
"""

from __future__ import annotations

import numpy as np

DIGIT_CHARS = "零一二三四五六七八九"
MAX_NUMBER = 99_999_999
_UNITS = ((1000, "千"), (100, "百"), (10, "十"), (1, ""))


def _group(n: int) -> str:
    """1 ≤ n ≤ 9999 as digit+unit pairs, one 零 for any run of zeros between non-zero digits."""
    out: list[str] = []
    pending_zero = False
    for value, unit in _UNITS:
        d = n // value % 10
        if d == 0:
            pending_zero = bool(out)  # only a zero *after* a non-zero digit counts
            continue
        if pending_zero:
            out.append("零")
            pending_zero = False
        out.append(DIGIT_CHARS[d] + unit)
    return "".join(out)


def to_chinese(n: int) -> str:
    """The standard Chinese numeral of ``n`` (0 ≤ n ≤ 99,999,999), e.g. 120003 → ``十二万零三``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"to_chinese needs an int, got {n!r}")
    n = int(n)
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"to_chinese covers 0..{MAX_NUMBER:,}, got {n:,}")
    if n == 0:
        return "零"
    high, low = divmod(n, 10_000)
    s = ""
    if high:
        s = _group(high) + "万"
        if 0 < low < 1000:
            s += "零"
    if low:
        s += _group(low)
    # 十 rather than 一十, but only at the very start (十五, 十万; still 一百一十).
    return s[1:] if s.startswith("一十") else s


_DIGIT_VALUE = {c: i for i, c in enumerate(DIGIT_CHARS) if i}
_SMALL_UNIT = {"十": 10, "百": 100, "千": 1000}


def parse_chinese(s: str) -> int:
    """Read a standard Chinese numeral back to an int; ValueError unless ``s`` is in standard form.

    Independent of :func:`to_chinese`: one left-to-right scan keeping ``total`` (the finished 万
    group), ``group`` (finished digit×unit pairs of the current group) and ``digit`` (a digit
    still waiting for its unit). A unit multiplies the waiting digit into ``group``; ``万``
    multiplies the group by 10⁴; the end adds what is left. It also checks the standard form
    itself: units within a group go down (千 > 百 > 十 > ones), a skipped place needs exactly
    one ``零`` (and a ``零`` needs a skipped place), at most one ``万``, a bare ``十`` only at the
    very start and ``一十`` never there. So every string it accepts is exactly ``to_chinese`` of
    its value — a test checks that on random strings.
    """
    if not isinstance(s, str) or not s:
        raise ValueError(f"not a Chinese numeral: {s!r}")
    if s == "零":
        return 0
    total, group, digit = 0, 0, None
    last_unit = None  # the place value written last (None: nothing yet); 万 counts as 10⁴
    zero = False  # a 零 since the last place value
    seen_wan = False

    def place(unit: int, where: str) -> None:
        # Going from place ``last_unit`` down to ``unit`` skips places exactly when a 零 is due.
        if last_unit is not None:
            if unit >= last_unit:
                raise ValueError(f"place values must go down in {where}")
            skipped = last_unit // unit > 10
            if skipped != zero:
                raise ValueError(f"{'missing' if skipped else 'superfluous'} 零 in {where}")

    for i, ch in enumerate(s):
        where = f"{s!r} at position {i} ({ch!r})"
        if ch in _DIGIT_VALUE:
            if digit is not None:
                raise ValueError(f"two digits in a row in {where}")
            digit = _DIGIT_VALUE[ch]
        elif ch == "零":
            if digit is not None or zero or last_unit is None or s[i + 1 : i + 2] not in _DIGIT_VALUE:
                raise ValueError(f"misplaced 零 in {where}")
            zero = True
        elif ch in _SMALL_UNIT:
            unit = _SMALL_UNIT[ch]
            if digit is None:
                if not (ch == "十" and i == 0):  # a bare 十 only opens the numeral
                    raise ValueError(f"unit without a digit in {where}")
                digit = 1
            elif ch == "十" and digit == 1 and i == 1:
                raise ValueError(f"write 十, not 一十, at the start: {where}")
            place(unit, where)
            group += digit * unit
            digit, last_unit, zero = None, unit, False
        elif ch == "万":
            if seen_wan or digit is None and group == 0:
                raise ValueError(f"misplaced 万 in {where}")
            if digit is not None:
                place(1, where)
            total = (group + (digit or 0)) * 10_000
            group, digit, last_unit, zero, seen_wan = 0, None, 10_000, False, True
        else:
            raise ValueError(f"unexpected character in {where}")
    if digit is not None:  # the ones digit has no unit character
        place(1, f"{s!r} at its end")
    return total + group + (digit or 0)


# --- the data set ------------------------------------------------------------------------------
def sample_numbers(count: int, *, seed: int = 0, max_digits: int = 8) -> list[int]:
    """``count`` distinct integers; each draw picks a digit count uniformly from 1..max_digits,
    then a number uniformly among those with that many digits (1 digit: 0–9).

    Short numbers are few (10 with one digit, 90 with two), so duplicates are redrawn; once a
    length is used up its draws all repeat and the longer lengths fill in. Returned in draw order.
    """
    if not 1 <= max_digits <= 8:
        raise ValueError(f"max_digits must be in 1..8, got {max_digits}")
    capacity = 10**max_digits
    if not 0 <= count <= capacity:
        raise ValueError(f"cannot draw {count:,} distinct numbers with at most {max_digits} digits")
    rng = np.random.default_rng(seed)
    seen: dict[int, None] = {}  # a dict keeps the draw order
    while len(seen) < count:
        need = count - len(seen)
        digits = rng.integers(1, max_digits + 1, size=2 * need + 16)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        values = rng.integers(low, 10**digits)  # per-draw bounds, upper exclusive
        for v in values.tolist():
            if v not in seen:
                seen[v] = None
                if len(seen) == count:
                    break
    return list(seen)


def numeral_splits(
    n_train: int = 50_000, n_dev: int = 5_000, n_test: int = 5_000, *, seed: int = 0, max_digits: int = 8
) -> tuple[list[int], list[int], list[int]]:
    """Disjoint train / dev / test numbers (see :func:`sample_numbers`), seeded.

    All numbers are drawn first and then shuffled before cutting, so the few short numbers land
    in every split in proportion (drawing order would put them all in train).
    """
    numbers = sample_numbers(n_train + n_dev + n_test, seed=seed, max_digits=max_digits)
    order = np.random.default_rng([seed, 1]).permutation(len(numbers))
    numbers = [numbers[i] for i in order]
    return (numbers[:n_train], numbers[n_train : n_train + n_dev], numbers[n_train + n_dev :])


DIRECTIONS = ("to_digits", "to_chinese")


def numeral_pairs(numbers, direction: str = "to_digits") -> list[tuple[list[str], list[str]]]:
    """``(source tokens, target tokens)`` per number; tokens are single characters.

    ``direction="to_digits"``: ``一万零一十`` → ``10010``; ``"to_chinese"``: the reverse.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    pairs = []
    for n in numbers:
        zh, digits = list(to_chinese(n)), list(str(int(n)))
        pairs.append((zh, digits) if direction == "to_digits" else (digits, zh))
    return pairs


def load_numerals(
    direction: str = "to_digits",
    n_train: int = 50_000,
    n_dev: int = 5_000,
    n_test: int = 5_000,
    *,
    seed: int = 0,
):
    """Train / dev / test lists of ``(source tokens, target tokens)`` for the numeral task."""
    return tuple(numeral_pairs(part, direction) for part in numeral_splits(n_train, n_dev, n_test, seed=seed))
