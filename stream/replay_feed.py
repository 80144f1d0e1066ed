"""A replay as a feed: the Reader's batches as an async iterator, read ahead in a worker thread,
and paced (bars released as they become due, one batch per bar time) unless the speed is max.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .bars import BarBatch

AHEAD = 6  # chunks read ahead of the engine: a Parquet row group bigger than a chunk is decoded
# at once, taking several chunks' time (a million rows in one polars thread: about six chunks'
# stepping), and the chunks read before it cover that time


def _next(it: Iterator[BarBatch]) -> BarBatch | None:
    return next(it, None)


class ReplayFeed:
    """Batches of a reader; `first()` reads the first one early (to learn the timeframe)."""

    def __init__(self, reader: Iterable[BarBatch], pacer=None) -> None:
        self.reader = reader
        self.pacer = pacer  # replay.clock.Pacer, or None for as fast as possible
        self._it: Iterator[BarBatch] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: collections.deque[asyncio.Future] = collections.deque()  # reads queued, in order
        self._first: BarBatch | None = None
        self._started = False

    async def _read(self) -> BarBatch | None:
        """The next chunk, read in the reading thread (polars releases the GIL: reading overlaps stepping)."""
        if not self._ahead:
            self._submit()
        return await self._ahead.popleft()

    def _submit(self) -> None:
        """Queues the read of one more chunk. One thread reads, so reads run in order; they start
        now, not when the loop next runs (the engine steps without yielding to it meanwhile)."""
        if self._it is None:
            self._it = iter(self.reader)  # a generator: nothing is read before its first next()
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="barwatch-read")
        assert self._pool is not None
        self._ahead.append(asyncio.wrap_future(self._pool.submit(_next, self._it)))

    async def first(self) -> BarBatch | None:
        """The first batch (kept: iteration starts with it)."""
        if not self._started:
            self._first = await self._read()
            self._started = True
        return self._first

    def lag(self) -> float | None:
        """Seconds the replay runs behind its pace (None at max speed or if unknown)."""
        if self.pacer is None:
            return None
        lag = getattr(self.pacer, "lag", None)
        return lag() if callable(lag) else lag

    async def __aiter__(self) -> AsyncIterator[BarBatch]:
        batch = await self.first()
        try:
            while batch is not None:
                while len(self._ahead) < AHEAD:  # the next chunks, read while this one is stepped
                    self._submit()
                if self.pacer is None:
                    yield batch
                else:
                    async for group in self._paced(batch):
                        yield group
                batch = await self._read()
        finally:
            self._close()

    def _close(self) -> None:
        """Queued reads are dropped; one under way finishes in its thread, unused."""
        while self._ahead:
            f = self._ahead.popleft()
            if not f.done():
                f.cancel()
            elif not f.cancelled():
                f.exception()  # retrieved: an error here was raised, or is moot
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _paced(self, batch: BarBatch) -> AsyncIterator[BarBatch]:
        """One batch per distinct bar time, each released when the pacer says it is due."""
        t = batch.t
        cuts = np.flatnonzero(t[1:] != t[:-1]) + 1
        bounds = [0, *cuts.tolist(), len(t)]
        for i, j in zip(bounds[:-1], bounds[1:], strict=False):
            await self.pacer.wait(int(t[i]))
            yield batch.rows(i, j)
