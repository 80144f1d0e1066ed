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
from stream.runner import Session, slice_batch


@pytest.fixture(scope="module")
def batch(daily) -> BarBatch:
    return BarBatch.from_polars(daily.filter(daily["t"].dt.year() >= 2011))


@pytest.fixture(scope="module")
def want(batch) -> bytes:
    return b"".join(encode(e) for e in Engine().process(batch))


async def chunks(b: BarBatch, size: int):
    for i in range(0, len(b), size):
        yield slice_batch(b, i, i + size)


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
            yield slice_batch(batch, i, i + 300)
            if i >= 1200:
                await asyncio.sleep(3600)  # stalls: the stop comes while waiting for bars

    async def main():
        task = asyncio.create_task(session.run(feed()))
        while session.batches < 4:
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
