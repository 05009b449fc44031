"""Hypothesis strategies for gradient checks: shapes, arrays kept away from kinks, ids, sequences.

Everything here draws *host* data (NumPy arrays, Python tuples); put it on a device with
``Tensor(array, device=...)``. Float arrays are float64, because gradient checks need it.

Finite differences go wrong near a kink or a pole: ``relu`` at 0, ``log`` and ``x ** -1`` near 0,
``a / b`` for ``b`` near 0, ``max`` where two values tie. The strategies keep values *bounded* and
*shifted away* from such points (``avoid=`` and ``min_abs=``), or *distinct* (for ``max``), so a
failing gradient check always means a wrong gradient, never an ill-posed finite difference.

Building blocks (each returns a strategy):

* shapes: :func:`shapes`, :func:`broadcastable_shapes`, :func:`axes`
* values: :func:`floats`, :func:`positive_floats`, :func:`nonzero_floats`, :func:`distinct_floats`,
  :func:`float_arrays` (shape drawn too)
* integers: :func:`id_arrays` (embedding ids, with repeats), :func:`lengths`
* sequences: :func:`token_sequences` (padded ids + lengths), :func:`float_sequences`
  (padded features + lengths), for the RNN tests

:func:`examples` scales a test's example budget with the active Hypothesis profile. The project's
own test suite draws all its inputs from here; :func:`tinygrad_rnn.testing.check_op` uses them
to check an op in one call.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT = np.float64

# The gap kept from a kink or a pole: far above the gradient check's eps (1e-6), so the central
# difference never straddles the kink, and the derivative stays moderate there.
GAP = 0.05


def examples(n: int) -> int:
    """``n`` examples under the ``ci`` profile (25 by default), proportionally more under ``dev``.

    Use as ``@settings(max_examples=examples(10))`` so expensive tests stay cheap in CI while
    ``HYPOTHESIS_PROFILE=dev`` still explores more.
    """
    profile = settings.default
    assert profile is not None  # Hypothesis loads a profile when it is imported
    return max(1, round(n * profile.max_examples / 25))


# ---- shapes ----------------------------------------------------------------------------------------


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes, e.g. ``()``, ``(3,)``, ``(2, 1, 4)``; sides ≥ 1 unless ``min_side=0``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3, max_side: int = 4):
    """Tuples of ``num_shapes`` shapes that broadcast together (sizes of 1, missing leading axes)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes,
        min_dims=min_dims,
        max_dims=max_dims,
        min_side=1,
        max_side=max_side,
    ).map(lambda b: tuple(b.input_shapes))


@st.composite
def axes(draw, ndim: int, allow_none: bool = True):
    """An ``axis=`` argument for an ``ndim``-d array: None, one axis (maybe negative), or a tuple."""
    options = ["int", "tuple"] + (["none"] if allow_none else [])
    if ndim == 0:
        return None if allow_none else ()
    kind = draw(st.sampled_from(options))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    negate = draw(st.lists(st.booleans(), min_size=len(chosen), max_size=len(chosen)))
    return tuple(a - ndim if neg else a for a, neg in zip(chosen, negate))


# ---- float values --------------------------------------------------------------------------------------


def _push_away(x: np.ndarray, points, gap: float) -> np.ndarray:
    """Move every value closer than ``gap`` to one of ``points`` out to distance ``gap``."""
    for p in points:
        close = np.abs(x - p) < gap
        x = np.where(close, np.where(x >= p, p + gap, p - gap), x)
    return x


def floats(shape, low: float = -3.0, high: float = 3.0, avoid=(), gap: float = GAP):
    """float64 arrays of ``shape`` with values in ``[low, high]``, at least ``gap`` from ``avoid``.

    ``avoid`` lists kinks/poles, e.g. ``avoid=(0,)`` for relu; points should be ≥ 2·gap apart.
    A value pushed away may end up at most ``gap`` outside ``[low, high]``.
    """
    elements = st.floats(low, high, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    arrays = hnp.arrays(FLOAT, shape, elements=elements)
    if avoid:
        arrays = arrays.map(lambda x: _push_away(x, avoid, gap))
    return arrays


def positive_floats(shape, low: float = 0.2, high: float = 3.0):
    """float64 values in ``[low, high]`` with ``low > 0`` (for log, sqrt, fractional powers)."""
    if low <= 0:
        raise ValueError(f"positive_floats needs low > 0, got {low}")
    return floats(shape, low, high)


def nonzero_floats(shape, min_abs: float = 0.5, max_abs: float = 2.0):
    """float64 values with ``min_abs ≤ |x| ≤ max_abs``, either sign (denominators, x ** -1)."""
    magnitudes = floats(shape, min_abs, max_abs)
    signs = hnp.arrays(FLOAT, shape, elements=st.sampled_from([-1.0, 1.0]))
    return st.tuples(magnitudes, signs).map(lambda ms: ms[0] * ms[1])


@st.composite
def distinct_floats(draw, shape, low: float = -3.0, high: float = 3.0):
    """float64 values in ``[low, high]``, every two at least ``0.75 · (high − low) / size`` apart.

    For ``max``: no ties, so the maximum's gradient is well defined and finite differences agree.
    """
    shape = tuple(shape)
    n = math.prod(shape)
    order = np.array(draw(st.permutations(range(n))), dtype=FLOAT)
    jitter = draw(hnp.arrays(FLOAT, n, elements=st.floats(0.0, 0.25)))
    spacing = (high - low) / max(n, 1)
    return (low + (order + jitter) * spacing).reshape(shape)


@st.composite
def float_arrays(draw, min_dims: int = 0, max_dims: int = 3, max_side: int = 4, **kwargs):
    """A float64 array of a drawn shape; ``kwargs`` go to :func:`floats` (low, high, avoid)."""
    shape = draw(shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side))
    return draw(floats(shape, **kwargs))


# ---- integers -------------------------------------------------------------------------------------------


@st.composite
def id_arrays(draw, num_ids: int, shape=None, repeated: bool = True, dtype=np.int64):
    """Integer ids in ``[0, num_ids)`` (token ids, embedding rows).

    ``shape`` defaults to a drawn 1-D or 2-D shape. With ``repeated=True`` at least one id occurs
    twice (when there are ≥ 2 ids), so scatter-add backward paths that must *sum* are exercised.
    """
    if shape is None:
        shape = draw(shapes(min_dims=1, max_dims=2, max_side=5))
    shape = tuple(shape)
    ids = draw(hnp.arrays(dtype, shape, elements=st.integers(0, num_ids - 1)))
    if repeated and ids.size >= 2:
        flat = ids.reshape(-1)
        i, j = draw(st.lists(st.integers(0, flat.size - 1), min_size=2, max_size=2, unique=True))
        flat[j] = flat[i]
    return ids


@st.composite
def lengths(draw, batch_size, max_len, include_full: bool = True):
    """Sequence lengths: an int64 array of ``batch_size`` values in ``[1, max_len]``.

    ``batch_size`` and ``max_len`` may be ints or strategies. With ``include_full`` one sequence
    has the full length ``max_len`` (as a padded batch always does).
    """
    batch_size = _value(draw, batch_size)
    max_len = _value(draw, max_len)
    out = np.array(
        draw(st.lists(st.integers(1, max_len), min_size=batch_size, max_size=batch_size)), dtype=np.int64
    )
    if include_full:
        out[draw(st.integers(0, batch_size - 1))] = max_len
    return out


def _value(draw, x):
    return draw(x) if isinstance(x, st.SearchStrategy) else x


class Sequences(NamedTuple):
    """A padded batch: ``values`` is (B, T) ids or (B, T, E) floats; ``lengths`` is (B,) in [1, T].

    Positions ``t >= lengths[b]`` hold padding (``pad_id`` for ids, 0.0 for floats).
    """

    values: np.ndarray
    lengths: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(B, T) booleans: True at real steps, False at padding."""
        return np.arange(self.values.shape[1])[None, :] < self.lengths[:, None]


@st.composite
def token_sequences(
    draw, vocab_size: int, batch_size=st.integers(1, 4), max_len=st.integers(1, 6), pad_id: int = 0
):
    """A padded batch of token ids (B, T) with lengths; real tokens avoid ``pad_id`` when possible."""
    lens = draw(lengths(batch_size, max_len))
    B, T = len(lens), int(lens.max())
    low = 1 if vocab_size > 1 and pad_id == 0 else 0
    ids = draw(hnp.arrays(np.int64, (B, T), elements=st.integers(low, vocab_size - 1)))
    mask = np.arange(T)[None, :] < lens[:, None]
    return Sequences(np.where(mask, ids, pad_id), lens)


@st.composite
def float_sequences(
    draw,
    features=st.integers(1, 4),
    batch_size=st.integers(1, 4),
    max_len=st.integers(1, 6),
    low: float = -2.0,
    high: float = 2.0,
):
    """A padded batch of float64 features (B, T, E) with lengths; padding is 0.0."""
    lens = draw(lengths(batch_size, max_len))
    B, T, E = len(lens), int(lens.max()), _value(draw, features)
    x = draw(floats((B, T, E), low, high))
    mask = np.arange(T)[None, :, None] < lens[:, None, None]
    return Sequences(np.where(mask, x, 0.0), lens)
