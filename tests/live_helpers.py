"""Running the live feed against the fake Alpaca in-process, and the engine reference it must equal."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import msgspec
import numpy as np
import polars as pl
from fake_alpaca import FakeAlpaca, msft_minutes

from stream.bars import FINAL, BarBatch
from stream.config import Settings, load_config, parse_config
from stream.engine import Engine
from stream.events import Event, encode
from stream.feeds.live import LiveFeed
from stream.runner import Session
from stream.timeframes import NEW, Aggregator

SMALL = """
[engine]
timeframe = "1Day"
[indicators.sma2]
type = "sma"
period = 2
[indicators.sma4]
type = "sma"
period = 4
[rules.ma_cross]
type = "cross"
a = "sma2"
b = "sma4"
"""


def settings(timeframe: str = "1Min", text: str | None = None) -> Settings:
    s = parse_config(text, "<test>") if text is not None else load_config()
    return dataclasses.replace(s, timeframe=timeframe)


class Collect:
    """An output keeping every event (the runner's Output protocol)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, events: list[Event], blob: bytes) -> None:
        self.events += events

    def flush(self) -> None:
        pass


async def until(cond: Callable[[], bool], timeout: float = 300.0) -> None:
    """Wait for a condition (the timeout only keeps a broken run from hanging the suite)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


@dataclasses.dataclass
class Run:
    events: list[Event]
    feed: LiveFeed
    engine: Engine
    fake: FakeAlpaca


async def live_run(cfg: Settings, script: Callable[[FakeAlpaca, LiveFeed], Awaitable[None]], *,
                   bars: pl.DataFrame | None = None, symbols: tuple[str, ...] = ("MSFT",),
                   binary: bool = True, stall: float = 30.0, **feed_kw) -> Run:
    """The feed, the engine and the runner against a fake whose time `script` drives; returns
    when every published minute has been stepped."""
    async with FakeAlpaca(bars) as fake:
        engine = Engine(cfg)
        feed = LiveFeed(engine, list(symbols), fake.key, fake.secret, stream_url=fake.stream_url,
                        data_url=fake.data_url, backoff_base=0.01, backoff_max=0.05, binary=binary,
                        stall_seconds=stall, **feed_kw)
        out = Collect()
        feed.seen = out.events  # for scripts that look at the events so far
        session = Session(engine, [out])
        task = asyncio.create_task(session.run(feed))
        try:
            await script(fake, feed)
            last = fake.minutes[fake.pos - 1]
            await until(lambda: task.done() or all(
                (feed.agg.last_minute(s) or 0) >= max(t for t in fake.times[s] if t <= last)
                for s in symbols))
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        return Run(out.events, feed, engine, fake)


def lines(events: list[Event], late: bool = True) -> list[bytes]:
    """Event lines; without the late flag when late=False (to compare with an uninterrupted run)."""
    if late:
        return [encode(e) for e in events]
    return [encode(msgspec.structs.replace(e, late=False)) for e in events]


def reference(cfg: Settings, minutes: pl.DataFrame, warm_until: int, session: bool = True) -> list[Event]:
    """The engine over the minutes through the aggregator, straight from the data: minutes
    before `warm_until` (final bars only) stepped without events, then the rest one minute at a
    time, each bucket closing when the data shows it is over."""
    engine = Engine(cfg)
    agg = Aggregator(cfg.timeframe, session=session)
    m = minutes.sort(["t", "symbol"])
    t = m["t"].to_numpy()

    def add(part: pl.DataFrame) -> BarBatch:
        ids = np.array([agg.sid(s) for s in part["symbol"].to_list()], dtype=np.int64)
        col = lambda c: part[c].cast(pl.Float64).to_numpy()  # noqa: E731
        nan = np.full(len(part), np.nan)
        return agg.add(ids, part["t"].to_numpy(), np.full(len(part), NEW, np.int8), col("open"), col("high"),
                       col("low"), col("close"), col("volume"), nan, nan)

    warm = add(m.filter(pl.col("t") < warm_until))
    keep = warm.kind == FINAL
    engine.process(BarBatch(warm.symbols, warm.sym[keep], warm.t[keep], warm.open[keep], warm.high[keep],
                            warm.low[keep], warm.close[keep], warm.volume[keep], warm.trade_count[keep],
                            warm.vwap[keep], warm.kind[keep]), emit=False)
    events: list[Event] = []
    for tm in np.unique(t[t >= warm_until]):
        events += engine.process(agg.close_due(int(tm)))
        events += engine.process(add(m.filter(pl.col("t") == tm)))
    return events


__all__ = ["FakeAlpaca", "msft_minutes", "settings", "live_run", "lines", "reference", "until", "SMALL"]
