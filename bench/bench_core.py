"""Core benchmark: the default pipeline (SMA10, SMA50, RSI14, the channel's highest high and
lowest low of 20 bars, pivots, and all five default rules) against TA-Lib 0.8 stream handles
and talipp, on real-shaped bars, in one run. Prints bars/s and ratios.

Two TA-Lib references: the three configured indicators (SMA 10, SMA 50, RSI 14: 3 handle
updates a bar), and every pipeline indicator TA-Lib has (those and MAX(high, 20), MIN(low, 20):
5 updates a bar). Pivots have no TA-Lib counterpart.

    .venv/bin/python -m bench.bench_core [--bars 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import talib.stream
from talipp.indicators import RSI as TpRSI
from talipp.indicators import SMA as TpSMA

from bench.data import many_symbols, one_symbol
from stream.bars import BarBatch
from stream.engine import Engine


def best(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` runs (the machine is shared and noisy)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def barwatch(batch: BarBatch) -> tuple[float, float]:
    """bars/s of the whole pipeline: events as columns (`Engine.step`, what replay and live
    encode from), and as Python Event objects (`Engine.process`, the library call)."""
    Engine().process(batch)  # compile, warm caches
    return (len(batch) / best(lambda: Engine().step(batch)),
            len(batch) / best(lambda: Engine().process(batch)))


def talib_handles(batch: BarBatch, limit: int, channel: bool = False) -> float:
    """TA-Lib 0.8 stream handles of SMA 10, SMA 50, RSI 14 (and with `channel` MAX(high, 20),
    MIN(low, 20)): one update each per bar, in bar order."""
    n = min(limit, len(batch))
    sym, close, high, low = batch.sym[:n], batch.close[:n], batch.high[:n], batch.low[:n]
    seed = np.full(60, close[0])  # the handles need history to open; its cost is not timed apart

    def open_handles() -> tuple:
        return (talib.stream.SMA(seed, 10), talib.stream.SMA(seed, 50), talib.stream.RSI(seed, 14),
                talib.stream.MAX(seed, 20), talib.stream.MIN(seed, 20))

    def run3():
        handles = {}
        for s, c in zip(sym.tolist(), close.tolist(), strict=True):
            h = handles.get(s)
            if h is None:
                h = handles[s] = open_handles()
            h[0].update(c)
            h[1].update(c)
            h[2].update(c)

    def run5():
        handles = {}
        for s, c, hi, lo in zip(sym.tolist(), close.tolist(), high.tolist(), low.tolist(), strict=True):
            h = handles.get(s)
            if h is None:
                h = handles[s] = open_handles()
            h[0].update(c)
            h[1].update(c)
            h[2].update(c)
            h[3].update(hi)
            h[4].update(lo)

    return n / best(run5 if channel else run3, 2)


def talipp(batch: BarBatch, limit: int) -> float:
    n = min(limit, len(batch))
    close, sym = batch.close[:n], batch.sym[:n]

    def run():
        ind = {}
        for s, c in zip(sym.tolist(), close.tolist(), strict=True):
            h = ind.get(s)
            if h is None:
                h = ind[s] = (TpSMA(10), TpSMA(50), TpRSI(14))
            h[0].add(c)
            h[1].add(c)
            h[2].add(c)

    return n / best(run, 2)


def one_bar_latency(live: bool, samples: int = 20000) -> dict[str, float]:
    """One-bar batches after 1,000 bars of history, in µs: `Engine.process` (Event objects), or
    with `live` what the live loop runs (`Engine.step` and the block's JSON lines). Median and p99
    of all bars, and median of those that fire no event and of those that fire some (a signal's
    latency: its events are built and encoded in Python)."""
    engine = Engine()
    engine.process(one_symbol(1000))
    x = one_symbol(1000 + samples)
    ts = np.empty(samples)
    fired = np.empty(samples, dtype=bool)
    for i in range(samples):
        k = 1000 + i
        bar = BarBatch(["AAA"], x.sym[k : k + 1], x.t[k : k + 1], x.open[k : k + 1], x.high[k : k + 1],
                       x.low[k : k + 1], x.close[k : k + 1], x.volume[k : k + 1])
        t0 = time.perf_counter_ns()
        if live:
            block = engine.step(bar)
            block.lines()
            n = len(block)
        else:
            n = len(engine.process(bar))
        ts[i] = time.perf_counter_ns() - t0
        fired[i] = n > 0
    us = ts / 1e3
    return {"median": float(np.median(us)), "p99": float(np.percentile(us, 99)),
            "quiet": float(np.median(us[~fired])), "fired": float(np.median(us[fired])),
            "share": float(fired.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--ref-bars", type=int, default=200_000, help="bars for the Python-loop references")
    args = ap.parse_args()
    sets = {
        f"1 symbol x {args.bars:,}": one_symbol(args.bars),
        "1,000 symbols x 1,000": many_symbols(1000, 1000),
    }
    print(f"{'bars':24s} {'barwatch step':>14s} {'process':>10s} {'TA-Lib x3':>11s} {'TA-Lib x5':>11s} "
          f"{'talipp':>9s} {'step/TA-Lib x3':>15s} {'step/TA-Lib x5':>15s} {'process/TA-Lib x3':>18s} "
          f"{'step/talipp':>12s}")
    for name, batch in sets.items():
        ours, objs = barwatch(batch)
        ta = talib_handles(batch, args.ref_bars)
        ta5 = talib_handles(batch, args.ref_bars, channel=True)
        tp = talipp(batch, args.ref_bars // 4)
        print(f"{name:24s} {ours / 1e6:10.2f} M/s {objs / 1e6:6.2f} M/s {ta / 1e6:7.2f} M/s "
              f"{ta5 / 1e6:7.2f} M/s {tp / 1e6:5.2f} M/s {ours / ta:14.1f}x {ours / ta5:14.1f}x "
              f"{objs / ta:17.1f}x {ours / tp:11.1f}x")
    print("(barwatch: SMA10, SMA50, RSI14, the channel's MAX/MIN 20, pivots and all five rules; TA-Lib x3: "
          "SMA10, SMA50, RSI14 handles; x5: and MAX(high, 20), MIN(low, 20); talipp: SMA10, SMA50, RSI14)")
    t0 = time.perf_counter()
    h = talib.stream.SMA(np.ones(10), 10)
    for _ in range(100000):
        h.update(1.0)
    ta_one = (time.perf_counter() - t0) / 100000 * 1e6
    for live, name in ((False, "Engine.process"), (True, "Engine.step + lines (live)")):
        got = one_bar_latency(live)
        print(f"one-bar {name}: median {got['median']:.2f} µs, p99 {got['p99']:.2f} µs; bars with no event "
              f"{got['quiet']:.2f} µs, with events ({got['share']:.0%} of bars) {got['fired']:.2f} µs "
              f"(one TA-Lib handle update: {ta_one:.2f} µs; median ratio {got['median'] / ta_one:.1f}x)")

if __name__ == "__main__":
    main()
