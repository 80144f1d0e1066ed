"""Simple moving average: ring buffer plus running sum, in TA-Lib's order of operations."""

import math

from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put

SUM = HEAD  # sum of the latest n-1 inputs once ready (TA-Lib's periodTotal)
POS = HEAD + 1  # ring slot the next input goes to (kept, not c % n: no integer division)
RING = HEAD + 2


def size(n: int) -> int:
    return RING + n


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, n, x, jn):
    """Add input x (journal length jn); returns the new journal length."""
    c = int(S[r, o + COUNT])
    p = int(S[r, o + POS])
    jn = put(S, r, jn, o + RING + p, x)
    p = p + 1 if p + 1 < n else 0
    total = S[r, o + SUM] + x
    if c >= n - 1:
        out = total / n
        total -= S[r, o + RING + p]  # the oldest input of this window
        jn = put(S, r, jn, o + PREV, S[r, o + VALUE])
        jn = put(S, r, jn, o + VALUE, out)
    jn = put(S, r, jn, o + SUM, total)
    jn = put(S, r, jn, o + POS, p)
    jn = put(S, r, jn, o + COUNT, c + 1)
    return jn


@njit(cache=True, _nrt=False, forceinline=True)
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
