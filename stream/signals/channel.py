"""channel: the close breaking below the lowest low (above the highest high) of the
previous N bars; fires when the break starts, not on every bar that stays broken.
"""

from numba import njit

from ..indicators.block import PREV
from ..indicators.state import put
from .common import BREAK_ABOVE, BREAK_BELOW, CLOSE, I_OFF, R_AIDX, R_BIDX, R_OFF, emit

SIDE = 0  # -1 broken below, +1 broken above, 0 inside
SIZE = 1
WRITES = 1


@njit(cache=True, _nrt=False)
def step(S, r, sb, IP, P, F, j, EI, EF, e, row, state, jn):
    o = P[j, R_OFF]
    lowest = S[r, IP[P[j, R_AIDX], I_OFF] + PREV]  # as of the previous bar: N bars before this
    highest = S[r, IP[P[j, R_BIDX], I_OFF] + PREV]
    if lowest != lowest or highest != highest:
        return e, jn
    c = S[r, sb + CLOSE]
    s = -1.0 if c < lowest else (1.0 if c > highest else 0.0)
    if s == S[r, o + SIDE]:
        return e, jn
    jn = put(S, r, jn, o + SIDE, s)
    if s == 0.0:
        return e, jn
    emit(EI, e, row, r, j, BREAK_BELOW if s < 0 else BREAK_ABOVE, state)
    EF[e, 0] = c
    EF[e, 1] = lowest
    EF[e, 2] = highest
    return e + 1, jn
