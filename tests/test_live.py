"""The live feed against the fake Alpaca (real sockets on 127.0.0.1, the bundled real MSFT
minutes): a normal session equals the engine run straight over the data; faults (dropped
connection, silent stall, server errors, malformed frames, bad values, duplicates, updated
bars) leave the events those of an uninterrupted run; daily signals are provisional during
the day and confirmed or retracted at the close."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import msgpack
import polars as pl
import pytest
from live_helpers import SMALL, lines, live_run, msft_minutes, reference, settings, until

from stream.bars import FINAL
from stream.feeds.warm import bars_needed

HISTORY = 400  # minutes published before the client connects (the warm start's REST history)
LIVE = 600


def data(fake_minutes: int) -> pl.DataFrame:
    m = msft_minutes()
    return m.filter(pl.col("t") < m["t"].unique().sort()[fake_minutes])


async def plain(fake, feed):
    await fake.publish(HISTORY)
    await fake.wait_subscribed()
    await fake.publish(LIVE)


@pytest.fixture(scope="module")
def uninterrupted():
    """1Min, the default config: the run every fault scenario must equal."""
    return asyncio.run(live_run(settings("1Min"), plain))


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
def test_normal_session_equals_engine_over_data(binary):
    cfg = settings("1Min")
    run = asyncio.run(live_run(cfg, plain, binary=binary))
    ref = reference(cfg, data(HISTORY + LIVE), run.fake.minutes[HISTORY])
    assert len(ref) > 100
    assert lines(run.events) == lines(ref)
    c = run.feed.counters
    assert (c.bars, c.malformed, sum(c.bad.values()), c.reconnects) == (LIVE, 0, 0, 0)
    assert c.warm == HISTORY >= bars_needed(cfg)  # warm start: everything before the first live bar
    assert run.fake.client_messages[1] == {"action": "subscribe", "bars": ["MSFT"], "updatedBars": ["MSFT"],
                                           "dailyBars": ["MSFT"]}
    req = [r for r in run.fake.requests if r["path"] == "/v2/stocks/bars"]
    assert req and all(r["timeframe"] == "1Min" and r["feed"] == "iex" for r in req)


def test_bars_needed_make_indicators_converge():
    """bars_needed bars of history give the indicators of a run over the whole history (RSI to
    1e-9 relative), so the first live signal is already right; ten times the RSI period does not."""
    from stream.bars import BarBatch
    from stream.engine import Engine

    cfg = settings("1Min")
    need = bars_needed(cfg)
    assert need >= 300  # RSI 14: 14 + log(1e-10) / log(13/14)
    m = data(3000)
    full, warm, short = Engine(cfg), Engine(cfg), Engine(cfg)
    full.process(BarBatch.from_polars(m), emit=False)
    warm.process(BarBatch.from_polars(m.tail(need)), emit=False)
    short.process(BarBatch.from_polars(m.tail(10 * 14)), emit=False)
    a, b, c = (e.snapshot("MSFT")["indicators"] for e in (warm, full, short))
    for name, v in b.items():
        assert a[name] == pytest.approx(v, rel=1e-9), name
    assert c["rsi14"] != pytest.approx(b["rsi14"], rel=1e-9)


def test_live_warm_start_fetches_what_is_needed():
    cfg = settings("1Min")

    async def script(fake, feed):
        await fake.publish(1500)
        await fake.wait_subscribed()
        await fake.publish(1)

    run = asyncio.run(live_run(cfg, script))
    assert run.feed.counters.warm >= bars_needed(cfg)
    snap = run.engine.snapshot("MSFT")
    assert snap["time"] == _iso(run.fake.minutes[1500]) and all(v is not None for v in snap["indicators"].values())


def test_dropped_connection_backfills_missed_minutes(uninterrupted):
    async def script(fake, feed):
        await fake.publish(HISTORY)
        await fake.wait_subscribed()
        await fake.publish(250)
        await until(lambda: feed.agg.last_minute("MSFT") == fake.minutes[fake.pos - 1])
        fake.outage(True)  # nobody can connect while the next minutes go out
        await fake.drop()
        await fake.publish(40)
        fake.outage(False)
        await fake.wait_subscribed(2)
        await fake.publish(LIVE - 290)

    run = asyncio.run(live_run(settings("1Min"), script))
    assert run.feed.counters.reconnects >= 1
    assert run.feed.counters.backfilled == 40
    assert lines(run.events, late=False) == lines(uninterrupted.events, late=False)
    missed = set(run.fake.minutes[HISTORY + 250: HISTORY + 290])
    from stream.events import rfc3339

    late = [e for e in run.events if e.late]
    assert late and all(e.time in {rfc3339(t) for t in missed} for e in late)
    assert all(not e.late for e in run.events if e.time not in {rfc3339(t) for t in missed})


def test_silent_stall_reconnects_and_backfills(uninterrupted):
    async def script(fake, feed):
        await fake.publish(HISTORY)
        await fake.wait_subscribed()
        await fake.publish(300)
        await until(lambda: feed.agg.last_minute("MSFT") == fake.minutes[fake.pos - 1])
        fake.stall()  # no data, no pongs: only the client's watchdog can notice
        await fake.publish(20)  # sent to nobody (the stalled connection is skipped)
        await fake.wait_subscribed(2)
        await fake.publish(LIVE - 320)

    run = asyncio.run(live_run(settings("1Min"), script, stall=0.4))
    assert run.feed.counters.stalls == 1
    assert run.feed.counters.backfilled == 20
    assert lines(run.events, late=False) == lines(uninterrupted.events, late=False)


def test_server_error_500_reconnects(uninterrupted):
    async def script(fake, feed):
        fake.fail_after_auth.append(500)  # the first session fails right after auth
        await fake.publish(HISTORY)
        await fake.wait_subscribed()
        await fake.publish(200)
        await until(lambda: feed.agg.last_minute("MSFT") == fake.minutes[fake.pos - 1])
        await fake.send([{"T": "error", "code": 500, "msg": "internal error"}])  # mid-stream
        await fake.wait_subscribed(2)
        await fake.publish(LIVE - 200)

    run = asyncio.run(live_run(settings("1Min"), script))
    assert run.feed.counters.errors[500] >= 1 and run.feed.counters.reconnects == 2
    assert lines(run.events, late=False) == lines(uninterrupted.events, late=False)


def test_malformed_frames_and_bad_values_counted(uninterrupted):
    async def script(fake, feed):
        await fake.publish(HISTORY)
        await fake.wait_subscribed()
        await fake.publish(200)
        t = fake.minutes[fake.pos - 1]
        good = dict(fake.bar("MSFT", t), T="b")
        await fake.send(b"\xc1 not msgpack")  # malformed frame
        await fake.send([{"T": "q", "S": "MSFT", "bp": 1.0}, {"T": "zz"}])  # unknown types
        await fake.send([dict(good, c=float("nan"))])  # NaN close (of an already seen minute)
        nxt = fake.minutes[fake.pos]
        bad_next = {k: v for k, v in fake.bar("MSFT", nxt).items() if k != "h"}
        await fake.send([dict(bad_next, T="b")])  # missing field: refused, the real one follows
        await fake.send([dict(fake.bar("MSFT", nxt), T="b", o=-1.0)])  # non-positive price
        await fake.publish(LIVE - 200)

    logs = []
    run = asyncio.run(live_run(settings("1Min"), script, log=logs.append))
    c = run.feed.counters
    assert c.malformed == 1
    assert c.unknown == Counter({"q": 1, "zz": 1})
    assert any(line.startswith("stream goes on; refused so far: 1 malformed frame(s)") for line in logs)
    assert c.bad == Counter({"NaN c": 1, "missing h": 1, "non-positive o": 1})
    assert lines(run.events) == lines(uninterrupted.events)
    assert "1 malformed frame(s)" in run.feed.summary() and "NaN c: 1" in run.feed.summary()


def test_malformed_json_frame_counted(uninterrupted):
    async def script(fake, feed):
        await fake.publish(HISTORY)
        await fake.wait_subscribed()
        await fake.publish(100)
        await fake.send("[{not json")
        t = fake.minutes[fake.pos]
        row = dict(fake.bar("MSFT", t), T="b")
        from fake_alpaca import rfc3339

        # one frame, two messages: a NaN close (JSON has no NaN: Python writes one anyway) and a
        # good bar: the frame is decoded loosely and only the bad message is lost
        await fake.send(json.dumps([dict(row, t=rfc3339(t), c=float("nan")), dict(row, t=rfc3339(t))]))
        await fake.publish(1)  # the same minute again: a duplicate, dropped
        await fake.publish(LIVE - 101)

    run = asyncio.run(live_run(settings("1Min"), script, binary=False))
    c = run.feed.counters
    assert (c.malformed, c.bad) == (1, Counter({"NaN c": 1}))
    assert run.feed.agg.duplicates == 1
    assert lines(run.events) == lines(uninterrupted.events)


def test_duplicates_dropped_and_updated_bars_revise():
    cfg = settings("1Min")
    changed = {}

    async def script(fake, feed):
        await fake.publish(HISTORY)
        await fake.wait_subscribed()
        await fake.publish(300)
        t = fake.minutes[fake.pos - 1]
        await fake.send([dict(fake.bar("MSFT", t), T="b")] * 2)  # the same bar twice more
        # late trades: the bar is revised to close 1% above the 20-bar high (a channel break)
        high = max(fake.bar("MSFT", x)["h"] for x in fake.minutes[fake.pos - 21: fake.pos - 1])
        changed[t] = dict(c=high * 1.01, h=high * 1.01)
        await fake.update("MSFT", t, **changed[t])
        await fake.publish(LIVE - 300)

    run = asyncio.run(live_run(cfg, script))
    assert run.feed.agg.duplicates == 2
    assert run.feed.counters.updated == 1 and run.engine.revised == 1
    (t, ch), = changed.items()
    at = _iso(t)
    assert [(e.rule, e.kind, e.state) for e in run.events if e.time == at][-1] == \
        ("support_break", "break_above", "confirmed")
    # from the revision on, the run equals one where the bar had been the revised one from the start
    m = data(HISTORY + LIVE).with_columns(
        pl.when(pl.col("t") == t).then(ch["c"]).otherwise(pl.col("close")).alias("close"),
        pl.when(pl.col("t") == t).then(ch["h"]).otherwise(pl.col("high")).alias("high"))
    ref = reference(cfg, m, run.fake.minutes[HISTORY])

    def key(e):
        return e.id, e.state, json.dumps(e.values, sort_keys=True)

    after = [key(e) for e in run.events if e.time > at]
    assert len(after) > 20 and after == [key(e) for e in ref if e.time > at]
    assert {key(e) for e in ref if e.time == at} <= {key(e) for e in run.events if e.time == at}


def _iso(t: int) -> str:
    from stream.events import rfc3339

    return rfc3339(t)


def test_daily_signals_provisional_then_confirmed_or_retracted():
    """The headline use: 1Day MAs watched through the day from minute bars."""
    cfg = settings("1Day", SMALL)
    history = 2300  # about five sessions: enough daily bars for sma4

    async def script(fake, feed):
        await fake.publish(history)
        await fake.wait_subscribed()
        await fake.publish_all()

    run = asyncio.run(live_run(cfg, script))
    ref = reference(cfg, msft_minutes(), run.fake.minutes[history])
    assert lines(run.events) == lines(ref)
    states: dict[str, list[str]] = {}
    for e in run.events:
        states.setdefault(e.id, []).append(e.state)
    # confirmed at the close after being provisional during the day
    assert states["MSFT|2022-06-06T04:00:00Z|ma_cross|cross_down"] == ["provisional", "confirmed"]
    # provisional during the day, gone at the close: retracted, never confirmed
    st = states["MSFT|2022-06-02T04:00:00Z|ma_cross|cross_down"]
    assert st[0] == "provisional" and st[-1] == "retracted" and "confirmed" not in st
    confirmed = [e for e in run.events if e.state == "confirmed"]
    assert {e.time for e in confirmed} == {"2022-06-06T04:00:00Z", "2022-06-08T04:00:00Z", "2022-06-09T04:00:00Z"}
    assert all(e.timeframe == "1Day" for e in run.events)
    # every final daily bar stepped was the regular session's (09:30-16:00 New York)
    daily = msft_minutes().with_columns(
        pl.from_epoch("t", "ns").dt.convert_time_zone("America/New_York").alias("ny"))
    day = daily.filter(pl.col("ny").dt.date() == pl.date(2022, 6, 6))
    assert run.engine.snapshot("MSFT") is not None
    assert len(day) == 390 and day["ny"].dt.hour().min() == 9


def test_updated_bar_of_closed_daily_bucket_revises_it():
    """A `u` for the session's last minute, after the daily bar closed: a FINAL revision."""
    cfg = settings("1Day", SMALL)
    m = msft_minutes()
    ny = m.with_columns(pl.from_epoch("t", "ns").dt.convert_time_zone("America/New_York").dt.date().alias("d"))
    last_0606 = ny.filter(pl.col("d") == pl.date(2022, 6, 6))["t"].max()
    idx = m["t"].unique().sort().to_list().index(last_0606)

    async def script(fake, feed):
        await fake.publish(2300)
        await fake.wait_subscribed()
        await fake.publish(idx + 1 - 2300)
        await until(lambda: feed.agg.last_minute("MSFT") == last_0606)
        row = fake.bar("MSFT", last_0606)
        await fake.update("MSFT", last_0606, c=row["c"] * 1.05, h=row["c"] * 1.05)
        await fake.publish(5)

    run = asyncio.run(live_run(cfg, script))
    assert run.engine.revised == 1
    ids = [(e.id, e.state) for e in run.events if e.time == "2022-06-06T04:00:00Z"]
    # the revised close (5% higher) undoes the day's cross down: confirmed, then retracted
    assert ids[-2:] == [("MSFT|2022-06-06T04:00:00Z|ma_cross|cross_down", "confirmed"),
                        ("MSFT|2022-06-06T04:00:00Z|ma_cross|cross_down", "retracted")]


def test_warm_start_from_local_parquet_needs_only_the_tail(tmp_path):
    """Bars fetched earlier (a Parquet cache) warm the engine; REST only fills the gap."""
    from stream.recorder import write_parquet

    cfg = settings("1Min")
    hist = data(HISTORY).with_columns(pl.from_epoch("t", "ns").dt.replace_time_zone("UTC"),
                                      pl.lit(None, pl.Float64).alias("trade_count"),
                                      pl.lit(None, pl.Float64).alias("vwap"), pl.lit(FINAL, pl.Int8).alias("kind"))
    write_parquet(hist.head(HISTORY - 30), tmp_path / "MSFT-1Min.parquet", {"timeframe": "1Min"})
    write_parquet(hist.head(10), tmp_path / "other.parquet", {"timeframe": "1Day"})  # skipped
    logs = []
    run = asyncio.run(live_run(cfg, plain, local=[tmp_path], log=logs.append))
    ref = reference(cfg, data(HISTORY + LIVE), run.fake.minutes[HISTORY])
    assert lines(run.events) == lines(ref)
    req = [r for r in run.fake.requests if r["path"] == "/v2/stocks/bars"]
    from fake_alpaca import parse_time

    assert len(req) == 1 and parse_time(req[0]["start"]) == run.fake.minutes[HISTORY - 30]
    assert any("other.parquet: timeframe '1Day'" in line for line in logs)


def test_msgpack_frames_carry_timestamps():
    """What the client decodes: msgpack Timestamps in binary mode (as Alpaca sends)."""
    from fake_alpaca import FakeAlpaca
    from websockets.asyncio.client import connect

    async def go():
        async with FakeAlpaca() as fake:
            async with connect(fake.stream_url + "/v2/iex",
                               additional_headers={"Content-Type": "application/msgpack"}) as ws:
                assert msgpack.unpackb(await ws.recv()) == [{"T": "success", "msg": "connected"}]
                await ws.send(msgpack.packb({"action": "auth", "key": fake.key, "secret": fake.secret}))
                await ws.recv()
                await ws.send(msgpack.packb({"action": "subscribe", "bars": ["MSFT"]}))
                await ws.recv()
                await fake.publish(1)
                (bar,) = msgpack.unpackb(await ws.recv(), timestamp=0)
                return bar, fake.minutes[0]

    bar, t = asyncio.run(go())
    assert bar["T"] == "b" and isinstance(bar["t"], msgpack.Timestamp) and bar["t"].to_unix_nano() == t


@pytest.mark.parametrize("how", ["timer", "next_minute"])
def test_daily_bar_without_its_last_minute_closes(how):
    """A session whose 15:59 minute never comes (no trade): the daily bar closes on the timer
    (close_grace after 16:00 by the data clock) or when the next minute arrives, whichever first."""
    cfg = settings("1Day", SMALL)
    m = msft_minutes()
    last_0606 = 1654545540 * 10**9  # 2022-06-06T19:59:00Z, 15:59 New York
    bars = m.filter(pl.col("t") != last_0606)
    times = bars["t"].unique().sort().to_list()
    upto = times.index(last_0606 - 60 * 10**9) + 1
    clock = [1000.0]

    async def script(fake, feed):
        await fake.publish(2300)
        await fake.wait_subscribed()
        await fake.publish(upto - 2300)
        await until(lambda: feed.agg.last_minute("MSFT") == times[upto - 1])
        assert not [e for e in feed.seen if e.time == "2022-06-06T04:00:00Z" and e.state == "confirmed"]
        if how == "timer":
            clock[0] += 60 + feed.close_grace  # 16:00 plus the grace, by the data clock
            await until(lambda: feed.agg.open_until() is None)
        await fake.publish(30)

    run = asyncio.run(live_run(cfg, script, bars=bars, monotonic=lambda: clock[0], close_grace=5.0))
    ref = reference(cfg, bars.filter(pl.col("t") <= times[upto + 29]), times[2300])
    assert lines(run.events) == lines(ref)
    assert [e.state for e in run.events if e.id == "MSFT|2022-06-06T04:00:00Z|ma_cross|cross_down"][-1] == \
        "confirmed"


def test_crypto_feed_uses_utc_buckets_and_the_crypto_endpoints():
    """feed crypto: /v1beta3/crypto/us for the stream and REST, no session: UTC-aligned hours."""
    cfg = settings("1Hour")
    bars = msft_minutes("BTC/USD")

    async def script(fake, feed):
        await fake.publish(2000)
        await fake.wait_subscribed()
        await fake.publish(1500)

    run = asyncio.run(live_run(cfg, script, bars=bars, symbols=("BTC/USD",), feed="crypto"))
    assert {r["path"] for r in run.fake.requests} == {"/v1beta3/crypto/us/bars"}
    first = run.fake.minutes[2000]
    ref = reference(cfg, bars.filter(pl.col("t") < run.fake.minutes[3500]), first, session=False)
    assert len(ref) > 10 and lines(run.events) == lines(ref)
    assert all(e.time.endswith(":00:00Z") for e in run.events)  # whole UTC hours, not 09:30-aligned
