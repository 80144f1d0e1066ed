"""Pivot highs and lows: the bar k back is a pivot high if it is above the k bars before it
and not below the k bars after it (lows mirrored); known only k bars later, never repainted.
"""

import numpy as np
from numba import njit

from .block import COUNT, HEAD
from .state import put

RING = HEAD  # 2k+1 latest inputs, slot i % (2k+1)


def size(k: int) -> int:
    return RING + 2 * k + 1


WRITES = 2


@njit(cache=True)
def classify(S, r, ring, k, c):
    """Pivot type of input c-k given the ring holding inputs c-2k..c: +1 high, -1 low, 0."""
    if c < 2 * k:
        return 0
    w = 2 * k + 1
    mid = S[r, ring + (c - k) % w]
    high = True
    low = True
    for j in range(c - 2 * k, c + 1):
        if j == c - k:
            continue
        v = S[r, ring + j % w]
        if j < c - k:
            high = high and mid > v
            low = low and mid < v
        else:
            high = high and mid >= v
            low = low and mid <= v
    if high:
        return 1
    if low:
        return -1
    return 0


@njit(cache=True)
def step(S, r, o, k, x):
    """Add input x; returns the pivot type of the input k back (+1, -1 or 0)."""
    c = int(S[r, o + COUNT])
    put(S, r, o + RING + c % (2 * k + 1), x)
    put(S, r, o + COUNT, c + 1)
    return classify(S, r, o + RING, k, c)


class Pivots:
    """Streaming pivot finder: update(x) -> +1 / -1 when the input k back is a high / low."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("pivot span must be >= 1")
        self.k = k
        self._S = np.zeros((1, 1 + 2 * 2 * WRITES + size(k)))
        self._o = 1 + 2 * 2 * WRITES

    def update(self, x: float) -> int:
        self._S[0, 0] = 0
        return int(step(self._S, 0, self._o, self.k, float(x)))
