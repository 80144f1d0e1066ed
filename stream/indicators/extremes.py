"""Highest and lowest input over the last n: a monotonic deque in a ring, amortised O(1).

Popping only moves the deque's bounds; a push writes one slot, so a step journals a fixed
number of writes and undo stays O(1).
"""

from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put

FRONT = HEAD  # ring position of the deque's front
LEN = HEAD + 1  # entries in the deque
VALS = HEAD + 2  # n values, then n input indices


def size(n: int) -> int:
    return VALS + 2 * n


WRITES = 7


@njit(cache=True)
def step(S, r, o, n, x, sign):
    """Add input x; sign=+1 keeps the maximum, -1 the minimum. Returns the new value."""
    c = int(S[r, o + COUNT])
    h = int(S[r, o + FRONT])
    m = int(S[r, o + LEN])
    vals = o + VALS
    idx = o + VALS + n
    if m > 0 and S[r, idx + h] <= c - n:  # the front left the window
        h = (h + 1) % n
        m -= 1
    while m > 0 and sign * S[r, vals + (h + m - 1) % n] <= sign * x:
        m -= 1
    slot = (h + m) % n
    put(S, r, vals + slot, x)
    put(S, r, idx + slot, c)
    m += 1
    if c >= n - 1:
        put(S, r, o + PREV, S[r, o + VALUE])
        put(S, r, o + VALUE, S[r, vals + h])
    put(S, r, o + FRONT, h)
    put(S, r, o + LEN, m)
    put(S, r, o + COUNT, c + 1)
    return S[r, o + VALUE]


@njit(cache=True)
def step_max(S, r, o, n, x):
    return step(S, r, o, n, x, 1.0)


@njit(cache=True)
def step_min(S, r, o, n, x):
    return step(S, r, o, n, x, -1.0)


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
