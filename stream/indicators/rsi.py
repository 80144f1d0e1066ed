"""RSI with Wilder smoothing, seeded with the plain mean of the first n changes (TA-Lib's)."""

import math

from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put

LAST = HEAD  # previous input
GAIN = HEAD + 1  # average gain (a sum during the seed)
LOSS = HEAD + 2  # average loss (a sum during the seed)


def size(n: int) -> int:
    return HEAD + 3


@njit(cache=True, _nrt=False, forceinline=True)
def _ratio(g, lo):
    t = g + lo
    if t == 0.0:  # TA-Lib 0.8 tests exact zero (0.4's TA_IS_ZERO used 1e-8): flat -> 0
        return 0.0
    return 100.0 * (g / t)


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, n, x, jn):
    """Add input x (journal length jn); returns the new journal length."""
    c = int(S[r, o + COUNT])
    if c > 0:
        d = x - S[r, o + LAST]
        g = S[r, o + GAIN]
        lo = S[r, o + LOSS]
        if c > n:
            lo *= n - 1
            g *= n - 1
        if d < 0:
            lo -= d
        else:
            g += d
        if c >= n:
            lo /= n
            g /= n
            jn = put(S, r, jn, o + PREV, S[r, o + VALUE])
            jn = put(S, r, jn, o + VALUE, _ratio(g, lo))
        jn = put(S, r, jn, o + GAIN, g)
        jn = put(S, r, jn, o + LOSS, lo)
    jn = put(S, r, jn, o + LAST, x)
    jn = put(S, r, jn, o + COUNT, c + 1)
    return jn


@njit(cache=True, _nrt=False, forceinline=True)
def trigger(S, r, o, n, level):
    """The next input at which RSI would land exactly on `level` (NaN if not ready)."""
    if S[r, o + COUNT] <= n or not 0.0 < level < 100.0:
        return math.nan
    g = S[r, o + GAIN] * (n - 1)
    lo = S[r, o + LOSS] * (n - 1)
    p = S[r, o + LAST]
    if S[r, o + VALUE] < level:  # needs a gain d: (g + d) * (100 - level) = level * lo
        return p + level * lo / (100.0 - level) - g
    return p - (g * (100.0 - level) / level - lo)  # needs a loss d


class RSI(Indicator):
    """RSI(period) of a stream of floats; equals talib.RSI."""

    kind = 2
    _size = staticmethod(size)
    _step = staticmethod(step)
