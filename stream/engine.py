"""The engine: per-symbol state in arrays and one compiled step over a batch of bars.

The kernel (stream/kernel.py `run`, compiled per config by stream/codegen.py) is the only
place bars meet state: live bars, replayed files and warm starts all go through it. It
writes what is said into preallocated record arrays; `step` hands them out as an
EventBlock (JSON lines in bulk), `process` as Event objects.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import codegen
from .bars import LATE, BarBatch, read_only
from .config import Settings, load_config
from .events import Event, rfc3339
from .fields import decoder, value_fields
from .indicators.block import PREV, VALUE
from .kernel import (
    FORM_T,
    LAST_T,
    MASKS,
    NONE,
    STAT_BARS,
    STAT_REJECTED,
    STAT_REVISED,
    kernel_sizes,
    revisable,
    unpack,
)
from .lines import LineEncoder
from .program import Program, compile_program
from .records import EventBlock, build
from .signals import bands
from .signals.common import (
    CLOSE,
    E_ROW,
    E_WIDTH,
    HIGH,
    I_OFF,
    LOW,
    NBARS,
    OPEN,
    PREV_CLOSE,
    V_WIDTH,
    VOLUME,
)


def _num(x: float) -> float | None:
    return None if x != x else float(x)


class Engine:
    """Per-symbol indicator and rule state for one config; `step` / `process` run a batch."""

    def __init__(self, config: Settings | None = None, event_capacity: int = 65536) -> None:
        self.config = config if config is not None else load_config()
        self.program: Program = compile_program(self.config)
        self.kernel = codegen.load(self.program)
        self._run_one = self.kernel.run_one
        # `run_one` gets writable columns only (a live bar's), so it has one signature: a bar with a
        # read-only column is copied into these first (numba types an array by its flags; a copy
        # of every bar cost ~0.8 us, doubling a quiet bar's step)
        self._bar = (np.zeros(1, np.int64), *(np.zeros(1) for _ in range(5)), np.zeros(1, np.int8))
        self.timeframe = self.config.timeframe
        self.symbols: list[str] = []
        self._sid: dict[str, int] = {}
        p = self.program
        self._nr = len(p.rules)
        self._ecap = max(event_capacity, 4 * p.max_events)
        self._allocate(0)
        self.seq = 0
        self.rule_names = [r.name for r in p.rules]
        self.fields = [value_fields(r, *p.rule_inputs[j]) for j, r in enumerate(p.rules)]
        self.decoders = [decoder(f) for f in self.fields]
        self.encoder = LineEncoder(self.timeframe, self.rule_names, self.fields)
        self._empty = EventBlock.empty(self)

    # ---- symbols -------------------------------------------------------------------------
    def _symbol_id(self, symbol: str) -> int:
        sid = self._sid.get(symbol)
        return sid if sid is not None else self._add_symbols([symbol])[0]

    def _add_symbols(self, names: list[str]) -> list[int]:
        """State rows for symbols new to the engine (distinct), set up at once: a replay's first
        batch brings a thousand. Capacity grows by doubling: amortised O(1) per new symbol."""
        a, b = len(self.symbols), len(self.symbols) + len(names)
        if b > len(self.S):
            cap = max(16, 2 * len(self.S))
            while cap < b:
                cap *= 2
            kept = (self.S, self.I, self.SAYT, self.SAYV, self.F, self.B, self.stats.copy())
            self._allocate(cap)
            for new, old in zip((self.S, self.I, self.SAYT, self.SAYV, self.F, self.B), kept, strict=False):
                new[:a] = old[:a]
            self.stats[:] = kept[-1]
        self.S[a:b] = self.program.template
        self.I[a:b] = 0
        self.I[a:b, LAST_T] = NONE
        self.I[a:b, FORM_T] = NONE
        self.SAYT[a:b] = NONE
        en = MASKS + 2 * self._nr
        for j, rule in enumerate(self.program.rules):
            self.I[a:b, en + j] = [1 if not rule.symbols or s in rule.symbols else 0 for s in names]
        ids = list(range(a, b))
        self._sid.update(zip(names, ids, strict=True))
        self.symbols += names
        return ids

    def _allocate(self, cap: int) -> None:
        """State for `cap` symbols (zeroed) in two buffers, one of floats and one of ints, and the
        arrays the kernel reads as views of them: a one-bar call hands numba two arrays, not eight
        (each costs dispatch time). Layout: stream.kernel.unpack."""
        p, nr = self.program, self._nr
        fb, ib = kernel_sizes(cap, self._ecap, p.width, nr)
        self._fb = np.zeros(fb)
        self._ib = np.zeros(ib, dtype=np.int64)
        self._cap = cap
        (self.S, self.F, self.B, self.SAYV, self.EF, self.stats, self.I, self.SAYT,
         self.EI) = unpack(self._fb, self._ib, cap, p.width, nr)

    # ---- stepping --------------------------------------------------------------------------
    def step(self, batch: BarBatch, emit: bool = True) -> EventBlock:
        """Step every bar of the batch in order; what they say, numbered from `seq` + 1.
        With emit=False (a warm start) nothing is said, so nothing can be retracted later."""
        if len(batch.t) == 1:  # the live case: a bar that fires has its Events built at once
            ne = self._one(batch, emit)  # (its lines are encoded from them)
            if ne:
                rec, vals, seq0 = self.EI[:ne].copy(), self.EF[:ne].copy(), self.seq
                events = self._one_events(batch, rec, vals)
                return EventBlock(self, seq0, rec, vals, np.full(ne, events[0].late), events=events)
        else:
            said = self._run(batch, emit)
            if said is not None:
                return self._block(batch, *said)
        if self._empty.seq0 != self.seq:  # one empty block a seq: most live bars say nothing
            self._empty = EventBlock.empty(self)
        return self._empty

    def process(self, batch: BarBatch, emit: bool = True) -> list[Event]:
        """Step every bar of the batch in order; the events they fire (none if not emit)."""
        if len(batch.t) == 1:  # the live case: built straight from the kernel's records
            ne = self._one(batch, emit)
            return self._one_events(batch, self.EI[:ne], self.EF[:ne]) if ne else []
        said = self._run(batch, emit)
        return [] if said is None else self._block(batch, *said).events()

    def _one_events(self, batch: BarBatch, rec: np.ndarray, vals: np.ndarray) -> list[Event]:
        """A one-bar batch's event records as Event objects, numbered as this engine's next."""
        late = bool(batch.late or batch.kind[0] & LATE)
        seq0, self.seq = self.seq, self.seq + len(rec)
        return build(self, seq0, rec, [late] * len(rec), vals.tolist())

    def _one(self, batch: BarBatch, emit: bool) -> int:
        """A one-bar batch through the kernel's `run_one` (no arrays built); its event count."""
        names = batch.symbols
        name = names[batch.sym[0]] if len(names) > 1 else names[0]
        r = self._sid.get(name)
        if r is None:
            r = self._symbol_id(name)
        b = batch
        t, op, hi, lo, cl, vo, kind = b.t, b.open, b.high, b.low, b.close, b.volume, b.kind
        if (t.flags.writeable and op.flags.writeable and hi.flags.writeable and lo.flags.writeable
                and cl.flags.writeable and vo.flags.writeable and kind.flags.writeable):
            return self._run_one(self._fb, self._ib, self._cap, not emit, r, t, op, hi, lo, cl, vo, kind)
        bar = self._bar  # e.g. a row of a file's chunk, in polars' memory: copied
        for dst, src in zip(bar, (t, op, hi, lo, cl, vo, kind), strict=True):
            dst[0] = src[0]
        return self._run_one(self._fb, self._ib, self._cap, not emit, r, *bar)

    def _run(self, batch: BarBatch, emit: bool) -> tuple[np.ndarray, np.ndarray] | None:
        """The kernel over a batch of several bars (one bar goes by `_one`), row by row: its event
        records and value records; None if none.
        (Rows are stepped in batch order. Stepping a many-symbol batch symbol by symbol keeps each
        symbol's state in cache, but saved the kernel 0-15 % for 1,000 symbols and cost the
        encoder ~45 ns an event to put the records back in row order.)"""
        n = len(batch.t)
        if n == 0:
            return None
        if batch.symbols == self.symbols:  # the engine's own list (most replay chunks): ids as they are
            ids = batch.sym
        else:
            known = self._sid.get
            lut = np.array([known(s, -1) for s in batch.symbols], dtype=np.int64)
            new = np.flatnonzero(lut < 0)
            if len(new):  # symbols new to the engine
                names = [batch.symbols[k] for k in new.tolist()]
                distinct = list(dict.fromkeys(names))
                ids = dict(zip(distinct, self._add_symbols(distinct), strict=True))
                lut[new] = [ids[name] for name in names]
            ids = lut[batch.sym] if len(lut) > 1 else np.full(n, lut[0], dtype=np.int64)
        ids = read_only(ids)
        t, op, hi, lo, cl, vo, kind = _columns(batch)
        need = np.empty(n, dtype=np.int8)
        nsym = len(self.symbols)
        revisable(ids, t, kind, np.empty(nsym, dtype=np.int64), need)
        p, run = self.program, self.kernel.run
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        start = 0
        while True:
            # records go to fresh arrays that the block keeps (a batch's are megabytes: not copied)
            rows = min(self._ecap, (n - start) * p.max_events)
            ei, ef = np.empty((rows, E_WIDTH), dtype=np.int64), np.empty((rows, V_WIDTH))
            start, ne = run(ids, t, op, hi, lo, cl, vo, kind, need, start, self.S, self.I, ei, ef, self.SAYT,
                            self.SAYV, self.F, self.B, p.max_events, self.stats, self._nr, not emit)
            if ne:
                parts.append((ei[:ne], ef[:ne]))
            if start >= n:
                break
        if not parts:
            return None
        rec, vals = parts[0] if len(parts) == 1 else (np.concatenate([a for a, _ in parts]),
                                                        np.concatenate([b for _, b in parts]))
        return rec, vals

    def _block(self, batch: BarBatch, rec: np.ndarray, vals: np.ndarray) -> EventBlock:
        """Number the records as this engine's next events."""
        if batch.late:
            late = np.ones(len(rec), dtype=bool)
        else:
            late = (batch.kind[rec[:, E_ROW]] & LATE) != 0
        block = EventBlock(self, self.seq, rec, vals, late)
        self.seq += len(block)
        return block

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
        if sid is None or rule not in self.rule_names:
            return None
        x = self.kernel.trigger(self.S, sid, self.rule_names.index(rule))
        return None if x != x or x <= 0 else float(x)

    def snapshot(self, symbol: str) -> dict | None:
        """The symbol's latest state: bar, every indicator (value, previous value, slope), band
        zones. While a forming bar is newer than the last final one, as that bar would leave it
        (`forming` true): a live daily table shows today, not yesterday."""
        sid = self._sid.get(symbol)
        if sid is None:
            return None
        p = self.program
        sb = p.sb
        t = int(self.I[sid, LAST_T])
        ft = int(self.I[sid, FORM_T])
        forming = ft != NONE and ft > t
        row = self.F[sid] if forming else self.S[sid]
        t = ft if forming else t
        close, prev = row[sb + CLOSE], row[sb + PREV_CLOSE]
        snap = {
            "symbol": symbol,
            "time": None if t == NONE else rfc3339(t),
            "t": None if t == NONE else t,
            "forming": forming,
            "bars": int(row[sb + NBARS]),
            "open": _num(row[sb + OPEN]),
            "high": _num(row[sb + HIGH]),
            "low": _num(row[sb + LOW]),
            "close": _num(close),
            "volume": _num(row[sb + VOLUME]),
            "change_pct": _num(100.0 * (close / prev - 1.0)) if prev == prev and prev else None,
            "indicators": {},
            "previous": {},
            "slopes": {},
            "zones": {},
        }
        for i, spec in enumerate(p.indicators):
            o = p.IP[i, I_OFF]
            v, pv = row[o + VALUE], row[o + PREV]
            snap["indicators"][spec.name] = _num(v)
            snap["previous"][spec.name] = _num(pv)
            snap["slopes"][spec.name] = None if v != v or pv != pv else int(np.sign(v - pv))
        for j, rule in enumerate(p.rules):
            if rule.type == "bands":
                z = int(row[p.RP[j, 1] + bands.ZONE])
                snap["zones"][rule.name] = None if z < 0 else rule.params["zones"][z]
        return snap


def _columns(batch: BarBatch) -> tuple[np.ndarray, ...]:
    """The batch's columns the kernels read (t, open, high, low, close, volume, kind), read-only."""
    return tuple(read_only(a) for a in (batch.t, batch.open, batch.high, batch.low, batch.close,
                                         batch.volume, batch.kind))


def warm_up(config: Settings, stepping: Callable[[], None] | None = None) -> None:
    """Loads (on a cold cache: compiles) what stepping and encoding with this config run, on a
    throwaway engine, so that no bar waits for a compile: a replay does it in a thread while its
    first bars are read, a live session before it connects. (numba compiles per argument type,
    read-only or not: the kernels get every column read-only, `_columns`.) `stepping` is called
    (once, from this thread) as soon as a batch can be stepped, before the one-bar and encoding
    kernels load: a replay's first steps (compiled code, no GIL) overlap their loading."""
    engine = Engine(config)
    batch = BarBatch(["A", "B"], np.arange(2) % 2, np.zeros(2, np.int64), *np.ones((5, 2)))
    engine.step(batch).lines()
    if stepping is not None:
        stepping()
    engine.step(batch.rows(0, 1))  # one bar (`run_one`): live bars, a paced or fanned-out replay's
    n = engine.encoder.SMALL
    zero = np.zeros(n, np.int64)
    engine.encoder.encode(["A"], 0, zero, zero, zero, zero + 1, zero, zero.astype(bool),
                          np.zeros((n, engine.EF.shape[1])))
