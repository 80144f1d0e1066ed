"""bands: which zone between sorted levels a series is in (RSI 30/50/70: oversold, lower
half, upper half, overbought); a change fires `exit` of the old zone and `enter` of the new
one, both carrying the bars spent in the zone left.
"""

from numba import njit

from ..indicators.state import put
from .common import ENTER, EXIT, emit, sign

ZONE, BARS = 0, 1  # zone index (-1 unknown), bars in it
SIZE = 2


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, v, vp, z, close, EI, EF, e, row, j, state, jn):
    """Series value v (previous vp) in zone z (the number of levels at or below v)."""
    if v != v:
        return e, jn
    old = S[r, o + ZONE]
    bars = S[r, o + BARS]
    if old < 0.0 or z == old:
        if old < 0.0:
            jn = put(S, r, jn, o + ZONE, z)
        jn = put(S, r, jn, o + BARS, bars + 1.0)
        return e, jn
    sl = sign(v - vp)
    for q in range(2):
        emit(EI, e, row, r, j, EXIT if q == 0 else ENTER, state)
        EF[e, 0] = close
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
