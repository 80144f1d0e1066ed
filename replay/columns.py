"""Column names and times: map a file's columns to bar fields and turn its times into ns UTC.

Names are matched case-insensitively (surrounding spaces and a byte-order mark ignored):
Alpaca's short names (t, o, h, l, c, v, n, vw, S) or long ones (timestamp, open, ...).
Times with an offset (RFC 3339, "+00:00", "Z") are honoured; naive times and plain dates
are exchange time (America/New_York by default), so a daily "2012-01-03" is 05:00Z, as
Alpaca stamps daily bars. Integer times are epoch seconds, ms, us or ns by magnitude.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

EXCHANGE_TZ = "America/New_York"

# role -> accepted names, best first (lower case)
ROLES: dict[str, tuple[str, ...]] = {
    "t": ("t", "timestamp", "datetime", "date", "time"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "v"),
    "trade_count": ("trade_count", "n", "trades"),
    "vwap": ("vwap", "vw"),
    "symbol": ("symbol", "s", "ticker"),
    "kind": ("kind",),
}
REQUIRED = ("t", "open", "high", "low", "close")
PRICES = ("open", "high", "low", "close")

# Strings are normalised first: "T" separator -> " ", trailing "Z" -> "+00:00".
AWARE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z")
NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")


class ColumnError(ValueError):
    """A required column is missing; str() is the one-line reason (without the file name)."""


def _key(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


@dataclass(frozen=True)
class Columns:
    """Which column of a file plays which role; `date_time` pairs separate date and time columns."""

    names: dict[str, str]  # role -> the file's column name
    date_time: tuple[str, str] | None = None


def resolve(columns: list[str]) -> Columns:
    """Map a file's column names to roles; raise ColumnError naming what is missing."""
    by_key: dict[str, str] = {}
    for name in columns:
        by_key.setdefault(_key(name), name)
    names: dict[str, str] = {}
    for role, accepted in ROLES.items():
        for key in accepted:
            if key in by_key:
                names[role] = by_key[key]
                break
    date_time = None
    if (
        names.get("t") == by_key.get("date")
        and "time" in by_key
        and not ({"t", "timestamp", "datetime"} & set(by_key))
    ):
        date_time = (by_key["date"], by_key["time"])  # separate Date and Time columns
    for role in REQUIRED:
        if role not in names:
            names_ = ROLES[role]
            looked = names_[0] if len(names_) == 1 else ", ".join(names_[:-1]) + " or " + names_[-1]
            found = ", ".join(columns) if columns else "(none)"
            what = "time" if role == "t" else role
            raise ColumnError(f"no {what} column (looked for {looked}, any case); columns found: {found}")
    return Columns(names, date_time)


def symbol_from_name(path: str | Path) -> str:
    """The symbol a file name stands for: the first token before '_' or '.', upper case."""
    name = Path(path).name
    token = re.split(r"[_.]", name, maxsplit=1)[0]
    return token.strip().upper()


def check_tz(tz: str) -> ZoneInfo:
    """The zone for naive times; ValueError with a clear message when unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None


def parse_time(text: str, tz: str = EXCHANGE_TZ) -> int:
    """A time given on the command line -> ns UTC: a date, a naive date-time (exchange time) or RFC 3339."""
    zone = check_tz(tz)
    s = str(text).strip()
    norm = re.sub(r"^(\d{4}-\d{2}-\d{2})[Tt ]", r"\1 ", s)
    norm = re.sub(r"[Zz]$", "+00:00", norm)
    frac_ns = 0
    m = re.match(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{1,9})(.*)$", norm)
    if m:  # fractions to the nanosecond (datetime stops at microseconds)
        norm = m.group(1) + m.group(3)
        frac_ns = int(m.group(2).ljust(9, "0"))
    try:
        dt = datetime.fromisoformat(norm)
    except ValueError:
        dt = None
    if dt is None or not re.match(r"^\d{4}-\d{2}-\d{2}", norm):
        raise ValueError(
            f"bad time {text!r}: expected YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]' ({tz} time) "
            "or RFC 3339 with an offset such as 2012-01-03T14:30:00Z"
        )
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone)
    epoch = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
    delta = dt - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000 + frac_ns


def _naive_to_utc(s: pl.Series, tz: str) -> pl.Series:
    s = s.dt.cast_time_unit("ns")
    return s.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


def _aware_ns(s: pl.Series) -> pl.Series:
    """An aware time column as Int64 ns UTC: its physical values already are the instants."""
    return (s if s.dtype.time_unit == "ns" else s.dt.cast_time_unit("ns")).to_physical()


def _as_ns(s: pl.Series) -> pl.Series:
    return s.dt.replace_time_zone(None).to_physical().cast(pl.Int64)


def _epoch_ns(s: pl.Series) -> pl.Series:
    """Integer or float epoch times -> ns, unit chosen per value by magnitude (s, ms, us, ns)."""
    x = s.cast(pl.Float64)
    a = x.abs()
    frame = pl.DataFrame({"x": x, "a": a})
    out = frame.select(
        pl.when(pl.col("x").is_nan())
        .then(None)
        .when(pl.col("a") >= 1e17)
        .then(pl.col("x"))
        .when(pl.col("a") >= 1e14)
        .then(pl.col("x") * 1e3)
        .when(pl.col("a") >= 1e11)
        .then(pl.col("x") * 1e6)
        .otherwise(pl.col("x") * 1e9)
    ).to_series()
    if s.dtype.is_integer():
        # exact for integers: avoid float rounding of ns values
        i = s.cast(pl.Int64)
        frame = pl.DataFrame({"i": i, "a": i.abs()})
        out = frame.select(
            pl.when(pl.col("a") >= 10**17)
            .then(pl.col("i"))
            .when(pl.col("a") >= 10**14)
            .then(pl.col("i") * 1_000)
            .when(pl.col("a") >= 10**11)
            .then(pl.col("i") * 1_000_000)
            .otherwise(pl.col("i") * 1_000_000_000)
        ).to_series()
        return out
    return out.round(0).cast(pl.Int64, strict=False)


class TimeParser:
    """Turns one file's time column, chunk by chunk, into Int64 ns UTC (null where unparseable).

    It remembers the string format that worked last so a file in one format parses once per chunk.
    """

    def __init__(self, tz: str = EXCHANGE_TZ) -> None:
        check_tz(tz)
        self.tz = tz
        self.formats = [*AWARE_FORMATS, *NAIVE_FORMATS]

    def __call__(self, s: pl.Series) -> pl.Series:
        dtype = s.dtype
        if isinstance(dtype, pl.Datetime):
            return (_aware_ns(s) if dtype.time_zone else _as_ns(_naive_to_utc(s, self.tz))).alias("t")
        if dtype == pl.Date:
            return _as_ns(_naive_to_utc(s.cast(pl.Datetime("ns")), self.tz)).alias("t")
        if dtype.is_numeric():
            return _epoch_ns(s).alias("t")
        return self._strings(s.cast(pl.String)).alias("t")

    def _parse(self, s: pl.Series, fmt: str) -> pl.Series:
        d = s.str.to_datetime(fmt, strict=False, time_unit="ns")
        return _aware_ns(d) if "%#z" in fmt else _as_ns(_naive_to_utc(d, self.tz))

    def _strings(self, raw: pl.Series) -> pl.Series:
        s = (
            raw.str.strip_chars()
            .str.replace(r"^(\d{4}-\d{2}-\d{2})[Tt]", "$1 ")
            .str.replace(r"[Zz]$", "+00:00")
        )
        present = s.is_not_null() & (s.str.len_bytes() > 0)
        out = self._parse(s, self.formats[0])
        todo = present & out.is_null()
        if not todo.any():
            return out
        for fmt in list(self.formats[1:]):
            idx = todo.arg_true()
            part = self._parse(s.gather(idx), fmt)
            got = part.is_not_null()
            if got.any():
                out = out.scatter(idx.filter(got), part.filter(got))
                if got.sum() * 2 >= len(s):  # most rows use this format: try it first from now on
                    self.formats.remove(fmt)
                    self.formats.insert(0, fmt)
                todo = present & out.is_null()
                if not todo.any():
                    break
        return out
