"""Warm start: how much history the config needs, how far back that reaches, and which local
files (recordings, fetched Parquet) already hold it.

Every indicator must be ready and converged before the first live bar, so the first live
signal is the one an uninterrupted history would give. SMA and rolling extremes are exact
after `period` bars. EMA and Wilder's RSI remember their seed for ever, fading by a factor
(n-1)/(n+1) and (n-1)/n per bar: they agree with a run from the start of history to a relative
`tol` (1e-10 by default) after period + log(tol)/log(factor) bars: 325 bars for RSI 14,
136 for EMA 10. (Ten times the period leaves RSI 14 about 3e-5 off, relative.)
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from ..bars import FINAL
from ..config import Settings
from ..timeframes import TIMEFRAMES
from .history import empty

DAY = 86_400 * 1_000_000_000
SESSION_BARS = {"1Min": 390, "5Min": 78, "15Min": 26, "1Hour": 7, "1Day": 1}


def bars_needed(settings: Settings, tol: float = 1e-10) -> int:
    """Bars of history that make every indicator and rule of the config ready and converged."""
    need = 1
    for ind in settings.indicators.values():
        p = ind.period
        if ind.type == "rsi":
            k = p + math.ceil(math.log(tol) / math.log(1 - 1 / p))
        elif ind.type == "ema" and p > 1:
            k = p + math.ceil(math.log(tol) / math.log((p - 1) / (p + 1)))
        else:
            k = p
        need = max(need, k)
    for rule in settings.rules.values():
        p = rule.params
        if rule.type == "channel":
            need = max(need, p["period"] + 1)
        elif rule.type == "divergence":
            need = max(need, p["lookback"] + 2 * p["pivots"] + 1)
        elif "confirm" in p:
            need = max(need, p["confirm"] + 1)
    return need + 1


def window(timeframe: str, need: int) -> int:
    """Calendar span (ns) that holds `need` bars of the timeframe, weekends and holidays included."""
    sessions = math.ceil(need / SESSION_BARS[timeframe]) + 1
    return (math.ceil(sessions * 7 / 5) + 10) * DAY


def step_ns(timeframe: str) -> int:
    """A bar's nominal length (a day for 1Day)."""
    return DAY if timeframe == "1Day" else TIMEFRAMES[timeframe] * 60 * 1_000_000_000


def local_bars(folders: list[str | Path], symbols: list[str],
               timeframe: str) -> tuple[pl.DataFrame, list[str]]:
    """FINAL bars of `symbols` at `timeframe` from recordings and fetched Parquet files in
    `folders` (newest row wins per symbol and time); also the files skipped, with why."""
    from ..recorder import metadata, read_recording

    frames, skipped = [], []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.parquet"), *folder.glob("session-*.arrows")]):
            meta = metadata(path)
            if meta.get("timeframe") != timeframe:
                skipped.append(f"{path.name}: timeframe {meta.get('timeframe')!r}, not {timeframe}")
                continue
            try:
                df = read_recording(path)
            except Exception as e:  # noqa: BLE001 - a bad cache file is reported, not fatal
                skipped.append(f"{path.name}: {str(e).splitlines()[0][:120]}")
                continue
            if "kind" in df.columns:
                df = df.filter(pl.col("kind") == FINAL)
            df = df.filter(pl.col("symbol").is_in(symbols))
            frames.append(df.select(empty().columns).cast(empty().schema))
    if not frames:
        return empty(), skipped
    df = pl.concat(frames).unique(["symbol", "t"], keep="last", maintain_order=True).sort(["t", "symbol"])
    return df, skipped
