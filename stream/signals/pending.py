"""pending: the close at which the next bar would complete a cross, said when it is within
`within` (a fraction) of the last close. Exact, not estimated: the next SMA, EMA or close is
affine in the next close (alpha + beta * x), so the trigger solves a linear equation; RSI
through a level solves Wilder's update for the gain or loss that lands on the level.
"""

import math

from numba import njit

from ..indicators import ema, rsi, sma
from ..indicators.state import put
from .common import (
    CLOSE,
    F_ACONST,
    F_BCONST,
    F_WITHIN,
    I_KIND,
    I_OFF,
    I_PERIOD,
    IND_EMA,
    IND_RSI,
    IND_SMA,
    PENDING,
    R_AIDX,
    R_ATYPE,
    R_BIDX,
    R_BTYPE,
    R_OFF,
    SER_BAR,
    SER_CONST,
    SER_IND,
    emit,
    slope,
    value,
)

DIRECTION = 0  # direction of the cross last announced while pending, 0 when not pending
SIZE = 1
WRITES = 1


@njit(cache=True, _nrt=False)
def affine(S, r, IP, typ, idx, const):
    """(alpha, beta) with next value = alpha + beta * next close; NaN if not affine/ready."""
    if typ == SER_CONST:
        return const, 0.0
    if typ == SER_BAR:
        return (0.0, 1.0) if idx == CLOSE else (math.nan, math.nan)
    kind = IP[idx, I_KIND]
    if kind == IND_SMA:
        return sma.affine(S, r, IP[idx, I_OFF], IP[idx, I_PERIOD])
    if kind == IND_EMA:
        return ema.affine(S, r, IP[idx, I_OFF], IP[idx, I_PERIOD])
    return math.nan, math.nan


@njit(cache=True, _nrt=False)
def trigger(S, r, sb, IP, P, F, j, a, b):
    """The next close that puts a exactly on b (NaN when there is none)."""
    at, ai = P[j, R_ATYPE], P[j, R_AIDX]
    if at == SER_IND and IP[ai, I_KIND] == IND_RSI:
        return rsi.trigger(S, r, IP[ai, I_OFF], IP[ai, I_PERIOD], b)
    aa, ba = affine(S, r, IP, at, ai, F[j, F_ACONST])
    ab, bb = affine(S, r, IP, P[j, R_BTYPE], P[j, R_BIDX], F[j, F_BCONST])
    if ba == bb or ba != ba or bb != bb:
        return math.nan
    return (ab - aa) / (ba - bb)


@njit(cache=True, _nrt=False)
def step(S, r, sb, IP, P, F, j, EI, EF, e, row, state, jn):
    o = P[j, R_OFF]
    a = value(S, r, sb, IP, P[j, R_ATYPE], P[j, R_AIDX], F[j, F_ACONST])
    b = value(S, r, sb, IP, P[j, R_BTYPE], P[j, R_BIDX], F[j, F_BCONST])
    d = a - b
    direction = 0.0
    x = math.nan
    c = S[r, sb + CLOSE]
    if d == d and d != 0.0:
        x = trigger(S, r, sb, IP, P, F, j, a, b)
        if x == x and x > 0.0 and abs(x - c) <= F[j, F_WITHIN] * c:
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
    EF[e, 3] = slope(S, r, sb, IP, P[j, R_ATYPE], P[j, R_AIDX])
    EF[e, 4] = slope(S, r, sb, IP, P[j, R_BTYPE], P[j, R_BIDX])
    EF[e, 5] = x
    EF[e, 6] = x / c - 1.0
    EF[e, 7] = direction
    return e + 1, jn
