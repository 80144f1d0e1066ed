"""Streaming indicators, one per file; each equals TA-Lib's function of the same name."""

from .ema import EMA
from .extremes import MAX, MIN
from .pivots import Pivots
from .rsi import RSI
from .sma import SMA

__all__ = ["SMA", "EMA", "RSI", "MAX", "MIN", "Pivots"]
