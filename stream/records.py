"""EventBlock: one batch's events as the kernel's record columns, numbered.

The pipeline never needs an object per event: JSON lines are encoded from the columns in
bulk, the table reads each symbol's last event, the fan-out its symbols and rules. Event
objects are built only when asked for (`events()`, indexing, iteration).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .events import Event, from_columns
from .kernel import keep_last
from .lines import stamps
from .outputs.jsonl import encode_lines
from .signals.common import E_KIND, E_RULE, E_STATE, E_SYM, E_T, E_WIDTH, V_WIDTH

if TYPE_CHECKING:
    from .engine import Engine


_NO_REC = np.zeros((0, E_WIDTH), np.int64)
_NO_VALS = np.zeros((0, V_WIDTH))
_NO_LATE = np.zeros(0, bool)


def build(engine: Engine, seq0: int, rec: np.ndarray, late: list[bool],
          vals: list[list[float]]) -> list[Event]:
    """The Event objects of an engine's records (int64 [n, E_WIDTH]), numbered from seq0 + 1."""
    cols = rec.T.tolist()  # one call for every int column
    return from_columns(engine.timeframe, engine.symbols, engine.rule_names, engine.decoders, seq0,
                        cols[E_SYM], stamps(rec[:, E_T]), cols[E_RULE], cols[E_KIND], cols[E_STATE],
                        late, vals)


class EventBlock(Sequence[Event]):
    """Events seq0+1 .. seq0+n of an engine, as columns in row order: `rec` int64 [n, E_WIDTH]
    (row, symbol, rule, kind, state, time), `vals` float64 [n, V_WIDTH] (each rule's value
    record, stream/fields.py), `late` bool [n]."""

    def __init__(self, engine: Engine, seq0: int, rec: np.ndarray, vals: np.ndarray,
                 late: np.ndarray, events: list[Event] | None = None) -> None:
        self.engine = engine
        self.seq0 = seq0
        self.rec, self.vals, self.late = rec, vals, late
        self._events = events  # the Event objects, when built already (a live bar's)

    @classmethod
    def empty(cls, engine: Engine) -> EventBlock:
        return cls(engine, engine.seq, _NO_REC, _NO_VALS, _NO_LATE)

    def __len__(self) -> int:
        return len(self.rec)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice) or self._events is not None:
            return self.events()[i]
        q = range(len(self))[i]  # negative indices, IndexError
        return self._event(q)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    @property
    def last_seq(self) -> int:
        return self.seq0 + len(self)

    def symbol_names(self) -> list[str]:
        """Each event's symbol."""
        return np.array(self.engine.symbols, dtype=object)[self.rec[:, E_SYM]].tolist()

    def rule_names(self) -> list[str]:
        return np.array(self.engine.rule_names, dtype=object)[self.rec[:, E_RULE]].tolist()

    def events(self) -> list[Event]:
        """Every event as an Event object (built once)."""
        if self._events is None and len(self):
            pause = len(self) >= 1000 and gc.isenabled()  # a live bar's few: not worth pausing
            if pause:
                gc.disable()  # events are acyclic; collections over millions of them cost more than the work
            try:
                self._events = self._build()
            finally:
                if pause:
                    gc.enable()
        return [] if self._events is None else self._events

    def _build(self) -> list[Event]:
        """The Event objects, from whole-column lists (times formatted in bulk)."""
        return self._objects(slice(None))

    def _objects(self, rows: slice) -> list[Event]:
        return build(self.engine, self.seq0 + rows.indices(len(self.rec))[0], self.rec[rows],
                     self.late[rows].tolist(), self.vals[rows].tolist())

    def _event(self, q: int) -> Event:
        return self._objects(slice(q, q + 1))[0]

    def lines(self) -> bytes:
        """All events as JSON lines in one buffer (byte for byte `encode` of each event)."""
        if not len(self):
            return b""
        if len(self) < self.engine.encoder.SMALL:  # a live bar's: its Events (kept), by msgspec
            return encode_lines(self.events())
        eng = self.engine
        return eng.encoder.encode_records(eng.symbols, self.seq0, self.rec, self.late, self.vals)


def columns(events: Sequence[Event], start: int = 0) -> tuple[list[str], list[str], int]:
    """Symbols and rules of events[start:], and the seq just before events[start]: read from the
    columns for a block, from the objects for a plain list."""
    if isinstance(events, EventBlock):
        return events.symbol_names()[start:], events.rule_names()[start:], events.seq0 + start
    part = events[start:]
    return [e.symbol for e in part], [e.rule for e in part], (part[0].seq - 1 if part else 0)


class Latest:
    """Each symbol's last event. From a block it copies that record into columns indexed by
    symbol (one compiled pass, and no block is kept alive); the Event is built when asked for."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.rec = np.zeros((0, E_WIDTH), np.int64)
        self.vals = np.zeros((0, V_WIDTH))
        self.late = np.zeros(0, bool)
        self.seq = np.zeros(0, np.int64)  # 0: none yet
        self.objects: dict[str, Event] = {}  # from plain lists of events

    def add(self, events: Sequence[Event]) -> None:
        if not isinstance(events, EventBlock):
            self.objects.update((e.symbol, e) for e in events)
            return
        if not len(events):
            return
        self.engine = events.engine
        n = len(self.engine.symbols)
        if len(self.seq) < n:
            grow = n - len(self.seq)
            self.rec = np.concatenate([self.rec, np.zeros((grow, E_WIDTH), np.int64)])
            self.vals = np.concatenate([self.vals, np.zeros((grow, V_WIDTH))])
            self.late = np.concatenate([self.late, np.zeros(grow, bool)])
            self.seq = np.concatenate([self.seq, np.zeros(grow, np.int64)])
        last = np.empty(n, np.int64)
        c = np.ascontiguousarray  # one signature, however the block's arrays are laid out
        keep_last(c(events.rec, np.int64), c(events.vals, np.float64), c(events.late, bool), events.seq0,
                  self.rec, self.vals, self.late, self.seq, last)
        if self.objects:  # a block after plain lists: its events are newer
            for sid in np.flatnonzero(last >= 0).tolist():
                self.objects.pop(self.engine.symbols[sid], None)

    def get(self, symbol: str) -> Event | None:
        ev = self.objects.get(symbol)
        if ev is not None or self.engine is None:
            return ev
        sid = self.engine._sid.get(symbol)
        if sid is None or sid >= len(self.seq) or self.seq[sid] == 0:
            return None
        one = slice(sid, sid + 1)
        block = EventBlock(self.engine, int(self.seq[sid]) - 1, self.rec[one], self.vals[one], self.late[one])
        return block[0]
