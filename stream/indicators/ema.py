"""Exponential moving average, seeded with the SMA of the first n inputs (TA-Lib's default)."""

import math

from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put

SUM = HEAD  # running sum for the seed


def size(n: int) -> int:
    return HEAD + 1


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, n, x, jn):
    """Add input x (journal length jn); returns the new journal length."""
    c = int(S[r, o + COUNT])
    if c < n - 1:
        jn = put(S, r, jn, o + SUM, S[r, o + SUM] + x)
    else:
        if c == n - 1:
            total = S[r, o + SUM] + x
            jn = put(S, r, jn, o + SUM, total)
            out = total / n
        else:
            v = S[r, o + VALUE]
            out = (x - v) * (2.0 / (n + 1)) + v
        jn = put(S, r, jn, o + PREV, S[r, o + VALUE])
        jn = put(S, r, jn, o + VALUE, out)
    jn = put(S, r, jn, o + COUNT, c + 1)
    return jn


@njit(cache=True, _nrt=False, forceinline=True)
def affine(S, r, o, n):
    """(alpha, beta): the next value is alpha + beta * x for the next input x."""
    if S[r, o + COUNT] < n:
        return math.nan, math.nan
    k = 2.0 / (n + 1)
    v = S[r, o + VALUE]
    return v - k * v, k


class EMA(Indicator):
    """EMA(period) of a stream of floats; equals talib.EMA."""

    kind = 1
    _size = staticmethod(size)
    _step = staticmethod(step)
