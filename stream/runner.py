"""feed -> engine -> outputs: the one loop that replay and live both run.

A feed is any async iterable of BarBatch (a replayed file, the Alpaca stream). Each batch is
stepped synchronously in the event loop (the engine is fast), its events are encoded to JSON
lines once, and every output gets (events, lines) and is flushed. Between batches the loop
yields, so the table's timer and the fan-out's senders run; nothing here ever waits on them.
With `ahead` (a replay at max speed) a batch's lines are encoded in a worker thread while the
next batches are stepped (the kernel releases the GIL); outputs still get batches in order.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from .bars import BarBatch
from .engine import Engine
from .events import Event
from .records import EventBlock

LINES_BEHIND = 3  # batches the encoding may fall behind the stepping (with `ahead`): stepping and
# encoding take about as long over a replay, not batch by batch; waiting on each previous batch's
# lines left a core idle whenever one took longer (10M-bar replay: 85 % of two cores busy; 90 %).
# Encoded batches go out as the next is stepped: a feed that stalls holds back up to this many.


class Output(Protocol):
    """Something that takes each batch's events; it must not block."""

    def write(self, events: Sequence[Event], blob: bytes) -> None: ...

    def flush(self) -> None: ...


class Session:
    """Runs a feed through an engine into outputs, counting bars and events."""

    def __init__(self, engine: Engine, outputs: list[Output], ahead: bool = False) -> None:
        self.engine = engine
        self.outputs = outputs  # kept, not copied: outputs appended later get events too
        self.ahead = ahead  # encode a batch's lines in a worker while the next batch is stepped
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
        self._write(batch, events, events.lines())
        return events

    def _write(self, batch: BarBatch, events: EventBlock, blob: bytes) -> None:
        for out in self.outputs:
            out.write(events, blob)
            out.flush()
        self.bars += len(batch)
        self.events += len(events)
        self.batches += 1
        if len(batch):
            self.last_t = int(batch.t[-1])

    def _max_rows(self) -> int | None:
        limits = [m() for o in self.outputs if (m := getattr(o, "max_rows", None)) is not None]
        limits = [x for x in limits if x]
        return min(limits) if limits else None

    async def run(self, feed: AsyncIterable[BarBatch], started: float | None = None) -> None:
        """Step every batch of the feed; returns when it ends (or raises what it raises).
        `started` (perf_counter) dates `elapsed` from earlier, e.g. from when reading began."""
        self.started = time.perf_counter() if started is None else started
        pool = ThreadPoolExecutor(1, thread_name_prefix="barwatch-lines") if self.ahead else None
        queue: collections.deque[tuple[BarBatch, EventBlock, Future]] = collections.deque()
        try:
            async for batch in feed:
                rows = self._max_rows()
                if pool is not None and rows is None:  # the kernel (nogil) overlaps the encoding
                    events = self.engine.step(batch)
                    queue.append((batch, events, pool.submit(events.lines)))
                    # out go the batches already encoded, and the oldest while too many are not
                    while queue and (len(queue) > LINES_BEHIND or queue[0][2].done()):
                        blob = await asyncio.wrap_future(queue[0][2])
                        done, events, _ = queue.popleft()
                        self._write(done, events, blob)
                else:
                    while queue:  # in order: what was stepped before goes out first
                        done, events, fut = queue.popleft()
                        self._write(done, events, await asyncio.wrap_future(fut))
                    if rows is None or len(batch) <= rows:
                        self.step(batch)
                    else:  # fan-out clients connected: slices, yielding between them (see FanOut.max_rows)
                        for i in range(0, len(batch), rows):
                            self.step(batch.rows(i, i + rows))
                            await asyncio.sleep(0)
                await asyncio.sleep(0)
        finally:
            try:
                while queue:  # stepped is said: on an error or a stop too
                    done, events, fut = queue.popleft()
                    self._write(done, events, fut.result())
            finally:
                if pool is not None:
                    pool.shutdown()
                self.ended = time.perf_counter()
