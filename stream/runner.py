"""feed -> engine -> outputs: the one loop that replay and live both run.

A feed is any async iterable of BarBatch (a replayed file, the Alpaca stream). Each batch is
stepped synchronously in the event loop (the engine is fast), its events are encoded to JSON
lines once, and every output gets (events, lines) and is flushed. Between batches the loop
yields, so the table's timer and the fan-out's senders run; nothing here ever waits on them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Sequence
from typing import Protocol

from .bars import BarBatch
from .engine import Engine
from .events import Event
from .records import EventBlock


class Output(Protocol):
    """Something that takes each batch's events; it must not block."""

    def write(self, events: Sequence[Event], blob: bytes) -> None: ...

    def flush(self) -> None: ...


def slice_batch(b: BarBatch, i: int, j: int) -> BarBatch:
    """Rows i:j of a batch (views, no copies)."""
    return BarBatch(b.symbols, b.sym[i:j], b.t[i:j], b.open[i:j], b.high[i:j], b.low[i:j], b.close[i:j],
                    b.volume[i:j], b.trade_count[i:j], b.vwap[i:j], b.kind[i:j], b.late)


class Session:
    """Runs a feed through an engine into outputs, counting bars and events."""

    def __init__(self, engine: Engine, outputs: list[Output]) -> None:
        self.engine = engine
        self.outputs = outputs  # kept, not copied: outputs appended later get events too
        self.bars = 0
        self.events = 0
        self.batches = 0
        self.last_t: int | None = None  # start of the newest bar stepped
        self.started = time.perf_counter()
        self.ended: float | None = None

    @property
    def elapsed(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def step(self, batch: BarBatch) -> EventBlock:
        """One batch through the engine and into every output (flushed)."""
        events = self.engine.step(batch)
        blob = events.lines()
        for out in self.outputs:
            out.write(events, blob)
            out.flush()
        self.bars += len(batch)
        self.events += len(events)
        self.batches += 1
        if len(batch):
            self.last_t = int(batch.t[-1])
        return events

    def _max_rows(self) -> int | None:
        limits = [m() for o in self.outputs if (m := getattr(o, "max_rows", None)) is not None]
        limits = [x for x in limits if x]
        return min(limits) if limits else None

    async def run(self, feed: AsyncIterable[BarBatch], started: float | None = None) -> None:
        """Step every batch of the feed; returns when it ends (or raises what it raises).
        `started` (perf_counter) dates `elapsed` from earlier, e.g. from when reading began."""
        self.started = time.perf_counter() if started is None else started
        try:
            async for batch in feed:
                rows = self._max_rows()
                if rows is None or len(batch) <= rows:
                    self.step(batch)
                else:  # fan-out clients connected: slices, yielding between them (see FanOut.max_rows)
                    for i in range(0, len(batch), rows):
                        self.step(slice_batch(batch, i, i + rows))
                        await asyncio.sleep(0)
                await asyncio.sleep(0)
        finally:
            self.ended = time.perf_counter()
