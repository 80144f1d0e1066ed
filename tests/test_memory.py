"""Bounded memory: 10 million updates leave traced memory where the first million did."""

from __future__ import annotations

import tracemalloc

import numpy as np

from stream.bars import BarBatch
from stream.engine import Engine
from stream.indicators import RSI

MINUTE = 60 * 10**9


def test_engine_memory_flat_over_ten_million_bars(closes):
    real = np.concatenate([closes[s] for s in sorted(closes)])  # real prices, ~12k
    n = 1_000_000
    x = np.resize(real, n)
    batch = BarBatch(["AAA", "BBB"], np.arange(n) % 2, (np.arange(n) // 2) * MINUTE, x, x * 1.01, x * 0.99, x, x)
    engine = Engine()
    engine.step(batch)  # first million: state allocated, code compiled
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(9):
        batch.t += (n // 2) * MINUTE  # the next million bars, later in time
        engine.step(batch)  # the events as columns, dropped: only state may stay
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert engine.bars == 10 * n and engine.rejected == 0
    assert grown < 256 * 1024, f"memory grew by {grown} bytes over 9 million bars"


def test_indicator_state_is_fixed_size():
    rsi = RSI(14)
    size = rsi._S.nbytes
    for x in np.resize([10.0, 11.0, 10.5, 12.0], 100_000):
        rsi.update(x)
    assert rsi._S.nbytes == size
