"""Real-shaped bar sets for the benchmarks: the bundled real daily bars, tiled.

Each copy of a real series is rescaled to start where the previous one ended, so the
result keeps real returns and real bar shapes at any length.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from stream.bars import BarBatch

DAILY = "stream/data/stocks_AAPL_FB_GOOG_IBM_MSFT_2000-2013.csv.gz"
MINUTE_NS = 60 * 10**9


def real_ohlcv() -> np.ndarray:
    """[n, 5] real OHLCV rows, the bundled symbols one after another."""
    df = pl.read_csv(DAILY)
    return df.select("Open", "High", "Low", "Close", "Volume").cast(pl.Float64).to_numpy()


def tiled(n: int, offset: int = 0) -> np.ndarray:
    """n rows of real-shaped OHLCV: real rows tiled, each copy rescaled to continue the last."""
    base = real_ohlcv()
    base = np.roll(base, -(offset % len(base)), axis=0)
    reps = -(-n // len(base))
    out = np.empty((reps * len(base), 5))
    scale = 1.0
    for k in range(reps):
        block = base.copy()
        block[:, :4] *= scale
        out[k * len(base) : (k + 1) * len(base)] = block
        scale = block[-1, 3] / base[0, 0]
    return out[:n]


def one_symbol(n: int) -> BarBatch:
    """n minute bars of one symbol."""
    x = tiled(n)
    return BarBatch(["AAA"], np.zeros(n, np.int64), np.arange(n, dtype=np.int64) * MINUTE_NS,
                    x[:, 0], x[:, 1], x[:, 2], x[:, 3], x[:, 4])


def many_symbols(symbols: int, bars: int) -> BarBatch:
    """`bars` minute bars for each of `symbols` symbols, interleaved in time order."""
    cols = np.stack([tiled(bars, offset=97 * s) for s in range(symbols)], axis=1)  # [bars, symbols, 5]
    x = cols.reshape(bars * symbols, 5)
    sym = np.tile(np.arange(symbols, dtype=np.int64), bars)
    t = np.repeat(np.arange(bars, dtype=np.int64) * MINUTE_NS, symbols)
    names = [f"S{s:04d}" for s in range(symbols)]
    return BarBatch(names, sym, t, x[:, 0], x[:, 1], x[:, 2], x[:, 3], x[:, 4])
