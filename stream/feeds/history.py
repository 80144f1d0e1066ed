"""Historical bars from Alpaca's REST API through alpaca-py's historical clients.

Used for warm start, for the minutes missed while the stream was disconnected, and by
`barwatch fetch`. alpaca-py does the HTTP, auth headers, 429 retries and paging
(next_page_token); this module picks the client (stocks or crypto), the endpoint (`data_url`,
for proxies and tests), feed and adjustment, cuts long requests into pieces so progress can
be shown, and returns bars in the replay format (symbol, t, open, high, low, close, volume,
trade_count, vwap, kind). Calls block: the live path runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import polars as pl
import requests
from alpaca.common.exceptions import APIError, RetryException
from alpaca.data.enums import Adjustment, CryptoFeed, DataFeed
from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from ..bars import FINAL
from ..config import ADJUSTMENTS

DAY = 86_400 * 1_000_000_000
TIMEFRAMES = {
    "1Min": TimeFrame(1, TimeFrameUnit.Minute),
    "5Min": TimeFrame(5, TimeFrameUnit.Minute),
    "15Min": TimeFrame(15, TimeFrameUnit.Minute),
    "1Hour": TimeFrame(1, TimeFrameUnit.Hour),
    "1Day": TimeFrame(1, TimeFrameUnit.Day),
}
SCHEMA = {"symbol": pl.String, "t": pl.Datetime("ns", "UTC"), "open": pl.Float64, "high": pl.Float64,
          "low": pl.Float64, "close": pl.Float64, "volume": pl.Float64, "trade_count": pl.Float64,
          "vwap": pl.Float64, "kind": pl.Int8}


class HistoryError(Exception):
    """A REST failure, phrased as one line (never containing the keys)."""


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(microsecond=(ns // 1000) % 1_000_000)


class History:
    """REST bars for one feed; `bars` returns the replay format, oldest first per symbol."""

    def __init__(self, key: str, secret: str, data_url: str | None = None, feed: str = "iex",
                 adjustment: str = "raw", symbols_per_request: int = 200) -> None:
        if adjustment not in ADJUSTMENTS:
            raise ValueError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}")
        self.feed = feed
        self.adjustment = adjustment
        self.crypto = feed == "crypto"
        self.per_request = symbols_per_request
        base = data_url.rstrip("/") if data_url else None
        cls = CryptoHistoricalDataClient if self.crypto else StockHistoricalDataClient
        self._client = cls(key, secret, raw_data=True, url_override=base)
        self.requests = 0

    def __repr__(self) -> str:  # never the keys
        return f"History(feed={self.feed!r})"

    def _request(self, symbols: list[str], timeframe: str, start: int, end: int | None):
        tf = TIMEFRAMES[timeframe]
        kw = {"symbol_or_symbols": symbols, "timeframe": tf, "start": _dt(start)}
        if end is not None:
            kw["end"] = _dt(end)
        self.requests += 1
        try:
            if self.crypto:
                return self._client.get_crypto_bars(CryptoBarsRequest(**kw), feed=CryptoFeed.US)
            # the test feed has no history of its own: its REST twin is iex
            feed = DataFeed.IEX if self.feed == "test" else DataFeed(self.feed)
            req = StockBarsRequest(**kw, feed=feed, adjustment=Adjustment(self.adjustment))
            return self._client.get_stock_bars(req)
        except APIError as e:
            status = e.status_code
            try:
                text = e.message
            except Exception:
                text = str(e).splitlines()[0][:200] if str(e) else "error"
            hint = " (check APCA_API_KEY_ID / APCA_API_SECRET_KEY)" if status in (401, 403) else ""
            raise HistoryError(f"Alpaca REST bars: HTTP {status}: {text}{hint}") from None
        except RetryException:
            raise HistoryError("Alpaca REST bars: rate limited (HTTP 429) after retries") from None
        except requests.RequestException as e:
            why = type(e).__name__
            raise HistoryError(f"Alpaca REST bars: cannot reach the data API ({why})") from None

    def bars(self, symbols: list[str], timeframe: str, start: int, end: int | None = None) -> pl.DataFrame:
        """Bars of `symbols` with start <= t <= end (ns UTC; end None: up to now)."""
        frames = []
        for i in range(0, len(symbols), self.per_request):
            raw = self._request(symbols[i:i + self.per_request], timeframe, start, end) or {}
            frames.append(to_frame(raw))
        return pl.concat(frames) if frames else empty()

    def bars_chunked(self, symbols: list[str], timeframe: str, start: int, end: int,
                     progress: Callable[[int, int, int], None] | None = None) -> pl.DataFrame:
        """Like `bars`, in pieces (by time and by symbol group) so progress can be shown:
        progress(done, total, rows) after each piece."""
        span = {"1Min": 7, "5Min": 30, "15Min": 60, "1Hour": 180}.get(timeframe, 3650) * DAY
        cuts = list(range(start, end + 1, span)) or [start]
        groups = [symbols[i:i + self.per_request] for i in range(0, len(symbols), self.per_request)]
        total = len(cuts) * len(groups)
        frames, done, rows = [], 0, 0
        for g in groups:
            for a in cuts:
                b = min(a + span - 1, end)
                df = to_frame(self._request(g, timeframe, a, b) or {})
                frames.append(df)
                done += 1
                rows += len(df)
                if progress:
                    progress(done, total, rows)
        if not frames:
            return empty()
        return pl.concat(frames).unique(["symbol", "t"], keep="last", maintain_order=True).sort(
            ["symbol", "t"])


def to_frame(raw: dict) -> pl.DataFrame:
    """alpaca-py's raw bars {symbol: [{t, o, h, l, c, v, n, vw}]} -> the replay format."""
    if not raw:
        return empty()
    sym, t, o, h, l, c, v, n, vw = ([] for _ in range(9))
    nan = float("nan")
    for s, rows in raw.items():
        for r in rows:
            sym.append(s)
            t.append(r["t"])
            o.append(r["o"])
            h.append(r["h"])
            l.append(r["l"])
            c.append(r["c"])
            v.append(r["v"])
            x = r.get("n")
            n.append(nan if x is None else x)
            x = r.get("vw")
            vw.append(nan if x is None else x)
    f = np.float64
    df = pl.DataFrame({
        "symbol": pl.Series(sym, dtype=pl.String),
        "t": pl.Series(t, dtype=pl.String).str.to_datetime(time_unit="ns", time_zone="UTC"),
        "open": np.array(o, f), "high": np.array(h, f), "low": np.array(l, f),
        "close": np.array(c, f), "volume": np.array(v, f), "trade_count": np.array(n, f),
        "vwap": np.array(vw, f), "kind": np.full(len(t), FINAL, np.int8),
    })
    return df
