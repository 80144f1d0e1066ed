"""channel: the close breaking below the lowest low (above the highest high) of the
previous N bars; fires when the break starts, not on every bar that stays broken.
"""

from numba import njit

from ..indicators.state import put
from .common import BREAK_ABOVE, BREAK_BELOW, emit

SIDE = 0  # -1 broken below, +1 broken above, 0 inside
SIZE = 1


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, lowest, highest, c, EI, EF, e, row, j, state, jn):
    """Close c against the lowest low and highest high as of the previous bar."""
    if lowest != lowest or highest != highest:
        return e, jn
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
