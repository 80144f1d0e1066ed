"""The live feed: Alpaca's stream -> engine bars at the config's timeframe, correct across faults.

An async iterable of BarBatch for the runner (stream/runner.py), like a replay. Around the
stream client it does what makes a live run equal an uninterrupted one:

- Warm start, before the first live bar: recordings and fetched Parquet files of the same
  timeframe (`local`), then REST up to the first live bar, enough bars for every indicator to
  be ready and converged (warm.bars_needed). History is stepped with emit=False: no events.
- Each frame's minute bars go through the timeframe aggregator (dedup, `u` revisions,
  forming and final bars); buckets whose end has passed close on the data clock (a later
  minute arrived) or on a timer `close_grace` s after their end.
- After a reconnect, the minutes missed are fetched from REST (up to the first new live
  minute) and stepped first, as late batches ("late": true on their events); frames that
  arrive meanwhile wait in the queue, so order is kept.
- With a recorder, every batch the engine steps is appended (warm and late flagged).

The clock is the data's: "now" is the newest minute seen plus the wall time since it came,
so a fake server replaying 2022 in 2026 behaves as the market would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import polars as pl

from ..bars import FINAL, BarBatch
from ..engine import Engine
from ..recorder import Recorder
from ..timeframes import MINUTE, NEW, TIMEFRAMES, Aggregator, next_ny_midnight, ny_midnight
from .alpaca import AlpacaStream, Connected, Fatal, StreamFatal, stream_endpoint
from .history import History, HistoryError, empty
from .protocol import Counters, split
from .warm import DAY, bars_needed, local_bars, window


def _mask(b: BarBatch, m: np.ndarray) -> BarBatch:
    return BarBatch(b.symbols, b.sym[m], b.t[m], b.open[m], b.high[m], b.low[m], b.close[m],
                    b.volume[m], b.trade_count[m], b.vwap[m], b.kind[m], b.late)


class LiveFeed:
    """Alpaca's stream as a feed of engine bars; see the module doc."""

    def __init__(self, engine: Engine, symbols: list[str], key: str, secret: str, *,
                 feed: str = "iex", stream_url: str | None = None, data_url: str | None = None,
                 stall_seconds: float = 30.0, backoff_base: float = 1.0, backoff_max: float = 30.0,
                 binary: bool = True, local: list[str | Path] = (), recorder: Recorder | None = None,
                 warm: bool = True, close_grace: float = 10.0, adjustment: str = "split",
                 log: Callable[[str], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.symbols = list(dict.fromkeys(symbols))
        self.timeframe = engine.timeframe
        self.feed = feed
        self.log = log or (lambda line: None)
        self.counters = Counters()
        self.agg = Aggregator(self.timeframe, session=feed != "crypto")
        for s in self.symbols:
            self.agg.sid(s)
        self.stream = AlpacaStream(stream_endpoint(stream_url, feed), key, secret, self.symbols,
                                   binary=binary, stall_seconds=stall_seconds,
                                   backoff_base=backoff_base, backoff_max=backoff_max,
                                   counters=self.counters, log=self.log)
        self.history = History(key, secret, data_url, feed, adjustment)
        self.local = [Path(p) for p in local]
        self.recorder = recorder
        self.warm = warm
        self.close_grace = close_grace
        self.need = bars_needed(engine.config)
        self.covered: dict[str, int] = {}  # history complete before this time, per symbol
        self.connected = 0
        self.last_received: int | None = None  # perf_counter_ns of the frame of the last batch
        self.live_bars = 0
        self._clock: tuple[int, float] | None = None  # (data time, monotonic then)
        self.monotonic = monotonic  # the wall clock's seconds (tests can move it)
        self._problems = (0, -1e18)  # (refusals reported, when)

    def __repr__(self) -> str:
        return f"LiveFeed({self.feed}, {len(self.symbols)} symbols, {self.timeframe})"

    # ---- history -----------------------------------------------------------------------------------
    def _step_warm(self, batch: BarBatch) -> None:
        if len(batch):
            if self.recorder is not None:
                self.recorder.write(batch, warm=True)
            self.engine.process(batch, emit=False)
            self.counters.warm += len(batch)

    def _covered_after(self, t: int) -> int:
        """Where history ends after a bar starting at t of this timeframe."""
        if self.timeframe == "1Day":
            return t + DAY if self.feed == "crypto" else next_ny_midnight(t)
        return t + TIMEFRAMES[self.timeframe] * MINUTE

    def warm_local(self) -> int:
        """Step bars from local files for symbols that have enough of them; how many."""
        if not self.warm or not self.local:
            return 0
        df, skipped = local_bars(self.local, self.symbols, self.timeframe)
        for line in skipped:
            self.log(f"warm start: skipped {line}")
        if not len(df):
            return 0
        counts = df.group_by("symbol").agg(pl.len().alias("n"), pl.col("t").max().alias("last"))
        ok = counts.filter(pl.col("n") >= self.need)
        if not len(ok):
            return 0
        df = df.filter(pl.col("symbol").is_in(ok["symbol"].to_list()))
        self._step_warm(BarBatch.from_polars(df))
        for s, last in zip(ok["symbol"].to_list(), ok["last"].dt.epoch("ns").to_list(), strict=True):
            self.covered[s] = self._covered_after(last)
            self.agg.mark_seen(s, self.covered[s] - MINUTE)
        self.log(f"warm start: {len(df)} bars from local files for {len(ok)} symbol(s)")
        return len(df)

    def _midnight(self, t: int) -> int:
        return t - t % DAY if self.feed == "crypto" else ny_midnight(t)

    def _fetch(self, starts: dict[str, int], end: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        """REST bars from each symbol's start to just before `end`: (daily bars, minutes).
        Daily bars only for 1Day and days before end's; minutes for the rest."""
        groups: dict[int, list[str]] = {}
        cold = end - window(self.timeframe, self.need)
        for s, a in starts.items():
            groups.setdefault(cold if a <= cold else a, []).append(s)
        # two requests at most: cold symbols from the window's start, the rest from their earliest
        hot = [s for a, ss in groups.items() if a != cold for s in ss]
        plan = []
        if cold in groups:
            plan.append((cold, groups[cold]))
        if hot:
            plan.append((min(starts[s] for s in hot), hot))
        days, mins = [], []
        mid = self._midnight(end)
        for a, syms in plan:
            if self.timeframe == "1Day" and a < mid:
                days.append(self.history.bars(syms, "1Day", a, mid - 1))
            a = max(a, mid) if self.timeframe == "1Day" else a
            if a < end:
                mins.append(self.history.bars(syms, "1Min", a, end - 1))
        keep = pl.DataFrame({"symbol": list(starts), "from": list(starts.values())},
                            schema={"symbol": pl.String, "from": pl.Int64})

        def since(frames: list[pl.DataFrame]) -> pl.DataFrame:
            if not frames:
                return empty()
            df = pl.concat(frames).join(keep, on="symbol")
            df = df.filter(pl.col("t").dt.epoch("ns") >= pl.col("from")).drop("from")
            return df.unique(["symbol", "t"], keep="last").sort(["t", "symbol"])

        return since(days), since(mins)

    async def fill(self, end: int, late: bool) -> AsyncIterator[tuple[BarBatch, bool]]:
        """History up to `end` for every symbol: (batch, emit) pairs in order. Warm start
        (not late) steps nothing itself and keeps only final bars; a backfill keeps all."""
        starts = {}
        for s in self.symbols:  # from the end of history or the newest live minute, if later
            lm = self.agg.last_minute(s)
            starts[s] = max(self.covered.get(s, -1), -1 if lm is None else lm + MINUTE)
        starts = {s: a for s, a in starts.items() if a < end}
        if not starts or (not late and not self.warm):
            return
        try:
            days, mins = await asyncio.to_thread(self._fetch, starts, end)
        except HistoryError as e:
            what = "backfill" if late else "warm start"
            self.log(f"{what} failed: {e}; going on with the live stream")
            return
        for s in starts:
            self.covered[s] = end
        if len(days):
            self.agg.settle(days["symbol"].unique().to_list())
            b = BarBatch.from_polars(days, late=late)
            yield b, late
        if len(mins):
            m = mins
            ids = np.array([self.agg.sid(s) for s in m["symbol"].to_list()], dtype=np.int64)
            col = lambda c: m[c].to_numpy().astype(np.float64)  # noqa: E731
            b = self.agg.add(ids, m["t"].dt.epoch("ns").to_numpy(), np.zeros(len(m), np.int8),
                             col("open"), col("high"), col("low"), col("close"), col("volume"),
                             col("trade_count"), col("vwap"), late=late)
            if late:
                self.counters.backfilled += len(m)
            elif len(b):
                b = _mask(b, b.kind == FINAL)
            yield b, late
        n = len(days) + len(mins)
        if n:
            what = "backfilled" if late else "warm start:"
            self.log(f"{what} {n} bars from REST before {_hhmm(end)}")

    # ---- the clock -----------------------------------------------------------------------------------
    def now(self) -> int | None:
        """The data clock: newest minute's end plus wall time since it arrived (ns)."""
        if self._clock is None:
            return None
        t, mono = self._clock
        return t + int((self.monotonic() - mono) * 1e9)

    def _timeout(self) -> float | None:
        due = self.agg.open_until()
        now = self.now()
        if due is None or now is None:
            return None
        return max(0.05, (due + self.close_grace * 1e9 - now) / 1e9)

    # ---- the feed -------------------------------------------------------------------------------------
    async def __aiter__(self) -> AsyncIterator[BarBatch]:
        self.warm_local()
        queue: asyncio.Queue = asyncio.Queue()
        task = asyncio.create_task(self.stream.run(queue))
        fill_late: bool | None = None  # a fill is due at the next frame with bars (late or warm)
        get = None
        try:
            while True:
                if not queue.empty():  # the common case under load: no waiting machinery
                    item = queue.get_nowait()
                    get = done = None
                else:
                    get = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({get, task}, timeout=min(self._timeout() or 1.0, 1.0),
                                                 return_when=asyncio.FIRST_COMPLETED)
                if get is not None and get not in done:
                    get.cancel()
                    if task in done:  # the client ended without a Fatal item: its exception
                        task.result()
                        return
                    now = self.now()
                    if now is not None:
                        b = self.agg.close_due(now - int(self.close_grace * 1e9))
                        if len(b):
                            yield self._record(b)
                    continue
                if get is not None:
                    item = get.result()
                if isinstance(item, Fatal):
                    raise StreamFatal(item.message)
                if isinstance(item, Connected):
                    self.connected += 1
                    fill_late = item.attempt > 0
                    continue
                minutes, control = split(item.msgs, self.agg, self.counters)
                self._report_problems()
                for m in control:
                    if _field(m, "T") == "error":
                        fatal = self.stream.error(_field(m, "code"), _field(m, "msg"))
                        if fatal is not None:
                            raise StreamFatal(fatal.message)
                if not len(minutes):
                    continue
                a = minutes.arrays()
                self.last_received = item.received
                if fill_late is not None:
                    late, fill_late = fill_late, None
                    async for b, emit in self.fill(int(a[1].min()), late):
                        if emit:
                            yield self._record(b)
                        else:
                            self._step_warm(b)
                new = a[2] == NEW
                if new.any():
                    closing = self.agg.close_due(int(a[1][new].min()))
                    if len(closing):
                        yield self._record(closing)
                b = self.agg.add(*a)
                self._clock = (int(a[1].max()) + MINUTE, self.monotonic())
                if len(b):
                    self.live_bars += len(b)
                    yield self._record(b)
        finally:
            if get is not None:
                get.cancel()
            await self.stream.close()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _report_problems(self, every: float = 10.0) -> None:
        """A log line when frames or bars were refused since the last one (at most every 10 s)."""
        c = self.counters
        n = c.malformed + sum(c.bad.values()) + sum(c.unknown.values())
        if n != self._problems[0] and self.monotonic() - self._problems[1] >= every:
            self._problems = (n, self.monotonic())
            self.log(f"stream goes on; refused so far: {c.problems()}")

    def _record(self, b: BarBatch) -> BarBatch:
        if self.recorder is not None:
            self.recorder.write(b)
        return b

    def summary(self) -> str:
        """What the stream delivered and refused, for the end-of-run line."""
        c = self.counters
        parts = [f"{c.bars} bars", f"{c.updated} updated"]
        if c.warm:
            parts.append(f"{c.warm} warm-start bars")
        if c.backfilled:
            parts.append(f"{c.backfilled} minutes backfilled")
        if c.reconnects:
            parts.append(f"{c.reconnects} reconnects ({c.stalls} after stalls)")
        if self.agg.duplicates:
            parts.append(f"{self.agg.duplicates} duplicates dropped")
        if self.agg.stale:
            parts.append(f"{self.agg.stale} updates of older minutes not applied")
        if self.agg.outside:
            parts.append(f"{self.agg.outside} minutes outside the session")
        problems = c.problems()
        if problems:
            parts.append(problems)
        return ", ".join(parts)


def _field(m, k):
    return m.get(k) if isinstance(m, dict) else getattr(m, k, None)


def _hhmm(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ns / 1e9))
