"""What every rule shares: the program's column layout, event kinds, series lookup, emit.

A rule is a numba function over one symbol's state row; it reads its inputs through
`value` / `slope` and writes events with `emit` into the engine's preallocated arrays.
"""

import math

from numba import njit

from ..indicators.block import PREV, VALUE

# symbol block: the bar itself, kept in state so rules and snapshots can read it
OPEN, HIGH, LOW, CLOSE, VOLUME, PREV_CLOSE, NBARS = range(7)
SYMBOL_SIZE = 7
SYMBOL_WRITES = 7
SOURCE_CODE = {"open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME}

# series references: (type, index)
SER_IND, SER_BAR, SER_CONST = 0, 1, 2

# indicator program columns
I_KIND, I_PERIOD, I_SOURCE, I_OFF = range(4)
IND_SMA, IND_EMA, IND_RSI, IND_MAX, IND_MIN = range(5)

# rule program columns (int) and parameters (float)
R_TYPE, R_OFF, R_ATYPE, R_AIDX, R_BTYPE, R_BIDX, R_CONFIRM, R_PIVOTS, R_LOOKBACK, R_NLEVELS = range(10)
R_WIDTH = 10
F_GAP, F_WITHIN, F_ACONST, F_BCONST, F_LEVELS = 0, 1, 2, 3, 4
F_WIDTH = 12
RULE_CROSS, RULE_LEVEL, RULE_BANDS, RULE_CHANNEL, RULE_DIVERGENCE, RULE_PENDING = range(6)

# event kinds (bit k of a rule's mask) and states
KINDS = (
    "",
    "cross_up",
    "cross_down",
    "enter",
    "exit",
    "break_below",
    "break_above",
    "bearish_divergence",
    "bullish_divergence",
    "cross_pending",
)
CROSS_UP, CROSS_DOWN, ENTER, EXIT, BREAK_BELOW, BREAK_ABOVE, BEARISH, BULLISH, PENDING = range(1, 10)
CONFIRMED, PROVISIONAL, RETRACTED_FINAL, RETRACTED_PROVISIONAL = range(4)

# event record columns
E_ROW, E_SYM, E_RULE, E_KIND, E_STATE = range(5)
E_WIDTH = 5
V_WIDTH = 10


@njit(cache=True, _nrt=False, inline="always")
def value(S, r, sb, IP, typ, idx, const):
    """Current value of a series: an indicator's output, a bar field, or a constant."""
    if typ == SER_IND:
        return S[r, IP[idx, I_OFF] + VALUE]
    if typ == SER_BAR:
        return S[r, sb + idx]
    return const


@njit(cache=True, _nrt=False, inline="always")
def _sign(d):
    if d > 0:
        return 1.0
    if d < 0:
        return -1.0
    if d == 0:
        return 0.0
    return math.nan


@njit(cache=True, _nrt=False, inline="always")
def slope(S, r, sb, IP, typ, idx):
    """Sign of the series' last change: +1 rising, -1 falling, 0 flat, NaN unknown."""
    if typ == SER_IND:
        o = IP[idx, I_OFF]
        return _sign(S[r, o + VALUE] - S[r, o + PREV])
    if typ == SER_BAR and idx == CLOSE:
        return _sign(S[r, sb + CLOSE] - S[r, sb + PREV_CLOSE])
    return 0.0 if typ == SER_CONST else math.nan


@njit(cache=True, _nrt=False, inline="always")
def emit(EI, e, row, r, rule, kind, state):
    """Write event record e (its values are written by the rule)."""
    EI[e, E_ROW] = row
    EI[e, E_SYM] = r
    EI[e, E_RULE] = rule
    EI[e, E_KIND] = kind
    EI[e, E_STATE] = state
