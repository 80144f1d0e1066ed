"""Shared fixtures: the bundled real daily bars, loaded independently of replay/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

DATA = Path(__file__).resolve().parent.parent / "stream" / "data"
DAILY = DATA / "stocks_AAPL_FB_GOOG_IBM_MSFT_2000-2013.csv.gz"


def load_daily() -> pl.DataFrame:
    """The bundled daily file as symbol, t (UTC, midnight New York), open..volume; time-sorted."""
    df = pl.read_csv(DAILY)
    return df.select(
        pl.col("Ticker").alias("symbol"),
        pl.col("Date")
        .str.to_datetime("%Y-%m-%d")
        .dt.replace_time_zone("America/New_York")
        .dt.convert_time_zone("UTC")
        .alias("t"),
        pl.col("Open").alias("open"),
        pl.col("High").alias("high"),
        pl.col("Low").alias("low"),
        pl.col("Close").alias("close"),
        pl.col("Volume").cast(pl.Float64).alias("volume"),
    ).sort(["t", "symbol"], maintain_order=True)


@pytest.fixture(scope="session")
def daily() -> pl.DataFrame:
    return load_daily()


@pytest.fixture(scope="session")
def aapl(daily: pl.DataFrame) -> pl.DataFrame:
    return daily.filter(pl.col("symbol") == "AAPL")


@pytest.fixture(scope="session")
def closes(daily: pl.DataFrame) -> dict[str, np.ndarray]:
    """Close series per symbol, the real data the indicators are checked on."""
    return {s: daily.filter(pl.col("symbol") == s)["close"].to_numpy() for s in daily["symbol"].unique()}
