"""Every default rule, run by the engine over the bundled real data (five symbols
interleaved), equals an independent batch computation over TA-Lib's series."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from stream.bars import BarBatch
from stream.engine import Engine


@pytest.fixture(scope="module")
def run(daily):
    events = Engine().process(BarBatch.from_polars(daily))
    return events


def fired(events, rule):
    return sorted((e.symbol, e.time, e.kind) for e in events if e.rule == rule)


def times(df: pl.DataFrame) -> list[str]:
    return df["t"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_list()


def per_symbol(daily):
    for symbol in sorted(daily["symbol"].unique()):
        yield symbol, daily.filter(pl.col("symbol") == symbol)


def side_changes(d: np.ndarray) -> list[tuple[int, int]]:
    """(index, new side) where the sign of d flips, from the first known side on."""
    out, side = [], 0
    for i, x in enumerate(d):
        s = 0 if np.isnan(x) or x == 0 else (1 if x > 0 else -1)
        if s and side and s != side:
            out.append((i, s))
        side = s or side
    return out


def test_ma_cross(daily, run):
    expect = []
    for symbol, df in per_symbol(daily):
        c, ts = df["close"].to_numpy(), times(df)
        d = talib.SMA(c, 10) - talib.SMA(c, 50)
        expect += [(symbol, ts[i], "cross_up" if s > 0 else "cross_down") for i, s in side_changes(d)]
    assert fired(run, "ma_cross") == sorted(expect)
    assert len(expect) > 100


def test_rsi_bands(daily, run):
    expect = []
    names = ["oversold", "lower_half", "upper_half", "overbought"]
    for symbol, df in per_symbol(daily):
        rsi, ts = talib.RSI(df["close"].to_numpy(), 14), times(df)
        zone = np.searchsorted([30, 50, 70], rsi, side="right")
        ready = ~np.isnan(rsi)
        for i in range(1, len(rsi)):
            if ready[i - 1] and zone[i] != zone[i - 1]:
                expect += [(symbol, ts[i], "exit"), (symbol, ts[i], "enter")]
    assert fired(run, "rsi_bands") == sorted(expect)
    # the zone names and time spent in the zone left
    ev = next(e for e in run if e.rule == "rsi_bands" and e.kind == "exit")
    assert ev.values["zone"] in names and ev.values["bars_in_zone"] >= 1


def test_support_break(daily, run):
    expect = []
    for symbol, df in per_symbol(daily):
        c, ts = df["close"].to_numpy(), times(df)
        lowest = np.roll(talib.MIN(df["low"].to_numpy(), 20), 1)
        highest = np.roll(talib.MAX(df["high"].to_numpy(), 20), 1)
        lowest[0] = highest[0] = np.nan
        state = 0
        for i in range(len(c)):
            if np.isnan(lowest[i]):
                continue
            s = -1 if c[i] < lowest[i] else (1 if c[i] > highest[i] else 0)
            if s != state and s:
                expect.append((symbol, ts[i], "break_below" if s < 0 else "break_above"))
            state = s
    assert fired(run, "support_break") == sorted(expect)


def test_rsi_divergence(daily, run):
    k, lookback = 5, 60
    expect = []
    for symbol, df in per_symbol(daily):
        c, ts = df["close"].to_numpy(), times(df)
        rsi = talib.RSI(c, 14)
        last = {1: None, -1: None}
        for ci in range(k, len(c) - k):
            left, right = c[ci - k : ci], c[ci + 1 : ci + k + 1]
            kind = 0
            if (c[ci] > left).all() and (c[ci] >= right).all():
                kind = 1
            elif (c[ci] < left).all() and (c[ci] <= right).all():
                kind = -1
            if not kind:
                continue
            prev = last[kind]
            if prev is not None and ci - prev <= lookback:
                if kind == 1 and c[ci] > c[prev] and rsi[ci] < rsi[prev]:
                    expect.append((symbol, ts[ci + k], "bearish_divergence"))
                if kind == -1 and c[ci] < c[prev] and rsi[ci] > rsi[prev]:
                    expect.append((symbol, ts[ci + k], "bullish_divergence"))
            last[kind] = ci
    assert fired(run, "rsi_divergence") == sorted(expect)
    assert len(expect) > 20


def test_ma_cross_pending(daily, run):
    expect = []
    for symbol, df in per_symbol(daily):
        c, ts = df["close"].to_numpy(), times(df)
        d = talib.SMA(c, 10) - talib.SMA(c, 50)
        held = 0
        for i in range(50, len(c)):
            # next SMA10 = (sum of the last 9 + x) / 10, next SMA50 = (sum of the last 49 + x) / 50
            s9, s49 = c[i - 8 : i + 1].sum(), c[i - 48 : i + 1].sum()
            x = (10 * s49 - 50 * s9) / 40
            direction = 0
            if d[i] != 0 and x > 0 and abs(x - c[i]) <= 0.01 * c[i] * (1 + 1e-12):
                direction = -1 if d[i] > 0 else 1
            if direction != held and direction:
                expect.append((symbol, ts[i], "cross_pending"))
            held = direction
    got = fired(run, "ma_cross_pending")
    assert got == sorted(expect)
    assert len(got) > 30


def test_every_event_carries_close_indicators_and_slopes(run):
    for e in run:
        assert e.values["close"] > 0
        if e.rule in ("ma_cross", "ma_cross_pending"):
            assert set(e.values) >= {"sma10", "sma50", "sma10_slope", "sma50_slope"}
            assert e.values["sma10_slope"] in (-1, 0, 1)
