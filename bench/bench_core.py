"""Core benchmark: the default pipeline (SMA10, SMA50, RSI14 and all five default rules)
against TA-Lib 0.8 stream handles and talipp computing the same three indicators, on
real-shaped bars, in one run. Prints bars/s and ratios.

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


def talib_handles(batch: BarBatch, limit: int) -> float:
    """TA-Lib 0.8 stream handles, one update per indicator per bar, in bar order."""
    n = min(limit, len(batch))
    close, sym = batch.close[:n], batch.sym[:n]
    seed = np.full(60, close[0])  # the handles need history to open; its cost is not timed apart

    def run():
        handles = {}
        for s, c in zip(sym.tolist(), close.tolist(), strict=True):
            h = handles.get(s)
            if h is None:
                h = handles[s] = (talib.stream.SMA(seed, 10), talib.stream.SMA(seed, 50),
                                  talib.stream.RSI(seed, 14))
            h[0].update(c)
            h[1].update(c)
            h[2].update(c)

    return n / best(run, 2)


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


def one_bar_latency(samples: int = 20000) -> tuple[float, float]:
    """Engine.process of a one-bar batch, after 1,000 bars of history: median and p99 in µs."""
    engine = Engine()
    engine.process(one_symbol(1000))
    x = one_symbol(1000 + samples)
    ts = np.empty(samples)
    for i in range(samples):
        k = 1000 + i
        bar = BarBatch(["AAA"], x.sym[k : k + 1], x.t[k : k + 1], x.open[k : k + 1], x.high[k : k + 1],
                       x.low[k : k + 1], x.close[k : k + 1], x.volume[k : k + 1])
        t0 = time.perf_counter_ns()
        engine.process(bar)
        ts[i] = time.perf_counter_ns() - t0
    return float(np.median(ts)) / 1e3, float(np.percentile(ts, 99)) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--ref-bars", type=int, default=200_000, help="bars for the Python-loop references")
    args = ap.parse_args()
    sets = {
        f"1 symbol x {args.bars:,}": one_symbol(args.bars),
        "1,000 symbols x 1,000": many_symbols(1000, 1000),
    }
    print(f"{'bars':24s} {'barwatch step':>14s} {'process':>10s} {'TA-Lib handles':>15s} {'talipp':>9s} "
          f"{'step/TA-Lib':>12s} {'process/TA-Lib':>15s} {'step/talipp':>12s}")
    for name, batch in sets.items():
        ours, objs = barwatch(batch)
        ta = talib_handles(batch, args.ref_bars)
        tp = talipp(batch, args.ref_bars // 4)
        print(f"{name:24s} {ours / 1e6:10.2f} M/s {objs / 1e6:6.2f} M/s {ta / 1e6:11.2f} M/s "
              f"{tp / 1e6:5.2f} M/s "
              f"{ours / ta:11.1f}x {objs / ta:14.1f}x {ours / tp:11.1f}x")
    print("(barwatch: 3 indicators, 2 hidden ones (channel) and all five rules; references: 3 indicators)")
    med, p99 = one_bar_latency()
    t0 = time.perf_counter()
    h = talib.stream.SMA(np.ones(10), 10)
    for _ in range(100000):
        h.update(1.0)
    ta_one = (time.perf_counter() - t0) / 100000 * 1e6
    print(f"one-bar Engine.process: median {med:.2f} µs, p99 {p99:.2f} µs "
          f"(one TA-Lib handle update: {ta_one:.2f} µs; ratio {med / ta_one:.1f}x)")


if __name__ == "__main__":
    main()
