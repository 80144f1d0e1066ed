"""The pending-cross trigger is exact: it equals the root found by brute force, bisection
over the indicators' own peek, for SMA/SMA, EMA/EMA, SMA/EMA and RSI through a level."""

from __future__ import annotations

import pytest

from stream.bars import Bar, BarBatch
from stream.config import parse_config
from stream.engine import Engine
from stream.indicators import EMA, RSI, SMA

CONFIG = """
[indicators.sma10]
type = "sma"
period = 10
[indicators.sma50]
type = "sma"
period = 50
[indicators.ema12]
type = "ema"
period = 12
[indicators.ema26]
type = "ema"
period = 26
[indicators.rsi14]
type = "rsi"
period = 14
[rules.sma_sma]
type = "pending"
a = "sma10"
b = "sma50"
[rules.ema_ema]
type = "pending"
a = "ema12"
b = "ema26"
[rules.sma_ema]
type = "pending"
a = "sma10"
b = "ema26"
[rules.rsi_50]
type = "pending"
a = "rsi14"
b = 50
[rules.close_sma]
type = "pending"
a = "close"
b = "sma50"
"""
PAIRS = {
    "sma_sma": (lambda: SMA(10), lambda: SMA(50)),
    "ema_ema": (lambda: EMA(12), lambda: EMA(26)),
    "sma_ema": (lambda: SMA(10), lambda: EMA(26)),
    "rsi_50": (lambda: RSI(14), None),
    "close_sma": (None, lambda: SMA(50)),
}


def bisect(f, lo, hi, steps=200):
    """Root of f on [lo, hi] where f changes sign, by bisection."""
    flo = f(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize("rule", sorted(PAIRS))
def test_trigger_equals_bisection_over_peek(closes, rule):
    engine = Engine(parse_config(CONFIG))
    make_a, make_b = PAIRS[rule]
    a = make_a() if make_a else None
    b = make_b() if make_b else None
    checked = 0
    xs = closes["MSFT"][:1200]
    for i, x in enumerate(xs):
        engine.process(BarBatch.from_bars([Bar("MSFT", i * 86_400 * 10**9, x, x, x, x)]), emit=False)
        if a:
            a.update(x)
        if b:
            b.update(x)
        trig = engine.trigger("MSFT", rule)
        if i < 60 or trig is None or not (0.2 * x < trig < 5 * x):
            continue

        def gap(y):
            va = a.peek(y) if a else y
            vb = b.peek(y) if b else 50.0
            return va - vb

        lo, hi = min(trig, x) * 0.5, max(trig, x) * 2.0
        if (gap(lo) > 0) == (gap(hi) > 0):
            continue
        root = bisect(gap, lo, hi)
        assert trig == pytest.approx(root, rel=1e-9), (i, trig, root)
        checked += 1
    assert checked > 100
