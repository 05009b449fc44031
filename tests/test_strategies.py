"""The shared strategies keep their promises (a gradient test is only as good as its inputs)."""

import types

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_rnn.testing import strategies as S


@given(S.broadcastable_shapes(3))
def test_broadcastable_shapes_broadcast(shapes):
    assert len(shapes) == 3
    np.broadcast_shapes(*shapes)


@given(st.data())
def test_floats_are_bounded_and_kept_from_kinks(data):
    shape = data.draw(S.shapes())
    x = data.draw(S.floats(shape, -2.0, 2.0, avoid=(0.0, 1.0)))
    assert x.dtype == np.float64 and x.shape == shape
    assert np.all(np.abs(x) <= 2.0 + S.GAP)
    assert np.all(np.abs(x - 0.0) >= S.GAP * (1 - 1e-12)) and np.all(np.abs(x - 1.0) >= S.GAP * (1 - 1e-12))


@given(st.data())
def test_positive_and_nonzero_floats(data):
    shape = data.draw(S.shapes())
    assert np.all(data.draw(S.positive_floats(shape, 0.1, 3.0)) >= 0.1)
    x = data.draw(S.nonzero_floats(shape, 0.5, 2.0))
    assert np.all((np.abs(x) >= 0.5) & (np.abs(x) <= 2.0))


@given(st.data())
def test_distinct_floats_have_no_near_ties(data):
    shape = data.draw(S.shapes(min_dims=1))
    x = data.draw(S.distinct_floats(shape, -3.0, 3.0)).reshape(-1)
    assert np.all((x >= -3.0) & (x <= 3.0))
    if x.size > 1:
        assert np.min(np.diff(np.sort(x))) >= 0.75 * 6.0 / x.size - 1e-12


@given(st.data())
def test_axes_are_valid_and_distinct(data):
    ndim = data.draw(st.integers(0, 4))
    axis = data.draw(S.axes(ndim))
    if axis is None:
        return
    axes = (axis,) if isinstance(axis, int) else axis
    normalised = [a % ndim for a in axes]
    assert all(-ndim <= a < ndim for a in axes) and len(set(normalised)) == len(normalised)


@given(st.data())
def test_ids_are_in_range_and_repeat(data):
    n = data.draw(st.integers(1, 6))
    ids = data.draw(S.id_arrays(n))
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < n
    if ids.size >= 2:
        assert len(np.unique(ids)) < ids.size


@given(S.lengths(st.integers(1, 5), 7))
def test_lengths_are_in_one_to_T_and_one_is_full(lens):
    assert lens.dtype == np.int64 and lens.min() >= 1 and lens.max() == 7


@given(S.token_sequences(vocab_size=5))
def test_token_sequences_pad_exactly_past_each_length(seq):
    B, T = seq.values.shape
    assert seq.lengths.shape == (B,) and seq.lengths.max() == T
    assert np.all(seq.values[~seq.mask] == 0) and np.all(seq.values[seq.mask] >= 1)


@given(S.float_sequences(features=3))
def test_float_sequences_are_zero_past_each_length(seq):
    B, T, E = seq.values.shape
    assert E == 3 and seq.values.dtype == np.float64 and np.all(seq.values[~seq.mask] == 0.0)


def test_examples_scale_with_the_profile(monkeypatch):
    """Concrete counts: as asked under ci (25 examples), 8× under a 200-example profile, never 0."""
    for profile_examples, asked, given_back in [
        (25, 10, 10),
        (25, 0, 1),
        (200, 10, 80),
        (200, 1, 8),
        (5, 2, 1),
    ]:
        monkeypatch.setattr(
            S, "settings", types.SimpleNamespace(default=types.SimpleNamespace(max_examples=profile_examples))
        )
        assert S.examples(asked) == given_back, (profile_examples, asked)
