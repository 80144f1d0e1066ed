"""The engine: per-symbol state in arrays and one compiled step over a batch of bars.

`run` is the only place bars meet state: live bars, replayed files and warm starts all go
through it. It writes event records into preallocated arrays; Python turns only those
(rare) records into Event objects.
"""

from __future__ import annotations

import gc
import math

import numpy as np
from numba import njit

from .bars import FORMING, LATE, WARM, BarBatch
from .config import Settings, load_config
from .events import SCHEMA_VERSION, Event, event_id, rfc3339
from .fields import decoder, value_fields
from .indicators import ema, extremes, rsi, sma
from .indicators.block import PREV, VALUE
from .indicators.state import JLEN, forget, put, undo
from .program import Program, compile_program
from .signals import bands, channel, cross, divergence, pending
from .signals.common import (
    CLOSE,
    CONFIRMED,
    E_KIND,
    E_ROW,
    E_RULE,
    E_WIDTH,
    F_ACONST,
    F_BCONST,
    HIGH,
    I_KIND,
    I_OFF,
    I_PERIOD,
    I_SOURCE,
    IND_EMA,
    IND_MAX,
    IND_RSI,
    IND_SMA,
    KINDS,
    LOW,
    NBARS,
    OPEN,
    PREV_CLOSE,
    PROVISIONAL,
    R_AIDX,
    R_ATYPE,
    R_BIDX,
    R_BTYPE,
    RETRACTED_FINAL,
    RETRACTED_PROVISIONAL,
    RULE_BANDS,
    RULE_CHANNEL,
    RULE_DIVERGENCE,
    RULE_PENDING,
    V_WIDTH,
    VOLUME,
    emit,
)
from .signals.common import value as series_value

NONE = np.iinfo(np.int64).min  # "no bar yet" time
# per-symbol int columns: last final bar start, forming bar start, then 4 x rules:
# masks of the last final bar's events, of the forming bar's, rule enabled, scratch
LAST_T, FORM_T, MASKS = 0, 1, 2
STAT_REJECTED, STAT_REVISED, STAT_BARS, STAT_FORMING = range(4)


@njit(cache=True, _nrt=False)
def _apply(S, I, r, sb, row, t_us, o_, h_, l_, c_, v_, IP, RP, RF, EI, EF, e, state, en, journal):
    """One bar through every indicator and rule of symbol r; returns the event count.
    Without `journal` the writes cannot be undone (no revision of this bar can follow)."""
    jn = int(S[r, JLEN]) if journal else -1
    jn = put(S, r, jn, sb + PREV_CLOSE, S[r, sb + CLOSE])
    jn = put(S, r, jn, sb + OPEN, o_)
    jn = put(S, r, jn, sb + HIGH, h_)
    jn = put(S, r, jn, sb + LOW, l_)
    jn = put(S, r, jn, sb + CLOSE, c_)
    jn = put(S, r, jn, sb + VOLUME, v_)
    jn = put(S, r, jn, sb + NBARS, S[r, sb + NBARS] + 1.0)
    for i in range(IP.shape[0]):
        k = IP[i, I_KIND]
        o = IP[i, I_OFF]
        n = IP[i, I_PERIOD]
        x = S[r, sb + IP[i, I_SOURCE]]
        if k == IND_SMA:
            jn = sma.step(S, r, o, n, x, jn)
        elif k == IND_EMA:
            jn = ema.step(S, r, o, n, x, jn)
        elif k == IND_RSI:
            jn = rsi.step(S, r, o, n, x, jn)
        elif k == IND_MAX:
            jn = extremes.step(S, r, o, n, x, 1.0, jn)
        else:
            jn = extremes.step(S, r, o, n, x, -1.0, jn)
    for j in range(RP.shape[0]):
        if I[r, en + j] == 0:
            continue
        typ = RP[j, 0]
        if typ == RULE_BANDS:
            e, jn = bands.step(S, r, sb, IP, RP, RF, j, EI, EF, e, row, state, jn)
        elif typ == RULE_CHANNEL:
            e, jn = channel.step(S, r, sb, IP, RP, RF, j, EI, EF, e, row, state, jn)
        elif typ == RULE_DIVERGENCE:
            e, jn = divergence.step(S, r, sb, IP, RP, RF, j, EI, EF, e, row, state, t_us, jn)
        elif typ == RULE_PENDING:
            e, jn = pending.step(S, r, sb, IP, RP, RF, j, EI, EF, e, row, state, jn)
        else:
            e, jn = cross.step_rule(S, r, sb, IP, RP, RF, j, EI, EF, e, row, state, jn)
    if jn >= 0:
        S[r, JLEN] = jn
    return e


@njit(cache=True, _nrt=False)
def _reconcile(EI, EF, e0, e, I, r, old, store, drop, row, rstate, tmp, nr):
    """Compare the events of [e0, e) with the masks at I[r, old:]: retract what no longer
    fires, drop (if `drop`) what was already said, store the new masks at I[r, store:]."""
    for j in range(nr):
        m = 0
        for q in range(e0, e):
            if EI[q, E_RULE] == j:
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


@njit(cache=True, _nrt=False)
def journal_needed(sym, t, kind, next_t, need):
    """need[i] = 1 where row i must be journaled: a FINAL bar that a later row of the batch
    may revise (the symbol's next FINAL row is not later), or its symbol's last FINAL row
    (a later batch may revise it). Forming rows always journal (peek undoes them)."""
    for r in range(next_t.shape[0]):
        next_t[r] = NONE
    for i in range(t.shape[0] - 1, -1, -1):
        if kind[i] & FORMING:
            need[i] = 1
            continue
        nt = next_t[sym[i]]
        need[i] = 1 if nt == NONE or nt <= t[i] else 0
        next_t[sym[i]] = t[i]


@njit(cache=True, _nrt=False)
def run(sym, t, op, hi, lo, cl, vo, kind, need, start, S, I, IP, RP, RF, sb, EI, EF, maxev, stats):
    """Step rows start.. of a batch; returns (next row, event count). Stops early, to be
    called again, when the event arrays could overflow."""
    nr = RP.shape[0]
    m_final, m_form, en, tmp = MASKS, MASKS + nr, MASKS + 2 * nr, MASKS + 3 * nr
    n = t.shape[0]
    cap = EI.shape[0]
    e = 0
    for i in range(start, n):
        if e + maxev > cap:
            return i, e
        r = sym[i]
        ti = t[i]
        last = I[r, LAST_T]
        t_us = float(ti // 1000)
        if not kind[i] & FORMING:
            if ti < last:
                stats[STAT_REJECTED] += 1
                continue
            e0 = e
            if ti == last:  # a revision of the last bar: as if it had come instead
                undo(S, r, 0)
                e = _apply(S, I, r, sb, i, t_us, op[i], hi[i], lo[i], cl[i], vo[i],
                           IP, RP, RF, EI, EF, e, CONFIRMED, en, need[i] != 0)
                e = _reconcile(EI, EF, e0, e, I, r, m_final, m_final, True, i,
                               RETRACTED_FINAL, tmp, nr)
                stats[STAT_REVISED] += 1
                continue
            forget(S, r)
            I[r, LAST_T] = ti
            e = _apply(S, I, r, sb, i, t_us, op[i], hi[i], lo[i], cl[i], vo[i],
                       IP, RP, RF, EI, EF, e, CONFIRMED, en, need[i] != 0)
            ft = I[r, FORM_T]
            if ft != NONE and ft <= ti:  # the forming bar closed, or was abandoned
                if ft == ti:
                    e = _reconcile(EI, EF, e0, e, I, r, m_form, m_form, False, i,
                                   RETRACTED_PROVISIONAL, tmp, nr)
                else:
                    e = _reconcile(EI, EF, e, e, I, r, m_form, m_form, False, i,
                                   RETRACTED_PROVISIONAL, tmp, nr)
                for j in range(nr):
                    I[r, m_form + j] = 0
                I[r, FORM_T] = NONE
            for j in range(nr):
                I[r, m_final + j] = 0
            _reconcile(EI, EF, e0, e, I, r, m_final, m_final, False, i, RETRACTED_FINAL, tmp, nr)
            stats[STAT_BARS] += 1
        else:  # a forming bar: evaluated on top of the last final bar, then undone
            if ti <= last:
                stats[STAT_REJECTED] += 1
                continue
            if I[r, FORM_T] != ti:
                if I[r, FORM_T] != NONE:  # a forming bar that never closed
                    e = _reconcile(EI, EF, e, e, I, r, m_form, m_form, False, i,
                                   RETRACTED_PROVISIONAL, tmp, nr)
                for j in range(nr):
                    I[r, m_form + j] = 0
                I[r, FORM_T] = ti
            mark = int(S[r, JLEN])
            e0 = e
            e = _apply(S, I, r, sb, i, t_us, op[i], hi[i], lo[i], cl[i], vo[i],
                       IP, RP, RF, EI, EF, e, PROVISIONAL, en, True)
            undo(S, r, mark)
            e = _reconcile(EI, EF, e0, e, I, r, m_form, m_form, True, i,
                           RETRACTED_PROVISIONAL, tmp, nr)
            stats[STAT_FORMING] += 1
    return n, e


_STATE_NAMES = ("confirmed", "provisional", "retracted", "retracted")


def _num(x: float) -> float | None:
    return None if x != x else float(x)


def _sign(x: float) -> int | None:
    return None if x != x else int(x)


class Engine:
    """Per-symbol indicator and rule state for one config; `process` steps a batch."""

    def __init__(self, config: Settings | None = None, event_capacity: int = 65536) -> None:
        self.config = config if config is not None else load_config()
        self.program: Program = compile_program(self.config)
        self.timeframe = self.config.timeframe
        self.symbols: list[str] = []
        self._sid: dict[str, int] = {}
        self._nr = len(self.program.rules)
        self.S = np.zeros((0, self.program.width))
        self.I = np.zeros((0, MASKS + 4 * self._nr), dtype=np.int64)
        cap = max(event_capacity, 4 * self.program.max_events)
        self.EI = np.zeros((cap, E_WIDTH), dtype=np.int64)
        self.EF = np.zeros((cap, V_WIDTH), dtype=np.float64)
        self.stats = np.zeros(4, dtype=np.int64)
        self.seq = 0
        self._one = np.ones(1, dtype=np.int8)  # a one-bar batch always journals its bar
        self._said: dict[tuple, Event] = {}  # latest confirmed / provisional per symbol, rule, kind
        p = self.program
        self.fields = [value_fields(r, *p.rule_inputs[j]) for j, r in enumerate(p.rules)]
        self._decoders = [self._decoder(j) for j in range(self._nr)]

    # ---- symbols -------------------------------------------------------------------------
    def _symbol_id(self, symbol: str) -> int:
        sid = self._sid.get(symbol)
        if sid is not None:
            return sid
        sid = len(self.symbols)
        if sid == len(self.S):  # grow by doubling: amortised O(1) per new symbol
            cap = max(16, 2 * len(self.S))
            S = np.zeros((cap, self.program.width))
            S[:sid] = self.S
            I = np.zeros((cap, self.I.shape[1]), dtype=np.int64)
            I[:sid] = self.I
            self.S, self.I = S, I
        self.S[sid] = self.program.template
        self.I[sid] = 0
        self.I[sid, LAST_T] = NONE
        self.I[sid, FORM_T] = NONE
        en = MASKS + 2 * self._nr
        for j, rule in enumerate(self.program.rules):
            self.I[sid, en + j] = 1 if not rule.symbols or symbol in rule.symbols else 0
        self._sid[symbol] = sid
        self.symbols.append(symbol)
        return sid

    # ---- stepping --------------------------------------------------------------------------
    def process(self, batch: BarBatch, emit: bool = True) -> list[Event]:
        """Step every bar of the batch in order; the events they fire (none if not emit)."""
        n = len(batch)
        if n == 0:
            return []
        lut = np.array([self._symbol_id(s) for s in batch.symbols], dtype=np.int64)
        ids = lut[batch.sym] if len(lut) > 1 else np.full(n, lut[0], dtype=np.int64)
        p = self.program
        if n == 1:
            need = self._one
        else:
            need = np.empty(n, dtype=np.int8)
            journal_needed(ids, batch.t, batch.kind, np.empty(len(self.symbols), dtype=np.int64), need)
        out: list[Event] = []
        start = 0
        while True:
            start, ne = run(ids, batch.t, batch.open, batch.high, batch.low, batch.close,
                            batch.volume, batch.kind, need, start, self.S, self.I, p.IP, p.RP, p.RF,
                            p.sb, self.EI, self.EF, p.max_events, self.stats)
            if ne:
                gc_was_on = gc.isenabled()
                gc.disable()  # events are acyclic; collections over millions of them cost more than the work
                try:
                    self._records(batch, ne, out if emit else None)
                finally:
                    if gc_was_on:
                        gc.enable()
            if start >= n:
                return out

    def _records(self, batch: BarBatch, ne: int, out: list[Event] | None) -> None:
        """Turn the kernel's event records into Events (the only per-event Python work)."""
        if out is None:  # stepping without events (warm start): nothing said, nothing to retract
            return
        recs = self.EI[:ne].tolist()
        vals = self.EF[:ne].tolist()
        rows = self.EI[:ne, E_ROW]
        bar_t = batch.t[rows].tolist()
        flags = (batch.kind[rows] & (WARM | LATE)).tolist()
        names = [r.name for r in self.program.rules]
        symbols, said, decoders = self.symbols, self._said, self._decoders
        tf = self.timeframe
        stamps: dict[int, str] = {}
        for (_, sid, j, k, st), f, t, flag in zip(recs, vals, bar_t, flags, strict=True):
            if flag & WARM:  # history stepped for state only
                continue
            late = batch.late or bool(flag & LATE)
            if st >= RETRACTED_FINAL:
                old = said.pop((sid, j, k, st == RETRACTED_PROVISIONAL), None)
                if old is not None and out is not None:
                    self.seq += 1
                    out.append(Event(SCHEMA_VERSION, self.seq, old.id, old.symbol, old.time, tf, old.rule,
                                     old.kind, "retracted", old.values, late=late))
                continue
            time_ = stamps.get(t)
            if time_ is None:
                time_ = stamps[t] = rfc3339(t)
            symbol, rule, kind = symbols[sid], names[j], KINDS[k]
            ev = Event(SCHEMA_VERSION, self.seq + 1, event_id(symbol, time_, rule, kind), symbol,
                       time_, tf, rule, kind, _STATE_NAMES[st], decoders[j](f), late)
            said[(sid, j, k, st == PROVISIONAL)] = ev
            if out is not None:
                self.seq += 1
                out.append(ev)

    def _decoder(self, j: int):
        """A function turning rule j's value record (a list of floats) into its `values` dict."""
        return decoder(self.fields[j])

    # ---- reading state -----------------------------------------------------------------------
    @property
    def rejected(self) -> int:
        """Bars older than their symbol's last bar, refused."""
        return int(self.stats[STAT_REJECTED])

    @property
    def revised(self) -> int:
        return int(self.stats[STAT_REVISED])

    @property
    def bars(self) -> int:
        return int(self.stats[STAT_BARS])

    def trigger(self, symbol: str, rule: str) -> float | None:
        """For a pending rule: the next close that would complete its cross (None if none)."""
        sid = self._sid.get(symbol)
        names = [r.name for r in self.program.rules]
        if sid is None or rule not in names or self.program.rules[names.index(rule)].type != "pending":
            return None
        p, j = self.program, names.index(rule)
        S = self.S
        a = series_value(S, sid, p.sb, p.IP, p.RP[j, R_ATYPE], p.RP[j, R_AIDX], p.RF[j, F_ACONST])
        b = series_value(S, sid, p.sb, p.IP, p.RP[j, R_BTYPE], p.RP[j, R_BIDX], p.RF[j, F_BCONST])
        x = pending.trigger(S, sid, p.sb, p.IP, p.RP, p.RF, j, a, b)
        return None if x != x or x <= 0 else float(x)

    def snapshot(self, symbol: str) -> dict | None:
        """The symbol's latest state: bar, every indicator (value and slope), band zones."""
        sid = self._sid.get(symbol)
        if sid is None:
            return None
        p = self.program
        row = self.S[sid]
        sb = p.sb
        t = int(self.I[sid, LAST_T])
        close, prev = row[sb + CLOSE], row[sb + PREV_CLOSE]
        snap = {
            "symbol": symbol,
            "time": None if t == NONE else rfc3339(t),
            "t": None if t == NONE else t,
            "bars": int(row[sb + NBARS]),
            "open": _num(row[sb + OPEN]),
            "high": _num(row[sb + HIGH]),
            "low": _num(row[sb + LOW]),
            "close": _num(close),
            "volume": _num(row[sb + VOLUME]),
            "change_pct": _num(100.0 * (close / prev - 1.0)) if prev == prev and prev else None,
            "indicators": {},
            "slopes": {},
            "zones": {},
        }
        for i, spec in enumerate(p.indicators):
            o = p.IP[i, I_OFF]
            v, pv = row[o + VALUE], row[o + PREV]
            snap["indicators"][spec.name] = _num(v)
            snap["slopes"][spec.name] = None if v != v or pv != pv else int(np.sign(v - pv))
        for j, rule in enumerate(p.rules):
            if rule.type == "bands":
                z = int(row[p.RP[j, 1] + bands.ZONE])
                snap["zones"][rule.name] = None if z < 0 else rule.params["zones"][z]
        return snap
