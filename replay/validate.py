"""Row checks for replayed bars: one compiled pass in file order, with state carried across chunks.

Checks, in this order, the first failing one naming the fault: unparseable time, missing
symbol, NaN, infinite or missing price (open/high/low/close: "nan price"), non-positive
price, high < low, bad kind (recorder files: 0 FINAL or 1 FORMING), then time order *per
symbol* (several symbols may interleave in any way): a bar whose time
is before the symbol's last good bar is "unsorted time"; one at the same time is "duplicate
time", except in recorder files (a `kind` column), where a repeated time is a revision or
a forming-bar update and is kept in file order. Open/close outside [low, high] is not
checked (real feeds have such bars). A bad row never becomes the reference for later
ones, so skipping bad rows leaves every symbol strictly time-ordered.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
FAULTS = (
    "",
    "unparseable time",
    "missing symbol",
    "nan price",
    "non-positive price",
    "high < low",
    "bad kind",
    "duplicate time",
    "unsorted time",
)
F_TIME, F_SYMBOL, F_NAN, F_NONPOS, F_HL, F_KIND, F_DUP, F_UNSORTED = range(1, 9)
NO_TIME = np.iinfo(np.int64).min  # times are stored with this for "unparseable"


OUTSIDE = -1  # a good-looking row outside the [start, end) window: not replayed, not a fault


@njit(cache=True, nogil=True)
def check_rows(t, code, o, h, l, c, kind, lo, hi, strict, last, order, fault, stop_first):
    """Write a fault code per row into `fault`; update `last` (per symbol) and `order`.

    Rows with a time outside [lo, hi) get OUTSIDE and are otherwise ignored. order[0] is the
    largest good time so far (any symbol), order[1] stays 1 while good rows are in time order
    across symbols (the file can then be streamed as is), order[2] counts good rows.
    Returns the index of the first fault when `stop_first`, else -1.
    """
    n = t.shape[0]
    for i in range(n):
        f = 0
        ti = t[i]
        s = code[i]
        if ti == NO_TIME:
            f = F_TIME
        elif ti < lo or ti >= hi:
            fault[i] = OUTSIDE
            continue
        elif s < 0:
            f = F_SYMBOL
        elif not (np.isfinite(o[i]) and np.isfinite(h[i]) and np.isfinite(l[i]) and np.isfinite(c[i])):
            f = F_NAN
        elif o[i] <= 0.0 or h[i] <= 0.0 or l[i] <= 0.0 or c[i] <= 0.0:
            f = F_NONPOS
        elif h[i] < l[i]:
            f = F_HL
        elif kind[i] < 0 or kind[i] > 7:  # FINAL 0 / FORMING 1, plus flags WARM 2, LATE 4
            f = F_KIND
        else:
            p = last[s]
            if ti < p:
                f = F_UNSORTED
            elif ti == p and strict:
                f = F_DUP
        fault[i] = f
        if f != 0:
            if stop_first:
                return i
            continue
        last[s] = ti
        if ti < order[0]:
            order[1] = 0
        else:
            order[0] = ti
        order[2] += 1
    return -1
