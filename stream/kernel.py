"""The step loop over a batch and the bookkeeping every config shares.

`run` is a template: stream/codegen.py compiles it once per config beside that config's
generated `_apply` (every indicator and rule of one bar, with offsets and parameters as
literals). The helpers here are compiled once for all configs.
"""

import math

from numba import njit

from .bars import FORMING, WARM
from .signals.common import (
    CONFIRMED,
    E_KIND,
    E_ROW,
    E_RULE,
    E_STATE,
    E_SYM,
    E_T,
    E_WIDTH,
    PROVISIONAL,
    RETRACTED,
    RETRACTED_FINAL,
    RETRACTED_PROVISIONAL,
    V_WIDTH,
    emit,
)

NONE = -(2**63)  # "no bar yet" time, "nothing said"
# per-symbol int columns: last final bar start, forming bar start, then 4 x rules:
# masks of the last final bar's events, of the forming bar's, rule enabled, scratch
LAST_T, FORM_T, MASKS = 0, 1, 2
STAT_REJECTED, STAT_REVISED, STAT_BARS, STAT_FORMING = range(4)
SAID_SLOTS = 4  # per rule: its two kinds x (final, forming)

__all__ = [
    "CONFIRMED", "E_WIDTH", "FORMING", "FORM_T", "LAST_T", "MASKS", "NONE", "PROVISIONAL",
    "RETRACTED_FINAL", "RETRACTED_PROVISIONAL", "SAID_SLOTS", "STAT_BARS", "STAT_FORMING", "STAT_REJECTED",
    "STAT_REVISED", "V_WIDTH", "WARM", "math", "njit", "publish", "reconcile",
]
WIDTH = NR = 0  # a config's state row width and rule count: the generated module sets its own


def kernel_sizes(cap: int, ecap: int, width: int, nr: int) -> tuple[int, int]:
    """Lengths of the float and int state buffers (`unpack`) for cap symbols and ecap event records."""
    return (cap * (3 * width + SAID_SLOTS * nr * V_WIDTH) + ecap * V_WIDTH,
            4 + cap * (MASKS + 4 * nr + SAID_SLOTS * nr) + ecap * E_WIDTH)


def unpack(fb, ib, cap, width, nr):
    """The engine's arrays as views of its two buffers (cap symbols): from the floats S (state
    rows), F (with the forming bar), B (before the last final bar), SAYV (values said, per rule
    slot) and EF (event values); from the ints stats, I (times and masks), SAYT (times said) and
    EI (event records). Plain Python for the engine, compiled (inlined) into a generated kernel's
    `run_one`."""
    vw = SAID_SLOTS * nr * V_WIDTH
    iw = MASKS + 4 * nr
    tw = SAID_SLOTS * nr
    a = cap * width
    c = 3 * a + cap * vw
    d = 4 + cap * iw
    e = d + cap * tw
    return (fb[:a].reshape((cap, width)), fb[a : 2 * a].reshape((cap, width)),
            fb[2 * a : 3 * a].reshape((cap, width)), fb[3 * a : c].reshape((cap, vw)),
            fb[c:].reshape((-1, V_WIDTH)), ib[:4], ib[4:d].reshape((cap, iw)), ib[d:e].reshape((cap, tw)),
            ib[e:].reshape((-1, E_WIDTH)))


@njit(cache=True, _nrt=False)
def reconcile(EI, EF, e0, e, I, r, old, store, drop, row, rstate, tmp, nr):
    """Compare the events of [e0, e) with the masks at I[r, old:]: retract what no longer
    fires, drop (if `drop`) what was already said, store the new masks at I[r, store:]."""
    for j in range(nr):
        m = 0
        for q in range(e0, e):
            if EI[q, E_RULE] == j and EI[q, E_STATE] < RETRACTED_FINAL:  # what fired, not retractions
                m |= 1 << EI[q, E_KIND]
        I[r, tmp + j] = m
    end = e
    for j in range(nr):
        gone = I[r, old + j] & ~I[r, tmp + j]
        k = 1
        while gone:
            if gone & (1 << k):
                emit(EI, end, row, r, j, k, rstate)
                for c in range(V_WIDTH):
                    EF[end, c] = math.nan
                end += 1
                gone &= ~(1 << k)
            k += 1
    w = e0
    for q in range(e0, end):
        if drop and q < e and I[r, old + EI[q, E_RULE]] & (1 << EI[q, E_KIND]):
            continue
        if w != q:
            for c in range(E_WIDTH):
                EI[w, c] = EI[q, c]
            for c in range(V_WIDTH):
                EF[w, c] = EF[q, c]
        w += 1
    for j in range(nr):
        I[r, store + j] = I[r, tmp + j]
    return w


@njit(cache=True, _nrt=False, forceinline=True)  # a call would pass ~30 exploded array fields
def publish(EI, EF, e0, e, r, ti, drop, SAYT, SAYV):
    """Turn one bar's records [e0, e) into what is said; returns the new end. A signal is
    remembered (time and values) per rule, kind and final/forming; a retraction repeats
    what it retracts, or is dropped when that was never said. `drop` (a warm-up bar, or
    stepping quietly) says nothing and remembers nothing."""
    if drop:
        return e0
    w = e0
    for q in range(e0, e):
        j = EI[q, E_RULE]
        k = EI[q, E_KIND]
        st = EI[q, E_STATE]
        slot = SAID_SLOTS * j + 2 * ((k - 1) & 1)
        if st == PROVISIONAL or st == RETRACTED_PROVISIONAL:
            slot += 1
        v0 = slot * V_WIDTH
        if st >= RETRACTED_FINAL:
            said = SAYT[r, slot]
            if said == NONE:
                continue
            SAYT[r, slot] = NONE
            EI[w, E_ROW] = EI[q, E_ROW]
            EI[w, E_SYM] = r
            EI[w, E_RULE] = j
            EI[w, E_KIND] = k
            EI[w, E_STATE] = RETRACTED
            EI[w, E_T] = said
            for c in range(V_WIDTH):
                EF[w, c] = SAYV[r, v0 + c]
        else:
            SAYT[r, slot] = ti
            for c in range(V_WIDTH):
                SAYV[r, v0 + c] = EF[q, c]
            if w != q:
                for c in range(E_WIDTH):
                    EI[w, c] = EI[q, c]
                for c in range(V_WIDTH):
                    EF[w, c] = EF[q, c]
            EI[w, E_T] = ti
        w += 1
    return w


@njit(cache=True, _nrt=False, nogil=True)
def revisable(sym, t, kind, next_t, need):
    """need[i] = 1 where the state before row i must be kept: a FINAL bar that a later row of
    the batch may revise (the symbol's next FINAL row is not later), or its symbol's last FINAL
    row (a later batch may revise it). Forming rows are marked too (they never need it)."""
    for r in range(next_t.shape[0]):
        next_t[r] = NONE
    for i in range(t.shape[0] - 1, -1, -1):
        if kind[i] & FORMING:
            need[i] = 1
            continue
        nt = next_t[sym[i]]
        need[i] = 1 if nt == NONE or nt <= t[i] else 0
        next_t[sym[i]] = t[i]


@njit(cache=True, _nrt=False, nogil=True)
def keep_last(rec, vals, late, seq0, to_rec, to_vals, to_late, to_seq, last):
    """Each symbol's last record of a block (rec, vals, late; numbered from seq0 + 1) copied into
    the symbol's row of to_rec, to_vals, to_late and to_seq; last[s] = the index of symbol s's
    last record, -1 if it has none. One pass, no sort."""
    for s in range(last.shape[0]):
        last[s] = -1
    for q in range(rec.shape[0]):
        last[rec[q, E_SYM]] = q
    for s in range(last.shape[0]):
        q = last[s]
        if q >= 0:
            for c in range(rec.shape[1]):
                to_rec[s, c] = rec[q, c]
            for c in range(vals.shape[1]):
                to_vals[s, c] = vals[q, c]
            to_late[s] = late[q]
            to_seq[s] = seq0 + 1 + q


def _apply(S, I, r, row, ti, o_, h_, l_, c_, v_, EI, EF, e, state):
    """Stand-in for the generated one: every indicator and rule of one bar (stream/codegen.py)."""
    raise NotImplementedError


def _bar(S, I, EI, EF, SAYT, SAYV, F, B, stats, nr, quiet, e, i, r, ti, o, h, lo, c, v, kd, nd):
    """One bar (batch row i, symbol r, start ti, kind kd; the state before it kept in B if nd)
    after events [0, e); returns the new event count. A template: see the module doc.

    A revision starts from a saved copy of the symbol's state row, a forming bar steps on a copy
    (the steps keep no journal here: a copy per revisable bar is cheaper than a branch per write
    on every bar)."""
    m_final, m_form, tmp = MASKS, MASKS + nr, MASKS + 3 * nr
    last = I[r, LAST_T]
    forming = (kd & FORMING) != 0
    if ti < last or (forming and ti == last):  # older than the last final bar: refused
        stats[STAT_REJECTED] += 1
        return e
    revision = not forming and ti == last  # as if it had come instead of the last bar
    e0 = e
    w = S.shape[1]
    if forming:  # evaluated on top of the last final bar, which it leaves as it was
        if I[r, FORM_T] != ti:
            if I[r, FORM_T] != NONE:  # a forming bar that never closed: retract all it said
                e = reconcile(EI, EF, e, e, I, r, m_form, m_form, False, i, RETRACTED_PROVISIONAL, tmp, nr)
            for j in range(nr):
                I[r, m_form + j] = 0
            I[r, FORM_T] = ti
        for k in range(w):  # it steps on a copy of the state: S stays as the last final bar left it
            F[r, k] = S[r, k]
    elif revision:
        for k in range(w):  # the state before the bar it replaces
            S[r, k] = B[r, k]
    else:
        if nd:  # a revision may follow: keep the state before this bar
            for k in range(w):
                B[r, k] = S[r, k]
        I[r, LAST_T] = ti
    e1 = e
    state = PROVISIONAL if forming else CONFIRMED
    e = _apply(F if forming else S, I, r, i, ti, o, h, lo, c, v, EI, EF, e, state)  # F: for snapshots
    if forming:
        e = reconcile(EI, EF, e1, e, I, r, m_form, m_form, True, i, RETRACTED_PROVISIONAL, tmp, nr)
        stats[STAT_FORMING] += 1
    elif revision:
        e = reconcile(EI, EF, e1, e, I, r, m_final, m_final, True, i, RETRACTED_FINAL, tmp, nr)
        stats[STAT_REVISED] += 1
    else:
        ft = I[r, FORM_T]
        if ft != NONE and ft <= ti:  # the forming bar closed (its provisional events are
            # confirmed or retracted), or was abandoned (all retracted)
            lo_ = e1 if ft == ti else e
            e = reconcile(EI, EF, lo_, e, I, r, m_form, m_form, False, i, RETRACTED_PROVISIONAL, tmp, nr)
            for j in range(nr):
                I[r, m_form + j] = 0
            I[r, FORM_T] = NONE
        if nd:  # a revision may follow: remember what this bar fired
            for j in range(nr):
                I[r, m_final + j] = 0
            reconcile(EI, EF, e1, e, I, r, m_final, m_final, False, i, RETRACTED_FINAL, tmp, nr)
        stats[STAT_BARS] += 1
    if e > e0:
        e = publish(EI, EF, e0, e, r, ti, quiet or (kd & WARM) != 0, SAYT, SAYV)
    return e


def run(sym, t, op, hi, lo, cl, vo, kind, need, start, S, I, EI, EF, SAYT, SAYV, F, B, maxev, stats,
        nr, quiet):
    """Step rows start: of a batch in order; returns (the next row, event count). Stops early,
    to be called again, when the event arrays could overflow. A template: see the module doc."""
    n = t.shape[0]
    cap = EI.shape[0]
    e = 0
    for i in range(start, n):
        if e + maxev > cap:
            return i, e
        e = _bar(S, I, EI, EF, SAYT, SAYV, F, B, stats, nr, quiet, e, i, sym[i], t[i], op[i], hi[i], lo[i],
                 cl[i], vo[i], kind[i], need[i] != 0)
    return n, e


def run_one(FB, IB, cap, quiet, r, t, op, hi, lo, cl, vo, kind):
    """A one-bar batch (symbol r; the columns of its row 0) over the state buffers of `unpack`
    (cap symbols), its state before kept (a revision may follow): the live call, with as few arguments for
    numba to dispatch as can be (each costs time). Returns the event count. A template: see the
    module doc."""
    S, F, B, SAYV, EF, stats, I, SAYT, EI = unpack(FB, IB, cap, WIDTH, NR)
    return _bar(S, I, EI, EF, SAYT, SAYV, F, B, stats, NR, quiet, 0, 0, r, t[0], op[0], hi[0], lo[0], cl[0],
                vo[0], kind[0], True)
