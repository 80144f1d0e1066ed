"""bands: which zone between sorted levels a series is in (RSI 30/50/70: oversold, lower
half, upper half, overbought); a change fires `exit` of the old zone and `enter` of the new
one, both carrying the bars spent in the zone left.
"""

from numba import njit

from ..indicators.state import put
from .common import (
    CLOSE,
    ENTER,
    EXIT,
    F_LEVELS,
    R_AIDX,
    R_ATYPE,
    R_NLEVELS,
    R_OFF,
    emit,
    slope,
    value,
)

ZONE, BARS = 0, 1  # zone index (-1 unknown), bars in it
SIZE = 2
WRITES = 2


@njit(cache=True, _nrt=False)
def zone_of(F, j, nlev, v):
    """Index of the zone holding v: the number of levels at or below it."""
    z = 0
    for q in range(nlev):
        if v >= F[j, F_LEVELS + q]:
            z += 1
    return z


@njit(cache=True, _nrt=False)
def step(S, r, sb, IP, P, F, j, EI, EF, e, row, state, jn):
    o = P[j, R_OFF]
    v = value(S, r, sb, IP, P[j, R_ATYPE], P[j, R_AIDX], 0.0)
    if v != v:
        return e, jn
    z = float(zone_of(F, j, P[j, R_NLEVELS], v))
    old = S[r, o + ZONE]
    bars = S[r, o + BARS]
    if old < 0.0 or z == old:
        if old < 0.0:
            jn = put(S, r, jn, o + ZONE, z)
        jn = put(S, r, jn, o + BARS, bars + 1.0)
        return e, jn
    sl = slope(S, r, sb, IP, P[j, R_ATYPE], P[j, R_AIDX])
    for q in range(2):
        emit(EI, e, row, r, j, EXIT if q == 0 else ENTER, state)
        EF[e, 0] = S[r, sb + CLOSE]
        EF[e, 1] = v
        EF[e, 2] = sl
        EF[e, 3] = old if q == 0 else z  # the zone the kind names
        EF[e, 4] = old
        EF[e, 5] = z
        EF[e, 6] = bars
        e += 1
    jn = put(S, r, jn, o + ZONE, z)
    jn = put(S, r, jn, o + BARS, 1.0)
    return e, jn
