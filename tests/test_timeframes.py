"""Minute bars -> session bars: every forming and final bar equals an independent polars
aggregation of the real MSFT minutes over the New York regular session (DST included);
updates, duplicates, gaps and closing by time behave as the live feed needs."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from fake_alpaca import msft_minutes

from stream.bars import FINAL, FORMING, Bar, BarBatch
from stream.config import load_config
from stream.engine import Engine
from stream.timeframes import MINUTE, Aggregator, bucket_of, session_bounds

NY = ZoneInfo("America/New_York")
DAY = 86_400 * 10**9


def ns(y, mo, d, h, mi, tz=NY) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()) * 10**9


@pytest.mark.parametrize("day, open_utc", [
    ((2022, 3, 11), "14:30"),  # EST
    ((2022, 3, 14), "13:30"),  # EDT, the Monday after the switch
    ((2022, 11, 4), "13:30"),
    ((2022, 11, 7), "14:30"),
])
def test_session_bounds_follow_dst(day, open_utc):
    mid, op, cl = session_bounds(ns(*day, 12, 0) // DAY)
    fmt = lambda t: datetime.fromtimestamp(t / 1e9, ZoneInfo("UTC")).strftime("%H:%M")  # noqa: E731
    assert fmt(op) == open_utc
    assert cl - op == 390 * MINUTE
    assert mid == ns(*day, 0, 0)


def test_bucket_labels():
    t = ns(2022, 6, 1, 15, 47)
    assert bucket_of(t, "5Min") == (ns(2022, 6, 1, 15, 45), ns(2022, 6, 1, 15, 50))
    assert bucket_of(t, "15Min") == (ns(2022, 6, 1, 15, 45), ns(2022, 6, 1, 16, 0))
    assert bucket_of(t, "1Hour") == (ns(2022, 6, 1, 15, 30), ns(2022, 6, 1, 16, 0))  # the short last hour
    assert bucket_of(ns(2022, 6, 1, 10, 29), "1Hour")[0] == ns(2022, 6, 1, 9, 30)
    assert bucket_of(t, "1Day") == (ns(2022, 6, 1, 0, 0), ns(2022, 6, 1, 16, 0))
    assert bucket_of(ns(2022, 6, 1, 9, 29), "5Min")[1] == 0  # before the open: outside
    assert bucket_of(ns(2022, 6, 1, 16, 0), "1Day")[1] == 0  # the close itself: outside
    assert bucket_of(ns(2022, 6, 1, 8, 0), "1Min") == (ns(2022, 6, 1, 8, 0), ns(2022, 6, 1, 8, 1))
    utc = ZoneInfo("UTC")
    assert bucket_of(ns(2022, 6, 1, 2, 7, utc), "1Day", session=False) == \
        (ns(2022, 6, 1, 0, 0, utc), ns(2022, 6, 2, 0, 0, utc))
    assert bucket_of(ns(2022, 6, 1, 2, 7, utc), "1Hour", session=False)[0] == ns(2022, 6, 1, 2, 0, utc)


def _feed(agg: Aggregator, m: pl.DataFrame) -> BarBatch:
    n = len(m)
    ids = np.array([agg.sid(s) for s in m["symbol"].to_list()], dtype=np.int64)
    col = lambda c: m[c].cast(pl.Float64).to_numpy()  # noqa: E731
    return agg.add(ids, m["t"].to_numpy(), np.zeros(n, np.int8), col("open"), col("high"), col("low"),
                   col("close"), col("volume"), np.full(n, np.nan), np.full(n, np.nan))


def _reference(m: pl.DataFrame, timeframe: str) -> pl.DataFrame:
    """Cumulative bucket aggregates per minute, by polars over New York local time."""
    width = {"5Min": 5, "15Min": 15, "1Hour": 60, "1Day": 390}[timeframe]
    local = m.with_columns(pl.from_epoch("t", "ns").dt.replace_time_zone("UTC").dt.convert_time_zone(
        "America/New_York").alias("ny"))
    local = local.with_columns((pl.col("ny").dt.hour().cast(pl.Int32) * 60 + pl.col("ny").dt.minute().cast(pl.Int32) - 570).alias("k"))
    local = local.filter((pl.col("k") >= 0) & (pl.col("k") < 390))
    day = pl.col("ny").dt.truncate("1d")
    if timeframe == "1Day":
        label = day
    else:
        label = day + pl.duration(minutes=570) + pl.duration(minutes=(pl.col("k") // width) * width)
    local = local.with_columns(label.dt.convert_time_zone("UTC").dt.epoch("ns").alias("label"))
    g = "label"
    return local.select(
        "label", "t", "k",
        pl.col("open").first().over(g).alias("o"), pl.col("high").cum_max().over(g).alias("h"),
        pl.col("low").cum_min().over(g).alias("l"), pl.col("close").alias("c"),
        pl.col("volume").cum_sum().over(g).alias("v"),
        (pl.col("t") == pl.col("t").max().over(g)).alias("last"))


@pytest.mark.parametrize("timeframe", ["5Min", "15Min", "1Hour", "1Day"])
def test_forming_and_final_bars_equal_polars_over_the_session(timeframe):
    m = msft_minutes()
    agg = Aggregator(timeframe)
    out = _feed(agg, m)
    ref = _reference(m, timeframe)
    assert len(out) == len(ref) == len(m)  # the data is regular-session only: one bar per minute
    assert out.t.tolist() == ref["label"].to_list()
    for mine, theirs in ((out.open, "o"), (out.high, "h"), (out.low, "l"), (out.close, "c"), (out.volume, "v")):
        assert mine.tolist() == ref[theirs].to_list()
    # final exactly at the minute that ends its bucket (every minute is there in this data)
    k = ref["k"].to_numpy()
    width = {"5Min": 5, "15Min": 15, "1Hour": 60, "1Day": 390}[timeframe]
    assert ((out.kind == FINAL) == ((k % width == width - 1) | (k == 389))).all()
    assert set(out.kind.tolist()) == {FINAL, FORMING}


def test_first_and_last_hours():
    day = msft_minutes().filter(pl.col("t") >= ns(2022, 6, 1, 0, 0)).filter(pl.col("t") < ns(2022, 6, 2, 0, 0))
    out = _feed(Aggregator("1Hour"), day)
    finals = out.t[out.kind == FINAL].tolist()
    assert finals == [ns(2022, 6, 1, 9, 30) + k * 60 * MINUTE for k in range(7)]


def test_updates_duplicates_and_stale():
    agg = Aggregator("5Min")
    t0 = ns(2022, 6, 1, 9, 30)
    b = lambda k, c, upd=False: Bar("X", t0 + k * MINUTE, c, c + 1, c - 1, c, 100.0, forming=upd)  # noqa: E731
    out = agg.add_bars([b(0, 10), b(1, 11)])
    assert out.kind.tolist() == [FORMING, FORMING] and out.close.tolist() == [10, 11]
    out = agg.add_bars([b(1, 11)])  # a duplicate
    assert len(out) == 0 and agg.duplicates == 1
    out = agg.add_bars([b(1, 12, upd=True)])  # `u`: the last minute revised
    assert out.kind.tolist() == [FORMING] and out.close.tolist() == [12] and out.volume.tolist() == [200]
    out = agg.add_bars([b(0, 9, upd=True)])  # `u` of an older minute: not applied
    assert len(out) == 0 and agg.stale == 1
    out = agg.add_bars([b(2, 12), b(3, 12), b(4, 13)])
    assert out.kind.tolist() == [FORMING, FORMING, FINAL] and out.t.tolist() == [t0] * 3
    assert (out.open[-1], out.high[-1], out.low[-1], out.volume[-1]) == (10, 14, 9, 500)
    out = agg.add_bars([b(4, 14, upd=True)])  # `u` after the bucket closed: a final revision
    assert out.kind.tolist() == [FINAL] and out.t.tolist() == [t0] and out.close.tolist() == [14]


def test_gaps_and_closing_by_time():
    agg = Aggregator("5Min")
    t0 = ns(2022, 6, 1, 9, 30)
    bar = lambda k, c: Bar("X", t0 + k * MINUTE, c, c, c, c, 1.0)  # noqa: E731
    agg.add_bars([bar(0, 10), bar(1, 11)])  # 09:32-09:34 never trade
    assert agg.open_until() == t0 + 5 * MINUTE
    assert len(agg.close_due(t0 + 4 * MINUTE)) == 0
    out = agg.close_due(t0 + 5 * MINUTE)  # the timer (or any later minute) closes it
    assert out.kind.tolist() == [FINAL] and out.close.tolist() == [11] and agg.open_until() is None
    out = agg.add_bars([bar(7, 12), bar(12, 13)])  # 09:37, then 09:42: each closes the one before
    assert out.kind.tolist() == [FORMING, FINAL, FORMING]
    assert out.t.tolist() == [t0 + 5 * MINUTE, t0 + 5 * MINUTE, t0 + 10 * MINUTE]


def test_one_minute_passes_extended_hours_and_revisions():
    agg = Aggregator("1Min")
    t = ns(2022, 6, 1, 8, 0)  # pre-market
    out = agg.add_bars([Bar("X", t, 1, 1, 1, 1, 1), Bar("X", t, 2, 2, 2, 2, 1, forming=True)])
    assert out.kind.tolist() == [FINAL, FINAL] and out.t.tolist() == [t, t] and agg.outside == 0
    agg5 = Aggregator("5Min")
    assert len(agg5.add_bars([Bar("X", t, 1, 1, 1, 1, 1)])) == 0 and agg5.outside == 1


def test_many_symbols_in_one_call_keep_their_rows():
    agg = Aggregator("15Min")
    t0 = ns(2022, 6, 1, 9, 30)
    bars = [Bar(s, t0 + k * MINUTE, p + k, p + k, p + k, p + k, 1.0) for k in range(3) for s, p in
            (("A", 10.0), ("B", 20.0), ("C", 30.0))]
    out = agg.add_bars(bars)
    got = {(b.symbol, b.close) for b in out.bars()}
    assert got == {(s, p + k) for k in range(3) for s, p in (("A", 10.0), ("B", 20.0), ("C", 30.0))}
    assert len(agg.close_due(t0 + 15 * MINUTE)) == 3


def test_forming_bars_leave_confirmed_events_unchanged():
    """The engine over forming+final bars confirms exactly what it confirms over finals only."""
    cfg = load_config()
    out = _feed(Aggregator("5Min"), msft_minutes())
    finals = out.kind == FINAL
    only = BarBatch(out.symbols, out.sym[finals], out.t[finals], out.open[finals], out.high[finals],
                    out.low[finals], out.close[finals], out.volume[finals], kind=out.kind[finals])
    import dataclasses

    cfg = dataclasses.replace(cfg, timeframe="5Min")
    a = [(e.id, e.values) for e in Engine(cfg).process(out) if e.state == "confirmed"]
    b = [(e.id, e.values) for e in Engine(cfg).process(only) if e.state == "confirmed"]
    assert len(b) > 20 and a == b
    states = {e.state for e in Engine(cfg).process(out)}
    assert states == {"confirmed", "provisional", "retracted"}


def test_an_early_close_ends_the_day_and_the_last_hour_at_13_00():
    """The day after Thanksgiving the NYSE closes at 13:00: the daily bar is final with the 12:59
    minute (not three hours later), the last hour is 12:30-13:00, later minutes are outside; the
    day before, a full session."""
    for timeframe in ("1Day", "1Hour"):
        assert bucket_of(ns(2026, 11, 25, 15, 59), timeframe)[1] == ns(2026, 11, 25, 16, 0)
        assert bucket_of(ns(2026, 11, 27, 12, 59), timeframe)[1] == ns(2026, 11, 27, 13, 0)
    assert session_bounds(ns(2019, 12, 24, 12, 0) // DAY)[2] == ns(2019, 12, 24, 13, 0)  # Christmas Eve
    agg = Aggregator("1Day")
    t0 = ns(2026, 11, 27, 9, 30)
    out = agg.add_bars([Bar("SPY", t0 + k * MINUTE, 600 + k, 601 + k, 599 + k, 600 + k, 10.0) for k in range(215)])
    assert out.kind.tolist() == [FORMING] * 209 + [FINAL]  # 09:30 .. 12:59; 13:00 .. 13:04 are outside
    assert out.close[-1] == 809 and out.volume[-1] == 2100 and agg.outside == 5
    assert agg.open_until() is None
    hours = Aggregator("1Hour")
    out = hours.add_bars([Bar("SPY", t0 + k * MINUTE, 1, 1, 1, 1, 1.0) for k in range(210)])
    finals = out.t[out.kind == FINAL].tolist()
    assert finals == [t0 + k * 60 * MINUTE for k in range(4)] and out.volume[-1] == 30
