"""cross (a through b) and level (a through a fixed line): side changes with hysteresis and
confirmation. Warm-up and the first known side fire nothing: a cross needs a side to leave.
"""

from numba import njit

from ..indicators.state import put
from .common import emit, sign

SIDE, CAND, COUNT = 0, 1, 2  # side held (+1 above, -1 below, 0 unknown); candidate; its bars
SIZE = 3


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, a, ap, b, bp, gap, confirm, up_kind, down_kind, close, EI, EF, e, row, j, state, jn):
    """Series a (previous value ap) against b (bp); fires up_kind / down_kind on a held change."""
    d = a - b
    if d != d:
        return e, jn
    s = 1.0 if d > gap else (-1.0 if d < -gap else 0.0)
    side = S[r, o + SIDE]
    if side == 0.0:
        if s != 0.0:
            jn = put(S, r, jn, o + SIDE, s)
        return e, jn
    if s == 0.0 or s == side:
        if S[r, o + CAND] != 0.0:
            jn = put(S, r, jn, o + CAND, 0.0)
            jn = put(S, r, jn, o + COUNT, 0.0)
        return e, jn
    n = S[r, o + COUNT] + 1.0 if S[r, o + CAND] == s else 1.0
    if n >= confirm:
        jn = put(S, r, jn, o + SIDE, s)
        jn = put(S, r, jn, o + CAND, 0.0)
        jn = put(S, r, jn, o + COUNT, 0.0)
        emit(EI, e, row, r, j, up_kind if s > 0 else down_kind, state)
        EF[e, 0] = close
        EF[e, 1] = a
        EF[e, 2] = b
        EF[e, 3] = sign(a - ap)
        EF[e, 4] = sign(b - bp)
        return e + 1, jn
    jn = put(S, r, jn, o + CAND, s)
    jn = put(S, r, jn, o + COUNT, n)
    return e, jn
