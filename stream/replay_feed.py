"""A replay as a feed: the Reader's batches as an async iterator, read ahead in a worker thread,
and paced (bars released as they become due, one batch per bar time) unless the speed is max.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator

import numpy as np

from .bars import BarBatch
from .runner import slice_batch


def _next(it: Iterator[BarBatch]) -> BarBatch | None:
    return next(it, None)


class ReplayFeed:
    """Batches of a reader; `first()` reads the first one early (to learn the timeframe)."""

    def __init__(self, reader: Iterable[BarBatch], pacer=None) -> None:
        self.reader = reader
        self.pacer = pacer  # replay.clock.Pacer, or None for as fast as possible
        self._it: Iterator[BarBatch] | None = None
        self._first: BarBatch | None = None
        self._started = False

    async def _read(self) -> BarBatch | None:
        """The next chunk, read in a worker thread (polars releases the GIL: reading overlaps stepping)."""
        return await self._submit()

    def _submit(self) -> asyncio.Future:
        """Starts reading the next chunk in a worker thread now, not when the loop next runs (the
        engine steps the current chunk without yielding to it meanwhile)."""
        if self._it is None:
            self._it = iter(self.reader)  # a generator: nothing is read before its first next()
        return asyncio.get_running_loop().run_in_executor(None, _next, self._it)

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
        while batch is not None:
            ahead = self._submit()  # the next chunk, read while this one is stepped
            try:
                if self.pacer is None:
                    yield batch
                else:
                    async for group in self._paced(batch):
                        yield group
                batch = await ahead
            finally:
                if not ahead.done():
                    ahead.cancel()
                elif not ahead.cancelled():
                    ahead.exception()  # retrieved: an error here was raised, or is moot

    async def _paced(self, batch: BarBatch) -> AsyncIterator[BarBatch]:
        """One batch per distinct bar time, each released when the pacer says it is due."""
        t = batch.t
        cuts = np.flatnonzero(t[1:] != t[:-1]) + 1
        bounds = [0, *cuts.tolist(), len(t)]
        for i, j in zip(bounds[:-1], bounds[1:], strict=False):
            await self.pacer.wait(int(t[i]))
            yield slice_batch(batch, i, j)
