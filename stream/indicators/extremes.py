"""Highest and lowest input over the last n: van Herk / Gil-Werman blocks, amortised O(1).

The inputs are cut into blocks of n. A window of the last n inputs spans the end of the last
whole block and the start of the current one, so its extreme is the better of two values kept
up to date: the extreme of the current block so far (one comparison a bar) and the extreme of
the last whole block from the window's first slot on (its suffix extremes, computed once as
the block completes: n comparisons every n bars). Every bar but a block's first takes the same
path, whatever the data: no branch depends on the values (a monotonic deque's pops do, and
were mispredicted on most real bars), and a step writes a fixed number of slots (n + 6 at
most), so the library's undo journal stays bounded. The position in the block is an integer
kept as int64 bits in the state row (read through an int view: no conversions).
"""

import numpy as np
from numba import njit

from .base import Indicator
from .block import COUNT, HEAD, PREV, VALUE
from .state import put, puti

POS = HEAD  # slot in the block the next input goes to (count mod n, kept: no division)
RUN = HEAD + 1  # extreme of the current block's inputs so far
BLOCK = HEAD + 2  # n inputs: the current block (slots < POS), the last whole one (slots >= POS),
# then n extremes of the last whole block, from each slot to its end (its suffix extremes)


def size(n: int) -> int:
    return BLOCK + 2 * n


def writes(n: int) -> int:
    """Most slots one step writes (a block's first bar: its suffix extremes too)."""
    return n + 6


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, n, x, sign, jn):
    """Add input x; sign=+1 keeps the maximum, -1 the minimum. Returns the journal length."""
    SI = S.view(np.int64)
    c = SI[r, o + COUNT]
    j = SI[r, o + POS]
    suf = o + BLOCK + n
    if j == 0:  # the last whole block is complete: its suffix extremes, last slot first
        m = S[r, o + BLOCK + n - 1]
        jn = put(S, r, jn, suf + n - 1, m)
        for q in range(n - 2, -1, -1):
            v = S[r, o + BLOCK + q]
            m = v if sign * v > sign * m else m
            jn = put(S, r, jn, suf + q, m)
        best = x
    else:
        run = S[r, o + RUN]
        best = x if sign * x > sign * run else run
    jn = put(S, r, jn, o + RUN, best)
    jn = put(S, r, jn, o + BLOCK + j, x)
    if c >= n - 1:
        k = j + 1 if j + 1 < n else j  # the window's first slot in the last whole block ...
        tail = S[r, suf + k]
        tail = tail if j + 1 < n else best  # ... none when the window is the current block
        jn = put(S, r, jn, o + PREV, S[r, o + VALUE])
        jn = put(S, r, jn, o + VALUE, tail if sign * tail > sign * best else best)
    jn = puti(S, SI, r, jn, o + POS, j + 1 if j + 1 < n else 0)
    jn = puti(S, SI, r, jn, o + COUNT, c + 1)
    return jn


@njit(cache=True, _nrt=False, forceinline=True)
def step_max(S, r, o, n, x, jn):
    return step(S, r, o, n, x, 1.0, jn)


@njit(cache=True, _nrt=False, forceinline=True)
def step_min(S, r, o, n, x, jn):
    return step(S, r, o, n, x, -1.0, jn)


class MAX(Indicator):
    """Highest of the last `period` inputs; equals talib.MAX."""

    kind = 3
    _size = staticmethod(size)
    _writes = staticmethod(writes)
    _step = staticmethod(step_max)


class MIN(Indicator):
    """Lowest of the last `period` inputs; equals talib.MIN."""

    kind = 4
    _size = staticmethod(size)
    _writes = staticmethod(writes)
    _step = staticmethod(step_min)
