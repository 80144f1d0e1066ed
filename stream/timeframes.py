"""Minute bars -> 1Min/5Min/15Min/1Hour/1Day bars of the regular session, forming and final.

Buckets are those of the New York regular session, 09:30-16:00 America/New_York (DST
correct, through zoneinfo; 09:30-13:00 on the NYSE's early-close days, from exchange_calendars):
5Min and 15Min bars start at 09:30, 09:35...; 1Hour bars at 09:30, 10:30, ... 15:30 (the last one
30 minutes long; 12:30-13:00 on an early close); a 1Day bar is labelled with the
session's date at midnight New York, as Alpaca labels its daily bars. Minutes outside the
session are not part of any bucket (counted). 1Min passes every minute through, extended
hours included. Crypto (`session=False`) uses UTC-aligned buckets and UTC days.

Each accepted minute yields the bucket so far: FORMING while the bucket is open, FINAL when
its last minute arrives, when a later minute shows it is over, or when `close_due` is called
past its end. A revised minute (Alpaca's `u`) re-yields the bucket: FORMING, or FINAL again
(a revision, same start) once it has closed. The per-symbol state is a row of numbers; the
step is compiled, so a frame of 10,000 symbols costs about a millisecond.
"""

from __future__ import annotations

import functools
import warnings
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numba import njit

from .bars import FINAL, FORMING, BarBatch

NY = ZoneInfo("America/New_York")
MINUTE = 60_000_000_000
DAY = 86_400 * 1_000_000_000
TIMEFRAMES = {"1Min": 1, "5Min": 5, "15Min": 15, "1Hour": 60, "1Day": 390}
NONE = np.iinfo(np.int64).min
OUTSIDE = NONE  # bucket label of a minute outside the session

# kinds of input minute
NEW, UPDATE = 0, 1
# int state columns
LAST_MIN, LABEL, END, FINAL_SENT = range(4)
# float state columns: the bucket without its last minute (pre), and the last minute (lm)
P_O, P_H, P_L, P_V, P_N, P_PV, M_O, M_H, M_L, M_C, M_V, M_N, M_PV = range(13)
# counters
C_DUP, C_STALE, C_OUTSIDE = range(3)


@functools.cache
def special_sessions() -> dict[int, tuple[int, int]]:
    """(open, close) in ns UTC of the NYSE sessions that do not run 09:30-16:00 (the early closes
    at 13:00 before and after holidays, any late open), by UTC day number, 1990 to two years
    ahead: from exchange_calendars' XNYS calendar, loaded on first need (pandas: ~0.5 s)."""
    import exchange_calendars as xcals
    import pandas as pd

    end = pd.Timestamp.today().normalize() + pd.Timedelta(days=730)
    with warnings.catch_warnings():  # the library's own pandas deprecations: nothing a user can act on
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar("XNYS", start="1990-01-01", end=end)
        days = cal.early_closes.union(cal.late_opens)
        rows = cal.schedule.loc[days]
    return {int(d.value // DAY): (int(o.value), int(c.value))
            for d, o, c in zip(days, rows["open"], rows["close"], strict=True)}


def session_bounds(day: int) -> tuple[int, int, int]:
    """(midnight, open, close) of the New York session on UTC day `day`, in ns UTC: 09:30-16:00,
    or the exchange's hours that day when it closes early (the day after Thanksgiving, ...)."""
    d = date(1970, 1, 1) + timedelta(days=int(day))

    def ns(h: int, m: int) -> int:
        return int(datetime(d.year, d.month, d.day, h, m, tzinfo=NY).timestamp()) * 1_000_000_000

    special = special_sessions().get(int(day))
    return (ns(0, 0), *special) if special else (ns(0, 0), ns(9, 30), ns(16, 0))


_BOUNDS: dict[int, tuple[int, int, int]] = {}


def _bounds(day: int) -> tuple[int, int, int]:
    b = _BOUNDS.get(day)
    if b is None:
        b = _BOUNDS[day] = session_bounds(day)
    return b


def ny_midnight(t: int) -> int:
    """Midnight New York (ns UTC) of the New York date holding t."""
    m = _bounds(t // DAY)[0]
    return m if m <= t else _bounds(t // DAY - 1)[0]


def next_ny_midnight(t: int) -> int:
    """The first midnight New York strictly after t."""
    m = _bounds(t // DAY)[0]
    return m if m > t else _bounds(t // DAY + 1)[0]


def bucket_of(t: int, timeframe: str, session: bool = True) -> tuple[int, int]:
    """(label, end) of the bucket holding the minute starting at t; (OUTSIDE, 0) if none."""
    if timeframe == "1Min":
        return t, t + MINUTE
    width = TIMEFRAMES[timeframe] * MINUTE
    if not session:
        if timeframe == "1Day":
            s = t - t % DAY
            return s, s + DAY
        s = t - t % width
        return s, s + width
    mid, op, cl = _bounds(t // DAY)
    if t < op or t >= cl:
        return OUTSIDE, 0
    if timeframe == "1Day":
        return mid, cl
    s = op + (t - op) // width * width
    return s, min(s + width, cl)


def buckets(t: np.ndarray, timeframe: str, session: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised bucket_of over minute starts (computed once per distinct minute)."""
    uniq, inv = np.unique(t, return_inverse=True)
    lab = np.empty(len(uniq), dtype=np.int64)
    end = np.empty(len(uniq), dtype=np.int64)
    for i, x in enumerate(uniq.tolist()):
        lab[i], end[i] = bucket_of(x, timeframe, session)
    return lab[inv], end[inv]


@njit(cache=True)
def _emit(F, r, lab, kind, out_i, out_f, k):
    """Write the bucket of row r (pre combined with the last minute) as output row k."""
    o, h, l, v, n, pv = F[r, M_O], F[r, M_H], F[r, M_L], F[r, M_V], F[r, M_N], F[r, M_PV]
    if F[r, P_O] == F[r, P_O]:  # an earlier minute exists (not NaN)
        o = F[r, P_O]
        h = max(h, F[r, P_H])
        l = min(l, F[r, P_L])
        v += F[r, P_V]
        n += F[r, P_N]
        pv += F[r, P_PV]
    out_i[k, 0] = r
    out_i[k, 1] = lab
    out_i[k, 2] = kind
    out_f[k, 0] = o
    out_f[k, 1] = h
    out_f[k, 2] = l
    out_f[k, 3] = F[r, M_C]
    out_f[k, 4] = v
    out_f[k, 5] = n
    out_f[k, 6] = pv / v if v > 0 else np.nan
    return k + 1


@njit(cache=True)
def _step(ids, t, kind, o, h, l, c, v, n, vw, lab, end, I, F, out_i, out_f, counts):
    """Apply minutes in order; write output bars; return how many."""
    k = 0
    for i in range(t.shape[0]):
        r = ids[i]
        ti = t[i]
        if lab[i] == OUTSIDE:
            counts[C_OUTSIDE] += 1
            continue
        last = I[r, LAST_MIN]
        if ti < last or (ti == last and (kind[i] == NEW or I[r, LABEL] == NONE)):
            if kind[i] == NEW:
                counts[C_DUP] += 1
            else:
                counts[C_STALE] += 1
            continue
        if ti > last:
            I[r, LAST_MIN] = ti
            if I[r, LABEL] != lab[i]:
                if I[r, LABEL] != NONE and I[r, FINAL_SENT] == 0:
                    k = _emit(F, r, I[r, LABEL], FINAL, out_i, out_f, k)
                I[r, LABEL] = lab[i]
                I[r, END] = end[i]
                I[r, FINAL_SENT] = 0
                F[r, P_O] = np.nan
            elif F[r, M_O] == F[r, M_O]:  # fold the previous last minute into pre
                if F[r, P_O] != F[r, P_O]:
                    F[r, P_O] = F[r, M_O]
                    F[r, P_H] = F[r, M_H]
                    F[r, P_L] = F[r, M_L]
                    F[r, P_V] = F[r, M_V]
                    F[r, P_N] = F[r, M_N]
                    F[r, P_PV] = F[r, M_PV]
                else:
                    F[r, P_H] = max(F[r, P_H], F[r, M_H])
                    F[r, P_L] = min(F[r, P_L], F[r, M_L])
                    F[r, P_V] += F[r, M_V]
                    F[r, P_N] += F[r, M_N]
                    F[r, P_PV] += F[r, M_PV]
        # the new or revised last minute
        F[r, M_O] = o[i]
        F[r, M_H] = h[i]
        F[r, M_L] = l[i]
        F[r, M_C] = c[i]
        F[r, M_V] = v[i]
        F[r, M_N] = n[i]
        F[r, M_PV] = vw[i] * v[i]
        if I[r, FINAL_SENT] == 1 or ti + 60_000_000_000 >= I[r, END]:
            I[r, FINAL_SENT] = 1
            k = _emit(F, r, I[r, LABEL], FINAL, out_i, out_f, k)
        else:
            k = _emit(F, r, I[r, LABEL], FORMING, out_i, out_f, k)
    return k


@njit(cache=True)
def _close(I, F, nsym, cutoff, out_i, out_f):
    """FINAL bars for open buckets that ended at or before cutoff."""
    k = 0
    for r in range(nsym):
        if I[r, LABEL] != NONE and I[r, FINAL_SENT] == 0 and I[r, END] <= cutoff:
            I[r, FINAL_SENT] = 1
            k = _emit(F, r, I[r, LABEL], FINAL, out_i, out_f, k)
    return k


class Aggregator:
    """Per-symbol bucket state for one timeframe; minutes in, engine bars (BarBatch) out."""

    def __init__(self, timeframe: str, session: bool = True) -> None:
        if timeframe not in TIMEFRAMES:
            raise ValueError(f"unknown timeframe {timeframe!r}")
        self.timeframe = timeframe
        self.session = session and timeframe != "1Min"
        if self.session:
            special_sessions()  # loaded now, not when the first minute arrives
        self.symbols: list[str] = []
        self.index: dict[str, int] = {}
        self.I = np.zeros((0, 4), dtype=np.int64)
        self.F = np.zeros((0, 13), dtype=np.float64)
        self.counts = np.zeros(3, dtype=np.int64)

    # ---- symbols -------------------------------------------------------------------------
    def sid(self, symbol: str) -> int:
        """The row of a symbol, created on first sight."""
        r = self.index.get(symbol)
        if r is None:
            r = self.index[symbol] = len(self.symbols)
            self.symbols.append(symbol)
            if r == len(self.I):
                cap = max(64, 2 * r)
                I = np.zeros((cap, 4), dtype=np.int64)
                F = np.full((cap, 13), np.nan)
                I[:r], F[:r] = self.I, self.F
                self.I, self.F = I, F
            self.I[r] = (NONE, NONE, 0, 1)
            self.F[r] = np.nan
        return r

    def last_minute(self, symbol: str) -> int | None:
        """Start of the newest minute accepted for the symbol (None if none)."""
        r = self.index.get(symbol)
        if r is None or self.I[r, LAST_MIN] == NONE:
            return None
        return int(self.I[r, LAST_MIN])

    def mark_seen(self, symbol: str, t: int) -> None:
        """Treat minutes before t as already seen (history loaded at this timeframe)."""
        r = self.sid(symbol)
        if t > self.I[r, LAST_MIN]:
            self.I[r, LAST_MIN] = t

    @property
    def duplicates(self) -> int:
        return int(self.counts[C_DUP])

    @property
    def stale(self) -> int:
        """Updates naming a minute older than the symbol's newest (not applied)."""
        return int(self.counts[C_STALE])

    @property
    def outside(self) -> int:
        return int(self.counts[C_OUTSIDE])

    # ---- stepping -------------------------------------------------------------------------
    def add(self, ids: np.ndarray, t: np.ndarray, kind: np.ndarray, o: np.ndarray, h: np.ndarray,
            l: np.ndarray, c: np.ndarray, v: np.ndarray, n: np.ndarray, vw: np.ndarray,
            late: bool = False) -> BarBatch:
        """Minutes (rows from `sid`, in arrival order) -> the engine bars they produce."""
        m = len(t)
        if m == 0:
            return self._batch(0, np.zeros((0, 3), np.int64), np.zeros((0, 7)), late)
        lab, end = buckets(t, self.timeframe, self.session)
        out_i = np.empty((2 * m, 3), dtype=np.int64)
        out_f = np.empty((2 * m, 7), dtype=np.float64)
        k = _step(ids, t, kind, o, h, l, c, v, n, vw, lab, end, self.I, self.F, out_i, out_f,
                  self.counts)
        return self._batch(k, out_i, out_f, late)

    def add_bars(self, bars, late: bool = False) -> BarBatch:
        """Convenience for tests and history: Bar records (forming=True means an update)."""
        ids = np.array([self.sid(b.symbol) for b in bars], dtype=np.int64)

        def col(f, default=np.nan):
            return np.array([default if f(b) is None else f(b) for b in bars], dtype=np.float64)

        return self.add(ids, np.array([b.start for b in bars], dtype=np.int64),
                        np.array([UPDATE if b.forming else NEW for b in bars], dtype=np.int8),
                        col(lambda b: b.open), col(lambda b: b.high), col(lambda b: b.low),
                        col(lambda b: b.close), col(lambda b: b.volume),
                        col(lambda b: b.trade_count), col(lambda b: b.vwap), late)

    def close_due(self, cutoff: int, late: bool = False) -> BarBatch:
        """FINAL bars for every open bucket that ended at or before `cutoff` (ns UTC)."""
        ns = len(self.symbols)
        out_i = np.empty((ns, 3), dtype=np.int64)
        out_f = np.empty((ns, 7), dtype=np.float64)
        k = _close(self.I, self.F, ns, cutoff, out_i, out_f)
        return self._batch(k, out_i, out_f, late)

    def settle(self, symbols: list[str]) -> None:
        """Mark the symbols' open buckets as closed without a bar (history replaced them)."""
        for s in symbols:
            r = self.index.get(s)
            if r is not None:
                self.I[r, FINAL_SENT] = 1

    def open_until(self) -> int | None:
        """The earliest end among buckets still open (None if all are closed)."""
        ns = len(self.symbols)
        if ns == 0:
            return None
        I = self.I[:ns]
        m = (I[:, LABEL] != NONE) & (I[:, FINAL_SENT] == 0)
        return int(I[m, END].min()) if m.any() else None

    def _batch(self, k: int, out_i: np.ndarray, out_f: np.ndarray, late: bool) -> BarBatch:
        rows = out_i[:k, 0]
        if k and len(self.symbols) > 1:  # only the symbols present, in row order: O(symbols)
            present = np.zeros(len(self.symbols), dtype=bool)
            present[rows] = True
            uniq = np.flatnonzero(present)
            sym = (np.cumsum(present) - 1)[rows]
            names = self.symbols
            symbols = list(names) if len(uniq) == len(names) else [names[i] for i in uniq.tolist()]
        else:
            symbols = [self.symbols[int(rows[0])]] if k else []
            sym = np.zeros(k, dtype=np.int64)
        f = out_f[:k]
        return BarBatch(symbols=symbols, sym=sym, t=out_i[:k, 1].copy(), open=f[:, 0], high=f[:, 1],
                        low=f[:, 2], close=f[:, 3], volume=f[:, 4], trade_count=f[:, 5],
                        vwap=f[:, 6], kind=out_i[:k, 2].astype(np.int8), late=late)
