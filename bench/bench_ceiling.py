"""Ceiling benchmark: how fast could the default pipeline be at all? The same indicators and
rules over one symbol's bars as a single hand-written loop with every scalar of state in a
local (registers) and only the rings in memory: no state rows, no revisions, no forming bars,
no retractions, no symbols. Not barwatch's code and not a second implementation to use: a
measurement, beside `Engine.step` and TA-Lib's stream handles in the same run. It must fire the
events the engine fires (same count per rule and kind, checked) to count as the same work.

    .venv/bin/python -m bench.bench_ceiling [--bars 1000000]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from numba import njit

from bench.bench_core import best, talib_handles
from bench.data import one_symbol
from stream.engine import Engine
from stream.signals.common import E_KIND, E_RULE


@njit(cache=True, _nrt=False)
def _loop(hi, lo, cl, t, R10, R50, BH, SH, BL, SL, PR, OS, TT, EV):
    """The default config (config.toml) over one symbol; EV[e] = (rule, kind). Returns e."""
    e = 0
    s10 = s50 = 0.0
    p10 = p50 = 0
    v10 = v50 = math.nan
    last = g = ls = 0.0
    rv = math.nan
    vh = vl = pvh = pvl = math.nan
    runh = runl = 0.0
    side = 0.0  # ma_cross
    zone = -1.0  # rsi_bands
    chside = 0.0  # support_break
    pdir = 0.0  # ma_cross_pending
    hP = hO = hI = lP = lO = lI = math.nan  # rsi_divergence: last pivot high and low
    pos = 0
    K, W = 5, 11
    for c in range(cl.shape[0]):
        x = cl[c]
        R10[p10] = x  # SMA 10, 50: ring + running sum, TA-Lib's order
        p10 = p10 + 1 if p10 + 1 < 10 else 0
        tot = s10 + x
        if c >= 9:
            v10 = tot / 10
            tot -= R10[p10]
        s10 = tot
        R50[p50] = x
        p50 = p50 + 1 if p50 + 1 < 50 else 0
        tot = s50 + x
        if c >= 49:
            v50 = tot / 50
            tot -= R50[p50]
        s50 = tot
        if c > 0:  # RSI 14, Wilder
            d = x - last
            if c > 14:
                ls *= 13
                g *= 13
            if d < 0:
                ls -= d
            else:
                g += d
            if c >= 14:
                ls /= 14
                g /= 14
                tt = g + ls
                rv = 0.0 if tt == 0.0 else 100.0 * (g / tt)
        last = x
        j = c % 20  # MAX(high, 20), MIN(low, 20): van Herk / Gil-Werman blocks
        if j == 0:
            mh, ml = BH[19], BL[19]
            SH[19], SL[19] = mh, ml
            for q in range(18, -1, -1):
                mh = max(mh, BH[q])
                ml = min(ml, BL[q])
                SH[q], SL[q] = mh, ml
            runh, runl = hi[c], lo[c]
        else:
            runh, runl = max(runh, hi[c]), min(runl, lo[c])
        BH[j], BL[j] = hi[c], lo[c]
        if c >= 19:
            pvh, pvl = vh, vl
            vh = max(SH[j + 1], runh) if j < 19 else runh
            vl = min(SL[j + 1], runl) if j < 19 else runl
        dd = v10 - v50  # ma_cross
        if dd == dd:
            s = 1.0 if dd > 0 else (-1.0 if dd < 0 else 0.0)
            if side == 0.0:
                side = s
            elif s != 0.0 and s != side:
                side = s
                EV[e, 0], EV[e, 1] = 0, 1 if s > 0 else 2
                e += 1
        if rv == rv:  # rsi_bands
            z = (1.0 if rv >= 30 else 0.0) + (1.0 if rv >= 50 else 0.0) + (1.0 if rv >= 70 else 0.0)
            if zone >= 0 and z != zone:
                EV[e, 0], EV[e, 1], EV[e + 1, 0], EV[e + 1, 1] = 1, 4, 1, 3
                e += 2
            zone = z
        if pvl == pvl:  # support_break, against the previous bar's channel
            s = -1.0 if x < pvl else (1.0 if x > pvh else 0.0)
            if s != chside:
                chside = s
                if s != 0.0:
                    EV[e, 0], EV[e, 1] = 2, 5 if s < 0 else 6
                    e += 1
        pos = (pos + 1 if pos + 1 < W else 0) if c else 0  # rsi_divergence: pivots 5, lookback 60
        PR[pos] = PR[pos + W] = x
        OS[pos] = rv
        TT[pos] = t[c] // 1000
        if c + 1 >= W:
            old = pos + 1 if pos + 1 < W else 0
            mid = PR[old + K]
            high = low = True
            for q in range(W):
                v = PR[old + q]
                if q < K:
                    high &= mid > v
                    low &= mid < v
                elif q > K:
                    high &= mid >= v
                    low &= mid <= v
            if high or low:
                p, o = mid, OS[old + K if old + K < W else old + K - W]
                if high:
                    if hI == hI and (c - K) - hI <= 60 and p > hP and o < hO:
                        EV[e, 0], EV[e, 1] = 3, 7
                        e += 1
                    hP, hO, hI = p, o, c - K
                else:
                    if lI == lI and (c - K) - lI <= 60 and p < lP and o > lO:
                        EV[e, 0], EV[e, 1] = 3, 8
                        e += 1
                    lP, lO, lI = p, o, c - K
        direction = 0.0  # ma_cross_pending: the close that completes the cross, within 1 %
        if c >= 49 and dd == dd and dd != 0.0:
            xt = (s50 / 50 - s10 / 10) / (0.1 - 0.02)
            if xt > 0.0 and abs(xt - x) <= 0.01 * x:
                direction = -1.0 if dd > 0 else 1.0
        if direction != pdir:
            pdir = direction
            if direction != 0.0:
                EV[e, 0], EV[e, 1] = 4, 9
                e += 1
    return e


def ceiling(batch) -> tuple[float, np.ndarray]:
    """bars/s of the loop (best of 5) and its (rule, kind) records."""
    n = len(batch)
    ev = np.zeros((3 * n, 2), dtype=np.int64)
    rings = [np.zeros(k) for k in (10, 50, 20, 20, 20, 20, 22, 11, 11)]
    args = (batch.high, batch.low, batch.close, batch.t, *rings, ev)
    ne = _loop(*args)
    return n / best(lambda: _loop(*args), 5), ev[:ne]


def counts(rule: np.ndarray, kind: np.ndarray) -> dict[tuple[int, int], int]:
    keys, freq = np.unique(np.stack([rule, kind], axis=1), axis=0, return_counts=True)
    return {(int(a), int(b)): int(f) for (a, b), f in zip(keys, freq, strict=True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--ref-bars", type=int, default=200_000, help="bars for TA-Lib's Python loops")
    args = ap.parse_args()
    batch = one_symbol(args.bars)
    block = Engine().step(batch)
    fast, ev = ceiling(batch)
    ours = counts(block.rec[:, E_RULE], block.rec[:, E_KIND])
    theirs = counts(ev[:, 0], ev[:, 1])
    if theirs != ours:
        raise SystemExit(f"the loop fires other events than the engine: {theirs} vs {ours}")
    engine = len(batch) / best(lambda: Engine().step(batch), 5)
    ta3 = talib_handles(batch, args.ref_bars)
    ta5 = talib_handles(batch, args.ref_bars, channel=True)
    print(f"1 symbol x {len(batch):,} bars, {len(ev):,} events (the same per rule and kind in both)")
    for name, bps in (("register loop (the ceiling)", fast), ("barwatch Engine.step", engine),
                      ("TA-Lib handles x3", ta3), ("TA-Lib handles x5", ta5)):
        print(f"  {name:28s} {bps / 1e6:7.2f} M bars/s {1e9 / bps:8.1f} ns/bar   {bps / ta3:6.1f}x TA-Lib x3"
              f"  {bps / ta5:6.1f}x TA-Lib x5")


if __name__ == "__main__":
    main()
