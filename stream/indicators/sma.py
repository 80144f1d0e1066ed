"""Simple moving average: ring buffer plus running sum, in TA-Lib's order of operations."""

import math

from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put

SUM = HEAD  # sum of the latest n-1 inputs once ready (TA-Lib's periodTotal)
RING = HEAD + 1


def size(n: int) -> int:
    return RING + n


WRITES = 5


@njit(cache=True)
def step(S, r, o, n, x):
    """Add input x; returns the new value (NaN during warm-up)."""
    c = int(S[r, o + COUNT])
    put(S, r, o + RING + c % n, x)
    total = S[r, o + SUM] + x
    if c >= n - 1:
        out = total / n
        total -= S[r, o + RING + (c + 1) % n]  # the oldest input of this window
        put(S, r, o + PREV, S[r, o + VALUE])
        put(S, r, o + VALUE, out)
    put(S, r, o + SUM, total)
    put(S, r, o + COUNT, c + 1)
    return S[r, o + VALUE]


@njit(cache=True)
def affine(S, r, o, n):
    """(alpha, beta): the next value is alpha + beta * x for the next input x."""
    if S[r, o + COUNT] < n - 1:
        return math.nan, math.nan
    return S[r, o + SUM] / n, 1.0 / n


class SMA(Indicator):
    """SMA(period) of a stream of floats; equals talib.SMA."""

    kind = 0
    _size = staticmethod(size)
    _step = staticmethod(step)
