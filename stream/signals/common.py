"""What every rule shares: the program's column layout, event kinds, the slope sign, emit.

A rule is a numba function over its block of one symbol's state row. Its inputs come as
plain values (a series' value and its previous value), its parameters as plain numbers:
the generated kernel (stream/codegen.py) passes them as literals. It writes events with
`emit` into the engine's preallocated arrays.
"""

import math

from numba import njit

# symbol block: the bar itself, kept in state so rules and snapshots can read it
OPEN, HIGH, LOW, CLOSE, VOLUME, PREV_CLOSE, NBARS = range(7)
SYMBOL_SIZE = 7
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

# event record columns: bar row, symbol, rule, kind, state, event time (ns; for a retraction
# the time of the bar that fired what it retracts)
E_ROW, E_SYM, E_RULE, E_KIND, E_STATE, E_T = range(6)
E_WIDTH = 6
RETRACTED = 2  # the state of a published retraction (either kind)
V_WIDTH = 10


@njit(cache=True, _nrt=False, forceinline=True)
def sign(d):
    """Sign of a change (value - previous): +1 rising, -1 falling, 0 flat, NaN unknown."""
    if d > 0:
        return 1.0
    if d < 0:
        return -1.0
    if d == 0:
        return 0.0
    return math.nan


@njit(cache=True, _nrt=False, forceinline=True)
def emit(EI, e, row, r, rule, kind, state):
    """Write event record e (its values are written by the rule)."""
    EI[e, E_ROW] = row
    EI[e, E_SYM] = r
    EI[e, E_RULE] = rule
    EI[e, E_KIND] = kind
    EI[e, E_STATE] = state
