"""pending: the close at which the next bar would complete a cross, said when it is within
`within` (a fraction) of the last close. Exact, not estimated: the next SMA, EMA or close is
affine in the next close (alpha + beta * x), so the trigger solves a linear equation; RSI
through a level solves Wilder's update for the gain or loss that lands on the level
(`rsi.trigger`). The generated kernel picks the formula per series (stream/codegen.py).
"""

import math

from numba import njit

from ..indicators.state import put
from .common import PENDING, emit, sign

DIRECTION = 0  # direction of the cross last announced while pending, 0 when not pending
SIZE = 1


@njit(cache=True, _nrt=False, forceinline=True)
def solve(aa, ba, ab, bb):
    """x with aa + ba * x == ab + bb * x (NaN when the lines are parallel or unknown)."""
    if ba == bb or ba != ba or bb != bb:
        return math.nan
    return (ab - aa) / (ba - bb)


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, a, ap, b, bp, x, within, c, EI, EF, e, row, j, state, jn):
    """Series a (previous ap) and b (bp); x is the next close that puts a on b."""
    d = a - b
    direction = 0.0
    if d == d and d != 0.0 and x == x and x > 0.0 and abs(x - c) <= within * c:
        direction = -1.0 if d > 0 else 1.0
    held = S[r, o + DIRECTION]
    if direction == held:
        return e, jn
    jn = put(S, r, jn, o + DIRECTION, direction)
    if direction == 0.0:
        return e, jn
    emit(EI, e, row, r, j, PENDING, state)
    EF[e, 0] = c
    EF[e, 1] = a
    EF[e, 2] = b
    EF[e, 3] = sign(a - ap)
    EF[e, 4] = sign(b - bp)
    EF[e, 5] = x
    EF[e, 6] = x / c - 1.0
    EF[e, 7] = direction
    return e + 1, jn
