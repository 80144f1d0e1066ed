"""The runner (feed -> engine -> outputs) and the replay feed: same lines however the bars are
cut into batches, outputs added late are fed, paced batches are one bar time each."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest

from replay.clock import Pacer
from replay.store import Reader, default_data
from stream.bars import BarBatch
from stream.engine import Engine
from stream.events import encode
from stream.outputs.jsonl import JsonLines
from stream.replay_feed import ReplayFeed
from stream.runner import Session


@pytest.fixture(scope="module")
def batch(daily) -> BarBatch:
    return BarBatch.from_polars(daily.filter(daily["t"].dt.year() >= 2011))


@pytest.fixture(scope="module")
def want(batch) -> bytes:
    return b"".join(encode(e) for e in Engine().process(batch))


async def chunks(b: BarBatch, size: int):
    for i in range(0, len(b), size):
        yield b.rows(i, i + size)


def run(feed, outputs_later=(), ahead=False) -> tuple[Session, bytes]:
    out = io.BytesIO()
    session = Session(Engine(), [JsonLines(out)], ahead=ahead)
    for o in outputs_later:
        session.outputs.append(o)
    asyncio.run(session.run(feed))
    return session, out.getvalue()


@pytest.mark.parametrize("ahead", [False, True])
@pytest.mark.parametrize("size", [1, 7, 1000, 10**9])
def test_same_lines_whatever_the_batches(batch, want, size, ahead):
    session, got = run(chunks(batch, size), ahead=ahead)
    assert got == want
    assert session.bars == len(batch) and session.events == len(want.splitlines())
    assert session.batches == -(-len(batch) // size)


def test_outputs_added_after_construction_are_fed_and_can_ask_for_slices(batch, want):
    class Small:
        def __init__(self):
            self.lines = []

        def write(self, events, blob):
            self.lines.append(blob)

        def flush(self):
            pass

        def max_rows(self):
            return 50

    small = Small()
    session, got = run(chunks(batch, 10**9), [small])
    assert got == want and b"".join(small.lines) == want
    assert session.batches == -(-len(batch) // 50)


def test_ahead_stopped_mid_run_still_writes_every_stepped_batch(batch, want):
    """A stop (cancel) while batches are encoded in the worker: all that was stepped goes out."""
    out = io.BytesIO()
    session = Session(Engine(), [JsonLines(out)], ahead=True)

    async def feed():
        for i in range(0, len(batch), 300):
            yield batch.rows(i, i + 300)
            if i >= 1200:
                await asyncio.sleep(3600)  # stalls: the stop comes while waiting for bars

    async def main():
        task = asyncio.create_task(session.run(feed()))
        while session.engine.bars < 1500:  # all stepped (some perhaps not yet written)
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(batch) > 1500 and session.bars == 1500 and session.batches == 5
    got = out.getvalue()
    assert got == want[: len(got)] and len(got.splitlines()) == session.events > 0


def test_paced_feed_is_one_bar_time_per_batch(want):
    reader = Reader([default_data()], start=1293840000 * 10**9)  # 2011-01-01
    direct = list(Reader([default_data()], start=1293840000 * 10**9))
    feed = ReplayFeed(reader, Pacer(1e12))
    seen: list[BarBatch] = []

    async def collect():
        async for b in feed:
            seen.append(b)

    asyncio.run(collect())
    assert all(len(np.unique(b.t)) == 1 for b in seen)
    assert len(seen) == len(np.unique(np.concatenate([b.t for b in direct])))
    assert np.array_equal(np.concatenate([b.close for b in seen]), np.concatenate([b.close for b in direct]))
    _, got = run(ReplayFeed(Reader([default_data()], start=1293840000 * 10**9), Pacer(1e12)))
    assert got == want


class _Chunks:
    """A reader stand-in: a real generator of batches that can fail at chunk `fail`, and
    records which thread read each chunk and when reading is asked past a stop."""

    def __init__(self, batch: BarBatch, size: int, fail: int | None = None) -> None:
        self.batch, self.size, self.fail = batch, size, fail
        self.read: list[int] = []
        self.threads: set[str] = set()

    def __iter__(self):
        import threading

        for k, i in enumerate(range(0, len(self.batch), self.size)):
            self.threads.add(threading.current_thread().name)
            if k == self.fail:
                raise ValueError(f"bad chunk {k}")
            self.read.append(k)
            yield self.batch.rows(i, i + self.size)


def test_feed_reads_ahead_in_order_in_one_thread_and_an_error_comes_after_the_chunks_before_it(batch):
    chunks_ = _Chunks(batch, 100, fail=6)
    got: list[BarBatch] = []

    async def collect():
        async for b in ReplayFeed(chunks_):
            got.append(b)
            await asyncio.sleep(0.01)  # the engine's time: reads run ahead meanwhile

    with pytest.raises(ValueError, match="bad chunk 6"):
        asyncio.run(collect())
    assert [int(b.t[0]) for b in got] == [int(batch.t[100 * k]) for k in range(6)]  # in order, all six
    assert len(chunks_.threads) == 1 and chunks_.threads != {"MainThread"}


def test_feed_stopped_early_reads_at_most_its_lookahead_more(batch):
    from stream.replay_feed import AHEAD

    chunks_ = _Chunks(batch, 100)
    got: list[BarBatch] = []

    async def collect():
        async for b in ReplayFeed(chunks_):
            got.append(b)
            if len(got) == 3:
                break
        await asyncio.sleep(0.2)  # anything still queued would have run by now

    asyncio.run(collect())
    assert len(got) == 3 and 3 <= len(chunks_.read) <= 3 + AHEAD
