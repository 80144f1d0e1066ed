"""Pivot highs and lows: the bar k back is a pivot high if it is above the k bars before it
and not below the k bars after it (lows mirrored); known only k bars later, never repainted.
"""

import numpy as np
from numba import njit

from .block import COUNT, HEAD
from .state import put

POS = HEAD  # ring slot of the newest input
RING = HEAD + 1  # the 2k+1 latest inputs, twice (see `classify`)


def size(k: int) -> int:
    return RING + 2 * (2 * k + 1)


WRITES = 4


@njit(cache=True, _nrt=False, forceinline=True)
def wrap(slot, w):
    """slot modulo w for 0 <= slot < 2w, without an integer division."""
    return slot - w if slot >= w else slot


@njit(cache=True, _nrt=False, forceinline=True)
def classify(S, r, ring, k, oldest, count):
    """Pivot type of the input k back, given a ring of the 2k+1 latest inputs whose oldest is at
    slot `oldest`, and `count` inputs seen: +1 high, -1 low, 0 neither (or not enough inputs).
    The ring is kept twice over (slot s and s + 2k+1 hold the same input), so the window is
    one run of slots from the oldest: no wrapping per read. Every comparison is made (no early
    exit): with k a constant the loop unrolls into straight-line code, and no branch depends
    on the data."""
    w = 2 * k + 1
    if count < w:
        return 0
    base = ring + oldest
    mid = S[r, base + k]
    high = True
    low = True
    for q in range(w):
        v = S[r, base + q]
        if q < k:
            high &= mid > v
            low &= mid < v
        elif q > k:
            high &= mid >= v
            low &= mid <= v
    return 1 if high else (-1 if low else 0)


@njit(cache=True, _nrt=False, forceinline=True)
def push(S, r, ring, w, slot, x, jn):
    """Write input x at `slot` of a ring kept twice over (`classify`); returns the journal length."""
    jn = put(S, r, jn, ring + slot, x)
    return put(S, r, jn, ring + slot + w, x)


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, k, x, jn):
    """Add input x; returns (pivot type of the input k back: +1, -1 or 0; journal length)."""
    w = 2 * k + 1
    c = int(S[r, o + COUNT])
    p = wrap(int(S[r, o + POS]) + 1, w) if c else 0
    jn = push(S, r, o + RING, w, p, x, jn)
    jn = put(S, r, jn, o + POS, p)
    jn = put(S, r, jn, o + COUNT, c + 1)
    return classify(S, r, o + RING, k, wrap(p + 1, w), c + 1), jn


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
        return int(step(self._S, 0, self._o, self.k, float(x), 0)[0])
