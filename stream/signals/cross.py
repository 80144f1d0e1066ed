"""cross (a through b) and level (a through a fixed line): side changes with hysteresis and
confirmation. Warm-up and the first known side fire nothing: a cross needs a side to leave.
"""

from numba import njit

from ..indicators.state import put
from .common import (
    BREAK_ABOVE,
    BREAK_BELOW,
    CLOSE,
    CROSS_DOWN,
    CROSS_UP,
    F_ACONST,
    F_BCONST,
    F_GAP,
    R_AIDX,
    R_ATYPE,
    R_BIDX,
    R_BTYPE,
    R_CONFIRM,
    R_OFF,
    RULE_LEVEL,
    emit,
    slope,
    value,
)

SIDE, CAND, COUNT = 0, 1, 2  # side held (+1 above, -1 below, 0 unknown); candidate; its bars
SIZE = 3
WRITES = 3


@njit(cache=True, _nrt=False, inline="always")
def write_values(S, r, sb, IP, P, F, j, EF, e, a, b):
    EF[e, 0] = S[r, sb + CLOSE]
    EF[e, 1] = a
    EF[e, 2] = b
    EF[e, 3] = slope(S, r, sb, IP, P[j, R_ATYPE], P[j, R_AIDX])
    EF[e, 4] = slope(S, r, sb, IP, P[j, R_BTYPE], P[j, R_BIDX])


@njit(cache=True, _nrt=False)
def step(S, r, sb, IP, P, F, j, EI, EF, e, row, state, up_kind, down_kind, jn):
    o = P[j, R_OFF]
    a = value(S, r, sb, IP, P[j, R_ATYPE], P[j, R_AIDX], F[j, F_ACONST])
    b = value(S, r, sb, IP, P[j, R_BTYPE], P[j, R_BIDX], F[j, F_BCONST])
    d = a - b
    if d != d:
        return e, jn
    gap = F[j, F_GAP]
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
    if n >= P[j, R_CONFIRM]:
        jn = put(S, r, jn, o + SIDE, s)
        jn = put(S, r, jn, o + CAND, 0.0)
        jn = put(S, r, jn, o + COUNT, 0.0)
        emit(EI, e, row, r, j, up_kind if s > 0 else down_kind, state)
        write_values(S, r, sb, IP, P, F, j, EF, e, a, b)
        return e + 1, jn
    jn = put(S, r, jn, o + CAND, s)
    jn = put(S, r, jn, o + COUNT, n)
    return e, jn


@njit(cache=True, _nrt=False)
def step_rule(S, r, sb, IP, P, F, j, EI, EF, e, row, state, jn):
    """Dispatch for both rule types that share this logic."""
    if P[j, 0] == RULE_LEVEL:
        return step(S, r, sb, IP, P, F, j, EI, EF, e, row, state, BREAK_ABOVE, BREAK_BELOW, jn)
    return step(S, r, sb, IP, P, F, j, EI, EF, e, row, state, CROSS_UP, CROSS_DOWN, jn)
