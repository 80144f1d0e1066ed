"""Each streaming indicator equals TA-Lib (the `ta-lib` package) to 1e-9 from its first valid
output, on real data and on generated walks; warm-up yields None; peek and revise are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import talib
from hypothesis import example, given, settings
from hypothesis import strategies as st

from stream.indicators import EMA, MAX, MIN, RSI, SMA, Pivots

CASES = [(SMA, talib.SMA, 1), (EMA, talib.EMA, 1), (RSI, talib.RSI, 2), (MAX, talib.MAX, 2), (MIN, talib.MIN, 2)]


def stream_values(ind, xs) -> np.ndarray:
    return np.array([math.nan if (v := ind.update(x)) is None else v for x in xs])


def assert_matches(out: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(np.isnan(out), np.isnan(ref)), "warm-up boundary differs from TA-Lib"
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(out[ok], ref[ok], rtol=0, atol=1e-9)


@pytest.mark.parametrize("cls,ref,least", CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("period", [2, 10, 14, 50, 200])
def test_equals_talib_on_real_data(closes, cls, ref, least, period):
    for xs in closes.values():
        assert_matches(stream_values(cls(period), xs), ref(xs, period))


@pytest.mark.parametrize("cls,ref,least", CASES, ids=[c[0].__name__ for c in CASES])
def test_warm_up_boundary(cls, ref, least):
    """None exactly until TA-Lib's first valid output, then its value."""
    xs = np.array([10.0, 11.5, 10.25, 12.0, 12.5, 11.0, 13.0, 12.75, 14.0, 13.5])
    for period in range(least, 8):
        ind = cls(period)
        expect = ref(xs, period)
        for i, x in enumerate(xs):
            got = ind.update(x)
            if math.isnan(expect[i]):
                assert got is None and not ind.ready
            else:
                assert got == pytest.approx(expect[i], abs=1e-9) and ind.ready


walks = st.lists(st.floats(-5, 5, allow_nan=False), min_size=1, max_size=400).map(
    lambda steps: list(100.0 + np.cumsum(steps))
)


@settings(max_examples=60, deadline=None)
@given(xs=walks, period=st.integers(2, 30))
@example(xs=list(100.0 + np.cumsum([0.0, 0.0, 1e-10])), period=2)  # gains+losses below 0.4's epsilon
@example(xs=[100.0, 100.0, 100.0 - 1e-10, 100.0 - 1e-10], period=2)
def test_equals_talib_on_walks(xs, period):
    xs = np.array(xs)
    for cls, ref, _ in CASES:
        assert_matches(stream_values(cls(period), xs), ref(xs, period))


@settings(max_examples=60, deadline=None)
@given(xs=walks, alt=st.floats(1, 200), period=st.integers(2, 20))
def test_revise_is_as_if_it_came_first(xs, alt, period):
    for cls, _, _ in CASES:
        a, b = cls(period), cls(period)
        for x in xs[:-1]:
            a.update(x)
            b.update(x)
        a.update(xs[-1])
        ra = a.revise(alt)
        rb = b.update(alt)
        assert ra == rb or (ra is None and rb is None)
        assert np.array_equal(a._S[0, a._o :], b._S[0, b._o :], equal_nan=True), "state differs bit for bit"


@settings(max_examples=60, deadline=None)
@given(xs=walks, probe=st.floats(1, 200), period=st.integers(2, 20))
def test_peek_leaves_state_unchanged(xs, probe, period):
    for cls, _, _ in CASES:
        ind, twin = cls(period), cls(period)
        for x in xs:
            ind.update(x)
            twin.update(x)
        before = ind._S.copy()
        peeked = ind.peek(probe)
        assert np.array_equal(ind._S[0, ind._o :], before[0, ind._o :], equal_nan=True)
        assert peeked == twin.update(probe) or peeked is None


def test_talib_stream_handles_agree(closes):
    """The library face behaves like TA-Lib 0.8's stream handles: update and peek."""
    xs = closes["MSFT"]
    for cls, fn in ((SMA, "SMA"), (EMA, "EMA"), (RSI, "RSI")):
        ours = cls(14)
        for x in xs[:100]:
            ours.update(x)
        handle = getattr(talib.stream, fn)(xs[:100], 14)
        for x in xs[100:300]:
            assert ours.peek(x * 1.01) == pytest.approx(handle.peek(x * 1.01), abs=1e-9)
            assert ours.update(x) == pytest.approx(handle.update(x), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.integers(-2, 2), min_size=1, max_size=300), period=st.integers(1, 25))
def test_extremes_on_ties_and_block_edges(steps, period):
    """MAX/MIN on integer walks (many equal values) across many blocks of n, period 1 included."""
    xs = np.cumsum(np.array(steps, dtype=np.float64))
    for cls, ref in ((MAX, talib.MAX), (MIN, talib.MIN)):
        expect = xs if period == 1 else ref(xs, period)  # TA-Lib needs a period >= 2
        assert np.array_equal(stream_values(cls(period), xs), expect, equal_nan=True)


def test_bad_period():
    with pytest.raises(ValueError, match="period"):
        SMA(0)
    with pytest.raises(ValueError):
        RSI(2.5)


def pivots_brute(xs, k):
    out = {}
    for c in range(k, len(xs) - k):
        left, right = xs[c - k : c], xs[c + 1 : c + k + 1]
        if all(xs[c] > v for v in left) and all(xs[c] >= v for v in right):
            out[c + k] = 1
        elif all(xs[c] < v for v in left) and all(xs[c] <= v for v in right):
            out[c + k] = -1
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_pivots_match_brute_force(closes, k):
    xs = closes["IBM"][:1500]
    p = Pivots(k)
    got = {i: v for i, x in enumerate(xs) if (v := p.update(x))}
    assert got == pivots_brute(list(xs), k)
    assert len(got) > 50
