"""Highest and lowest input over the last n: a monotonic deque in a ring, amortised O(1).

Popping only moves the deque's bounds; a push writes one slot, so a step journals a fixed
number of writes and undo stays O(1). The counters and the ring of input indices are
integers kept as int64 bits in the state row (read through an int view: no conversions).
"""

import numpy as np
from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put, puti

FRONT = HEAD  # ring position of the deque's front
LEN = HEAD + 1  # entries in the deque
VALS = HEAD + 2  # n values, then n input indices


def size(n: int) -> int:
    return VALS + 2 * n


@njit(cache=True, _nrt=False, inline="always")
def _at(h, j, n):
    """Ring slot of deque entry j (0 = front; -n < j < 2n): wrapped by compares, not a division."""
    q = h + j
    q = q - n if q >= n else q
    return q + n if q < 0 else q


@njit(cache=True, _nrt=False, inline="always")
def step(S, r, o, n, x, sign, jn):
    """Add input x; sign=+1 keeps the maximum, -1 the minimum. Returns the journal length.

    The deque's values fall (sign * value) from front to back, so the entries x pops are a run at
    the back: the last four are tested at once, without branches (how many go is data, and a
    branch on it is mispredicted on most bars), and a loop pops on only when all four went
    (about 4 % of real bars)."""
    SI = S.view(np.int64)
    c = SI[r, o + COUNT]
    h = SI[r, o + FRONT]
    m = SI[r, o + LEN]
    vals = o + VALS
    idx = o + VALS + n
    gone = (m > 0) & (SI[r, idx + h] <= c - n)  # the front left the window
    h = (h + 1 if h + 1 < n else 0) if gone else h
    m -= gone
    sx = sign * x
    k = (((m > 0) & (sign * S[r, vals + _at(h, m - 1, n)] <= sx))
         + ((m > 1) & (sign * S[r, vals + _at(h, m - 2, n)] <= sx))
         + ((m > 2) & (sign * S[r, vals + _at(h, m - 3, n)] <= sx))
         + ((m > 3) & (sign * S[r, vals + _at(h, m - 4, n)] <= sx)))
    m -= k
    if k == 4:
        while m > 0 and sign * S[r, vals + _at(h, m - 1, n)] <= sx:
            m -= 1
    slot = _at(h, m, n)
    jn = put(S, r, jn, vals + slot, x)
    jn = puti(S, SI, r, jn, idx + slot, c)
    m += 1
    if c >= n - 1:
        jn = put(S, r, jn, o + PREV, S[r, o + VALUE])
        jn = put(S, r, jn, o + VALUE, S[r, vals + h])
    jn = puti(S, SI, r, jn, o + FRONT, h)
    jn = puti(S, SI, r, jn, o + LEN, m)
    jn = puti(S, SI, r, jn, o + COUNT, c + 1)
    return jn


@njit(cache=True, _nrt=False, inline="always")
def step_max(S, r, o, n, x, jn):
    return step(S, r, o, n, x, 1.0, jn)


@njit(cache=True, _nrt=False, inline="always")
def step_min(S, r, o, n, x, jn):
    return step(S, r, o, n, x, -1.0, jn)


class MAX(Indicator):
    """Highest of the last `period` inputs; equals talib.MAX."""

    kind = 3
    _size = staticmethod(size)
    _step = staticmethod(step_max)


class MIN(Indicator):
    """Lowest of the last `period` inputs; equals talib.MIN."""

    kind = 4
    _size = staticmethod(size)
    _step = staticmethod(step_min)
