"""Symbol texts -> codes without decoding them: a hash table keyed by Arrow string views.

polars holds a text column as 16-byte views; a text of up to 12 bytes lies wholly inside its
view (length, then the bytes, zero-padded), so the view is the text. Looking each row's view up
here costs a few ns, where casting the texts to an Enum (what the reader did before) compares
strings row by row. Longer texts are not handled here (their views point into a buffer).
"""

from __future__ import annotations

import numpy as np
from numba import njit

EMPTY = -3  # a free slot
UNKNOWN = -2  # a row whose text is not in the table yet
LONG = -4  # a row whose text is longer than a view holds
INLINE = 12  # bytes of text a view holds


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _slot(a, b, mask):
    """A slot for the view (a, b): every bit of both words mixed in (symbols differ in a byte or two)."""
    h = a ^ (b * np.uint64(0xC2B2AE3D27D4EB4F))
    h = (h ^ (h >> np.uint64(31))) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h ^ (h >> np.uint64(29))) & mask)


@njit(cache=True, nogil=True, _nrt=False, forceinline=True)
def _find(keys, vals, a, b, mask):
    """The slot of the view (a, b): where it is, or the free slot where it would go (linear probing)."""
    s = _slot(a, b, mask)
    while vals[s] != EMPTY and not (keys[s, 0] == a and keys[s, 1] == b):
        s = (s + 1) & np.int64(mask)
    return s


@njit(cache=True, nogil=True, _nrt=False)
def lookup(views, keys, vals, out):
    """out[i] = the code of views[i] (UNKNOWN if not in the table, LONG if not inline); returns
    how many rows are UNKNOWN or LONG."""
    mask = np.uint64(len(vals) - 1)
    missing = 0
    for i in range(views.shape[0]):
        a, b = views[i, 0], views[i, 1]
        if (a & np.uint64(0xFFFFFFFF)) > INLINE:
            out[i] = LONG
            missing += 1
            continue
        v = vals[_find(keys, vals, a, b, mask)]
        if v == EMPTY:
            out[i] = UNKNOWN
            missing += 1
        else:
            out[i] = v
    return missing


@njit(cache=True, nogil=True, _nrt=False)
def insert(keys, vals, views, codes):
    """Adds views[i] -> codes[i] (views not in the table yet, the table big enough)."""
    mask = np.uint64(len(vals) - 1)
    for i in range(views.shape[0]):
        a, b = views[i, 0], views[i, 1]
        s = _find(keys, vals, a, b, mask)
        keys[s, 0], keys[s, 1], vals[s] = a, b, codes[i]


@njit(cache=True, nogil=True, _nrt=False)
def firsts(views, rows, keys, vals, out):
    """out[:m] = the rows (of `rows`, in order) where each distinct view among views[rows] is
    first seen; returns m. keys, vals: an empty table (vals all EMPTY) of a power-of-two size
    over len(rows)."""
    mask = np.uint64(len(vals) - 1)
    m = 0
    for i in rows:
        a, b = views[i, 0], views[i, 1]
        s = _find(keys, vals, a, b, mask)
        if vals[s] == EMPTY:
            keys[s, 0], keys[s, 1], vals[s] = a, b, i
            out[m] = i
            m += 1
    return m


def first_rows(views: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The rows (of `rows`, in order) where each distinct view among views[rows] is first seen."""
    cap = 1 << max(4, (2 * len(rows)).bit_length())
    out = np.empty(len(rows), np.int64)
    keys, vals = np.zeros((cap, 2), np.uint64), np.full(cap, EMPTY, np.int64)
    m = firsts(views, np.asarray(rows, np.int64), keys, vals, out)
    return out[:m]


class ViewTable:
    """Views -> codes, grown by doubling to stay at most half full."""

    def __init__(self) -> None:
        self.keys = np.zeros((16, 2), np.uint64)
        self.vals = np.full(16, EMPTY, np.int64)
        self.size = 0

    def add(self, views: np.ndarray, codes: np.ndarray) -> None:
        """views: uint64 [n, 2], distinct and new; codes: int64 [n]."""
        if 2 * (self.size + len(views)) > len(self.vals):
            used = self.vals != EMPTY
            old_keys, old_vals = self.keys[used], self.vals[used]
            cap = len(self.vals)
            while 2 * (self.size + len(views)) > cap:
                cap *= 2
            self.keys = np.zeros((cap, 2), np.uint64)
            self.vals = np.full(cap, EMPTY, np.int64)
            insert(self.keys, self.vals, old_keys, old_vals)
        insert(self.keys, self.vals, np.ascontiguousarray(views), np.asarray(codes, np.int64))
        self.size += len(views)

    def lookup(self, views: np.ndarray, out: np.ndarray) -> int:
        return lookup(views, self.keys, self.vals, out)
