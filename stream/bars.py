"""Bar and BarBatch: the one input shape every feed produces and the engine consumes.

A BarBatch is columnar (numpy arrays, one entry per bar) so one live bar and a million
replayed bars go through the same compiled step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
import numpy as np
import polars as pl

FINAL = 0  # a complete bar (or a revision of the last one, when its start repeats)
FORMING = 1  # a snapshot of a bar still forming: evaluated with peek, signals provisional
# flags added to a kind, so a recorded session replays as the live run stepped it:
WARM = 2  # history stepped before the first live bar: state only, no events
LATE = 4  # fetched after a reconnect (backfill): its events say "late": true


class Bar(msgspec.Struct, frozen=True):
    """One OHLCV bar; `start` is the bar's start time in nanoseconds since the epoch, UTC."""

    symbol: str
    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    trade_count: int | None = None
    vwap: float | None = None
    forming: bool = False



def read_only(a: np.ndarray) -> np.ndarray:
    """a, or a read-only view of it. numba compiles a kernel once per argument type, and an
    array's type says whether it may be written: columns come both ways (polars' memory, arrays
    built in memory, a filter's copies), and as they are a kernel could load (on a cold cache:
    compile) a second copy at the first chunk. Kernels that only read get them read-only."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a

@dataclass
class BarBatch:
    """Columnar bars: `sym` indexes `symbols`; times are int64 ns UTC; `kind` is FINAL or
    FORMING, plus the WARM and LATE flags."""

    symbols: list[str]
    sym: np.ndarray
    t: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    trade_count: np.ndarray = field(default=None)  # float64, NaN when unknown
    vwap: np.ndarray = field(default=None)  # float64, NaN when unknown
    kind: np.ndarray = field(default=None)  # int8
    late: bool = False  # bars fetched after a reconnect (backfill): events say "late": true

    def __post_init__(self) -> None:
        n = len(self.t)
        self.sym = np.ascontiguousarray(self.sym, dtype=np.int64)
        self.t = np.ascontiguousarray(self.t, dtype=np.int64)
        for name in ("open", "high", "low", "close", "volume"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        for name in ("trade_count", "vwap"):
            col = getattr(self, name)
            col = np.full(n, np.nan) if col is None else col
            setattr(self, name, np.ascontiguousarray(col, dtype=np.float64))
        kind = np.zeros(n, dtype=np.int8) if self.kind is None else self.kind
        self.kind = np.ascontiguousarray(kind, dtype=np.int8)

    def __len__(self) -> int:
        return len(self.t)

    def rows(self, i: int, j: int) -> BarBatch:
        """Rows i:j (views, no copies)."""
        return BarBatch(self.symbols, self.sym[i:j], self.t[i:j], self.open[i:j], self.high[i:j],
                        self.low[i:j], self.close[i:j], self.volume[i:j], self.trade_count[i:j],
                        self.vwap[i:j], self.kind[i:j], self.late)

    @classmethod
    def from_bars(cls, bars: list[Bar], late: bool = False) -> BarBatch:
        """Build a batch from Bar records (the live path: a handful at a time)."""
        symbols: list[str] = []
        index: dict[str, int] = {}
        sym = []
        for b in bars:
            i = index.get(b.symbol)
            if i is None:
                i = index[b.symbol] = len(symbols)
                symbols.append(b.symbol)
            sym.append(i)
        nan = float("nan")
        return cls(
            symbols=symbols,
            sym=np.array(sym, dtype=np.int64),
            t=np.array([b.start for b in bars], dtype=np.int64),
            open=np.array([b.open for b in bars], dtype=np.float64),
            high=np.array([b.high for b in bars], dtype=np.float64),
            low=np.array([b.low for b in bars], dtype=np.float64),
            close=np.array([b.close for b in bars], dtype=np.float64),
            volume=np.array([b.volume for b in bars], dtype=np.float64),
            trade_count=np.array(
                [nan if b.trade_count is None else b.trade_count for b in bars], dtype=np.float64
            ),
            vwap=np.array([nan if b.vwap is None else b.vwap for b in bars], dtype=np.float64),
            kind=np.array([FORMING if b.forming else FINAL for b in bars], dtype=np.int8),
            late=late,
        )

    @classmethod
    def from_polars(cls, df: pl.DataFrame, late: bool = False) -> BarBatch:
        """Build a batch from a frame with columns symbol, t (Datetime or int ns, UTC),
        open, high, low, close and optionally volume, trade_count, vwap, kind."""
        col_sym = df.get_column("symbol").cast(pl.String)
        symbols = col_sym.unique(maintain_order=True).to_list()
        sym = col_sym.cast(pl.Enum(symbols)).to_physical().to_numpy()
        t = df.get_column("t")
        if t.dtype == pl.Datetime or isinstance(t.dtype, pl.Datetime):
            t = t.dt.replace_time_zone(None) if t.dtype.time_zone else t
            t = t.dt.cast_time_unit("ns").to_physical()
        t_ns = t.to_numpy()

        def col(name: str) -> np.ndarray | None:
            if name not in df.columns:
                return None
            return df.get_column(name).cast(pl.Float64).to_numpy()

        return cls(
            symbols=symbols,
            sym=sym,
            t=t_ns,
            open=col("open"),
            high=col("high"),
            low=col("low"),
            close=col("close"),
            volume=col("volume") if "volume" in df.columns else np.zeros(len(df)),
            trade_count=col("trade_count"),
            vwap=col("vwap"),
            kind=df.get_column("kind").to_numpy() if "kind" in df.columns else None,
            late=late,
        )

    def to_polars(self) -> pl.DataFrame:
        """The batch as a frame in the replay format (also the recorder's)."""
        return pl.DataFrame(
            {
                "symbol": np.array(self.symbols, dtype=object)[self.sym]
                if len(self)
                else np.array([], dtype=object),
                "t": self.t,
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                "trade_count": self.trade_count,
                "vwap": self.vwap,
                "kind": self.kind,
            },
            schema_overrides={"symbol": pl.String},
        ).with_columns(pl.col("t").cast(pl.Datetime("ns", "UTC")))

    def bars(self) -> list[Bar]:
        """The batch as Bar records (for tests and small live batches)."""
        out = []
        for i in range(len(self)):
            n = self.trade_count[i]
            vw = self.vwap[i]
            out.append(
                Bar(
                    symbol=self.symbols[self.sym[i]],
                    start=int(self.t[i]),
                    open=float(self.open[i]),
                    high=float(self.high[i]),
                    low=float(self.low[i]),
                    close=float(self.close[i]),
                    volume=float(self.volume[i]),
                    trade_count=None if np.isnan(n) else int(n),
                    vwap=None if np.isnan(vw) else float(vw),
                    forming=bool(self.kind[i] & FORMING),
                )
            )
        return out
