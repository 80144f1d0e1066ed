"""divergence: price pivots against the oscillator at the same bars. Bearish: a higher
price pivot high with a lower oscillator value than the previous pivot high; bullish: a
lower pivot low with a higher oscillator value. Fires when the second pivot is confirmed
(k bars after it), so it never repaints.
"""

from numba import njit

from ..indicators.pivots import classify, push, wrap
from ..indicators.state import put
from .common import BEARISH, BULLISH, emit, sign

# the last pivot high, then the last pivot low: time (us), price, oscillator, bar index
T, PRICE, OSC, IDX = range(4)
HI, LO = 0, 4
POS = 8  # ring slot of the newest bar
RINGS = 9  # then rings of 2k+1: price (kept twice over, see pivots.classify), oscillator, time


def size(k: int) -> int:
    return RINGS + 4 * (2 * k + 1)


@njit(cache=True, _nrt=False, forceinline=True)
def step(S, r, o, k, lookback, price, osc, oscp, close, nbars, t_us, EI, EF, e, row, j, state, jn):
    """This bar's price and oscillator (osc, previous oscp); the bar is number nbars."""
    w = 2 * k + 1
    c = int(nbars) - 1  # this bar's index
    pr = o + RINGS
    s = wrap(int(S[r, o + POS]) + 1, w) if c else 0
    jn = put(S, r, jn, o + POS, s)
    jn = push(S, r, pr, w, s, price, jn)
    jn = put(S, r, jn, pr + 2 * w + s, osc)
    jn = put(S, r, jn, pr + 3 * w + s, t_us)
    kind = classify(S, r, pr, k, wrap(s + 1, w), c + 1)
    if kind == 0:
        return e, jn
    slot = wrap(s + k + 1, w)  # the bar k back: oldest + k
    p = S[r, pr + slot]
    q = S[r, pr + 2 * w + slot]
    b = o + (HI if kind > 0 else LO)
    prev_idx = S[r, b + IDX]
    if prev_idx == prev_idx and (c - k) - prev_idx <= lookback:
        p1 = S[r, b + PRICE]
        q1 = S[r, b + OSC]
        fired = (kind > 0 and p > p1 and q < q1) or (kind < 0 and p < p1 and q > q1)
        if fired:
            emit(EI, e, row, r, j, BEARISH if kind > 0 else BULLISH, state)
            EF[e, 0] = close
            EF[e, 1] = osc
            EF[e, 2] = sign(osc - oscp)
            EF[e, 3] = S[r, b + T]
            EF[e, 4] = p1
            EF[e, 5] = q1
            EF[e, 6] = S[r, pr + 3 * w + slot]
            EF[e, 7] = p
            EF[e, 8] = q
            e += 1
    jn = put(S, r, jn, b + T, S[r, pr + 3 * w + slot])
    jn = put(S, r, jn, b + PRICE, p)
    jn = put(S, r, jn, b + OSC, q)
    jn = put(S, r, jn, b + IDX, float(c - k))
    return e, jn
