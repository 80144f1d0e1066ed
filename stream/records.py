"""EventBlock: one batch's events as the kernel's record columns, numbered.

The pipeline never needs an object per event: JSON lines are encoded from the columns in
bulk, the table reads each symbol's last event, the fan-out its symbols and rules. Event
objects are built only when asked for (`events()`, indexing, iteration).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .events import SCHEMA_VERSION, STATES, Event, event_id, rfc3339
from .signals.common import E_KIND, E_RULE, E_STATE, E_SYM, E_T, E_WIDTH, KINDS, V_WIDTH

if TYPE_CHECKING:
    from .engine import Engine


_NO_REC = np.zeros((0, E_WIDTH), np.int64)
_NO_VALS = np.zeros((0, V_WIDTH))
_NO_LATE = np.zeros(0, bool)


class EventBlock(Sequence[Event]):
    """Events seq0+1 .. seq0+n of an engine, as columns."""

    def __init__(self, engine: Engine, seq0: int, rec: np.ndarray, vals: np.ndarray,
                 late: np.ndarray) -> None:
        self.engine = engine
        self.seq0 = seq0
        self.rec = rec  # int64 [n, E_WIDTH]: row, symbol, rule, kind, state, time
        self.vals = vals  # float64 [n, V_WIDTH]: each rule's value record (stream/fields.py)
        self.late = late  # bool [n]
        self._events: list[Event] | None = None

    @classmethod
    def empty(cls, engine: Engine) -> EventBlock:
        return cls(engine, engine.seq, _NO_REC, _NO_VALS, _NO_LATE)

    def __len__(self) -> int:
        return len(self.rec)

    def __getitem__(self, i):  # type: ignore[override]
        return self.events()[i]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    @property
    def last_seq(self) -> int:
        return self.seq0 + len(self)

    def symbol_names(self) -> list[str]:
        """Each event's symbol."""
        return np.array(self.engine.symbols, dtype=object)[self.rec[:, E_SYM]].tolist()

    def rule_names(self) -> list[str]:
        return np.array(self.engine.rule_names, dtype=object)[self.rec[:, E_RULE]].tolist()

    def last_by_symbol(self) -> list[Event]:
        """The last event of each symbol present, in order of those events."""
        sym = self.rec[:, E_SYM]
        rev = sym[::-1]
        _, first = np.unique(rev, return_index=True)
        idx = np.sort(len(sym) - 1 - first)
        return [self._event(int(q)) for q in idx]

    def events(self) -> list[Event]:
        """Every event as an Event object (built once)."""
        if not len(self.rec):
            return []
        if self._events is None:
            self._events = [self._event(q) for q in range(len(self))]
        return self._events

    def _event(self, q: int) -> Event:
        eng = self.engine
        _, sid, j, k, st, t = self.rec[q].tolist()
        time_ = rfc3339(t)
        symbol, rule, kind = eng.symbols[sid], eng.rule_names[j], KINDS[k]
        return Event(SCHEMA_VERSION, self.seq0 + 1 + q, event_id(symbol, time_, rule, kind), symbol, time_,
                     eng.timeframe, rule, kind, STATES[st], eng.decoders[j](self.vals[q].tolist()),
                     bool(self.late[q]))

    def lines(self) -> bytes:
        """All events as JSON lines in one buffer (byte for byte `encode` of each event)."""
        if not len(self):
            return b""
        r, eng = self.rec, self.engine
        return eng.encoder.encode(eng.symbols, self.seq0, r[:, E_SYM], r[:, E_T], r[:, E_RULE], r[:, E_KIND],
                                  r[:, E_STATE], self.late, self.vals)



def columns(events: Sequence[Event], start: int = 0) -> tuple[list[str], list[str], int]:
    """Symbols and rules of events[start:], and the seq just before events[start]: read from the
    columns for a block, from the objects for a plain list."""
    if isinstance(events, EventBlock):
        return events.symbol_names()[start:], events.rule_names()[start:], events.seq0 + start
    part = events[start:]
    return [e.symbol for e in part], [e.rule for e in part], (part[0].seq - 1 if part else 0)


def last_by_symbol(events: Sequence[Event]) -> list[Event]:
    """Each symbol's last event (a block builds only those objects)."""
    if isinstance(events, EventBlock):
        return events.last_by_symbol()
    return list({e.symbol: e for e in events}.values())
