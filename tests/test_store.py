"""replay.store: reading real bar files in every format and layout, bad rows, bounded memory."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from replay.store import (
    BadData,
    Reader,
    default_data,
    infer_timeframe,
    parse_time,
    write_parquet,
)
from stream.bars import FINAL, FORMING, Bar, BarBatch

ROOT = Path(__file__).resolve().parent.parent
MINUTE = ROOT / "stream" / "data" / "MSFT_1min_2022-05-18_2022-06-15.csv.gz"
NS = 1_000_000_000


# ---- helpers ---------------------------------------------------------------------------------


def replay_format(df: pl.DataFrame) -> pl.DataFrame:
    """A frame of symbol, t, open..close[, volume, trade_count, vwap, kind] in BarBatch.to_polars form."""
    n = df.height
    cols = {
        "symbol": df["symbol"].cast(pl.String),
        "t": df["t"].cast(pl.Datetime("ns", "UTC")),
        **{c: df[c].cast(pl.Float64) for c in ("open", "high", "low", "close")},
        "volume": df["volume"].cast(pl.Float64) if "volume" in df.columns else pl.Series(np.zeros(n)),
        "trade_count": df["trade_count"].cast(pl.Float64)
        if "trade_count" in df.columns
        else pl.Series(np.full(n, np.nan)),
        "vwap": df["vwap"].cast(pl.Float64) if "vwap" in df.columns else pl.Series(np.full(n, np.nan)),
        "kind": df["kind"].cast(pl.Int8) if "kind" in df.columns else pl.Series(np.zeros(n, np.int8)),
    }
    return pl.DataFrame(cols)


def read_all(reader: Reader) -> pl.DataFrame:
    frames = [b.to_polars() for b in reader]
    return pl.concat(frames) if frames else replay_format(pl.DataFrame(schema={
        "symbol": pl.String, "t": pl.Datetime("ns", "UTC"), "open": pl.Float64, "high": pl.Float64,
        "low": pl.Float64, "close": pl.Float64}))  # fmt: skip


def raw_daily_lines() -> list[str]:
    """The bundled daily CSV's lines, header first (Ticker,Date,Open,High,Low,Close,Volume,Adj Close)."""
    with gzip.open(default_data(), "rt") as f:
        return f.read().splitlines()


def tiled(daily: pl.DataFrame, rows: int) -> pl.DataFrame:
    """Real daily bars tiled into many symbols (AAPL0, AAPL1, ...), each copy's times shifted by k minutes
    and prices scaled a little, so the file is real-shaped but every row differs; grouped by symbol."""
    copies = -(-rows // daily.height)
    base = replay_format(daily)
    parts = []
    for k in range(copies):
        f = 1 + k / 1000
        parts.append(
            base.with_columns(
                pl.col("symbol") + str(k),
                pl.col("t") + pl.duration(minutes=k),
                *(pl.col(c) * f for c in ("open", "high", "low", "close")),
            )
        )
    return pl.concat(parts).head(rows)


@pytest.fixture(scope="module")
def expected_daily(daily: pl.DataFrame) -> pl.DataFrame:
    return replay_format(daily)


# ---- the bundled data and each format ----------------------------------------------------------


def test_bundled_daily_file_reads_in_time_order(expected_daily: pl.DataFrame) -> None:
    r = Reader([default_data()])
    got = read_all(r)
    assert_frame_equal(got, expected_daily)
    assert r.rows == got.height == 12154
    assert r.symbols_seen == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]
    assert r.skipped == 0 and r.describe_skips() == "skipped 0 bad rows"
    # a daily "2000-03-01" is midnight New York = 05:00Z, as Alpaca stamps daily bars
    assert got["t"][0].isoformat() == "2000-03-01T05:00:00+00:00"


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".csv.gz", ".arrow", ".feather", ".ipc"])
@pytest.mark.parametrize("layout", ["time", "symbol"])
def test_format_round_trip(tmp_path: Path, expected_daily: pl.DataFrame, suffix: str, layout: str) -> None:
    df = expected_daily if layout == "time" else expected_daily.sort("symbol", maintain_order=True)
    path = tmp_path / f"bars{suffix}"
    if suffix == ".parquet":
        df.write_parquet(path, row_group_size=1000)
    elif suffix == ".csv":
        df.write_csv(path)
    elif suffix == ".csv.gz":
        path.write_bytes(gzip.compress(df.write_csv().encode()))
    else:
        df.write_ipc(path)
    got = read_all(Reader([path], chunk_rows=997))
    assert_frame_equal(got, expected_daily)


def test_arrow_stream_files_read_and_a_truncated_one_is_one_line(
    tmp_path: Path, expected_daily: pl.DataFrame
) -> None:
    """.arrows: the Arrow IPC stream format (what a recorder appends to while it records)."""
    path = tmp_path / "rec.arrows"
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, expected_daily.to_arrow().schema) as w:
        for part in expected_daily.iter_slices(1000):
            w.write_table(part.to_arrow())
    assert_frame_equal(read_all(Reader([path], chunk_rows=2500)), expected_daily)
    data = path.read_bytes()
    (tmp_path / "cut.arrows").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadData, match=r"cut\.arrows: cannot read as an Arrow IPC stream: .*[^\n]$"):
        list(Reader([tmp_path / "cut.arrows"]))


def test_recorder_format_reads_back_exactly(tmp_path: Path, aapl: pl.DataFrame) -> None:
    """write_parquet output (forming bars, revisions, trade counts, vwap) reads back bar for bar."""
    real = aapl.head(40).rows(named=True)
    bars = []
    for i, row in enumerate(real):
        start = int(row["t"].timestamp()) * NS
        kw = dict(symbol="AAPL", start=start, open=row["open"], high=row["high"], low=row["low"])
        if i % 5 == 0:  # a forming snapshot first, then the final bar at the same start
            bars.append(Bar(**kw, close=row["open"], volume=row["volume"] / 3, forming=True))
        bars.append(
            Bar(**kw, close=row["close"], volume=row["volume"], trade_count=1000 + i, vwap=row["close"])
        )
        if i % 7 == 0:  # an updatedBars-style revision of the final bar
            bars.append(Bar(**kw, close=row["close"] + 0.01, volume=row["volume"] + 1))
    batch = BarBatch.from_bars(bars)
    path = tmp_path / "session.parquet"
    assert write_parquet(path, [batch.__class__.from_bars(bars[:17]), BarBatch.from_bars(bars[17:])]) == len(
        bars
    )
    assert not (tmp_path / "session.parquet.partial").exists()
    out = list(Reader([path], chunk_rows=10))
    assert all(len(b) <= 10 for b in out)
    assert [b for o in out for b in o.bars()] == bars
    assert sum(int((o.kind == FORMING).sum()) for o in out) == 8
    assert FINAL == 0


def test_write_parquet_of_a_replay_reads_back(tmp_path: Path, expected_daily: pl.DataFrame) -> None:
    path = tmp_path / "copy.parquet"
    assert write_parquet(path, Reader([default_data()], chunk_rows=5000)) == expected_daily.height
    assert_frame_equal(pl.read_parquet(path), expected_daily)
    assert_frame_equal(read_all(Reader([path])), expected_daily)


# ---- column names, symbols, time zones --------------------------------------------------------


def test_alpaca_short_names(tmp_path: Path, aapl: pl.DataFrame) -> None:
    df = aapl.head(100)
    alpaca = pl.DataFrame(
        {
            "t": df["t"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "o": df["open"], "h": df["high"], "l": df["low"], "c": df["close"], "v": df["volume"],
            "n": pl.Series(np.arange(100) + 500), "vw": df["close"] * 0.999, "S": df["symbol"],
        }
    )  # fmt: skip
    for path in (tmp_path / "a.parquet", tmp_path / "a.csv"):
        alpaca.write_parquet(path) if path.suffix == ".parquet" else alpaca.write_csv(path)
        got = read_all(Reader([path]))
        want = replay_format(df.with_columns(trade_count=np.arange(100) + 500, vwap=df["close"] * 0.999))
        assert_frame_equal(got, want)


def test_long_names_any_case_extra_columns_ignored(tmp_path: Path, aapl: pl.DataFrame) -> None:
    df = aapl.head(50)
    odd = pl.DataFrame(
        {
            "TimeStamp": df["t"],
            "OPEN": df["open"], "High": df["high"], "low": df["low"], "Close": df["close"],
            "VOLUME": df["volume"], "Adj Close": df["close"] / 30, "Ticker": df["symbol"], "note": "x",
        }
    )  # fmt: skip
    path = tmp_path / "odd.parquet"
    odd.write_parquet(path)
    assert_frame_equal(read_all(Reader([path])), replay_format(df))


def test_symbol_from_file_name_and_from_symbols(tmp_path: Path, daily: pl.DataFrame) -> None:
    exp = replay_format(daily.filter(pl.col("symbol").is_in(["AAPL", "MSFT"])))
    a = daily.filter(pl.col("symbol") == "AAPL").drop("symbol")
    m = daily.filter(pl.col("symbol") == "MSFT").drop("symbol")
    a.write_parquet(tmp_path / "AAPL.parquet")
    m.write_csv(tmp_path / "msft_1day_2000-2013.csv")
    r = Reader([tmp_path / "AAPL.parquet", tmp_path / "msft_1day_2000-2013.csv"])
    assert_frame_equal(read_all(r), exp)
    assert r.symbols_seen == ["AAPL", "MSFT"]
    # one symbol given, one file without a symbol column: the symbol names it
    a.write_parquet(tmp_path / "data.parquet")
    got = read_all(Reader([tmp_path / "data.parquet"], symbols=["aapl"]))
    assert_frame_equal(got, replay_format(daily.filter(pl.col("symbol") == "AAPL")))
    # several symbols given: they filter, file names still name the files
    got = read_all(
        Reader([tmp_path / "AAPL.parquet", tmp_path / "msft_1day_2000-2013.csv"], symbols=["MSFT", "IBM"])
    )
    assert_frame_equal(got, replay_format(daily.filter(pl.col("symbol") == "MSFT")))


def test_symbols_filter_a_many_symbol_file(expected_daily: pl.DataFrame) -> None:
    r = Reader([default_data()], symbols=["goog", "FB"])
    got = read_all(r)
    assert_frame_equal(got, expected_daily.filter(pl.col("symbol").is_in(["GOOG", "FB"])))
    assert r.symbols_seen == ["FB", "GOOG"]


def test_bundled_minute_file_utc_offsets() -> None:
    r = Reader([MINUTE])
    batches = list(r)
    got = pl.concat([b.to_polars() for b in batches])
    assert got.height == 7440 and r.symbols_seen == ["MSFT"]
    assert got["t"][0].isoformat() == "2022-05-18T16:00:00+00:00"
    assert infer_timeframe(batches[0]) == "1Min"
    assert got["t"].is_sorted() and got["t"].n_unique() == 7440


def test_naive_times_are_new_york_and_offsets_are_honoured(tmp_path: Path, aapl: pl.DataFrame) -> None:
    rows = aapl.head(4)
    stamps = ["2012-01-03 09:30", "2012-07-03 09:30:00", "2012-07-03T14:00:00Z", "2012-07-03T10:31:00-04:00"]
    df = rows.drop("t").with_columns(Date=pl.Series(stamps))
    df.write_csv(tmp_path / "x.csv")
    t = [int(x) for x in next(iter(Reader([tmp_path / "x.csv"]))).t]
    assert t == [
        parse_time(s)
        for s in ("2012-01-03T14:30Z", "2012-07-03T13:30Z", "2012-07-03T14:00Z", "2012-07-03T14:31Z")
    ]


def test_separate_date_and_time_columns(tmp_path: Path, aapl: pl.DataFrame) -> None:
    rows = (
        aapl.head(3)
        .drop("t")
        .with_columns(
            Date=pl.Series(["2012-01-03", "2012-01-03", "2012-01-03"]),
            Time=pl.Series(["09:30", "09:31", "09:32"]),
        )
    )
    rows.write_csv(tmp_path / "dt.csv")
    b = next(iter(Reader([tmp_path / "dt.csv"])))
    assert list(b.t - b.t[0]) == [0, 60 * NS, 120 * NS] and int(b.t[0]) == parse_time("2012-01-03T14:30:00Z")


def test_epoch_times(tmp_path: Path, aapl: pl.DataFrame) -> None:
    df = aapl.head(20)
    for unit, div in (("s", NS), ("ms", 1_000_000), ("ns", 1)):
        ep = df.with_columns(pl.col("t").dt.epoch("ns") // div)
        ep.write_parquet(tmp_path / f"{unit}.parquet")
        assert_frame_equal(read_all(Reader([tmp_path / f"{unit}.parquet"])), replay_format(df))


# ---- merging and windows -------------------------------------------------------------------------


def test_many_files_merge_by_time_ties_by_file_then_row(tmp_path: Path, daily: pl.DataFrame) -> None:
    full = replay_format(daily)
    # three files, different formats and layouts; AAPL appears in two of them (distinct days)
    one = full.filter(pl.col("symbol").is_in(["IBM", "FB"])).sort("symbol", maintain_order=True)
    two = full.filter((pl.col("symbol") == "AAPL") & (pl.col("t").dt.year() % 2 == 0))
    three = full.filter(
        pl.col("symbol").is_in(["MSFT", "GOOG"])
        | ((pl.col("symbol") == "AAPL") & (pl.col("t").dt.year() % 2 == 1))
    )
    one.write_csv(tmp_path / "one.csv")
    two.write_parquet(tmp_path / "two.parquet")
    three.write_ipc(tmp_path / "three.arrow")
    files = [tmp_path / "one.csv", tmp_path / "two.parquet", tmp_path / "three.arrow"]
    want = (
        pl.concat(
            [
                f.with_columns(file=pl.lit(i), row=pl.int_range(f.height))
                for i, f in enumerate((one, two, three))
            ]
        )
        .sort(["t", "file", "row"])
        .drop("file", "row")
    )
    got = read_all(Reader(files, chunk_rows=1000))
    assert_frame_equal(got, want)
    assert got.height == full.height
    # on a day all five trade: one.csv's bars (its row order: FB, IBM), then two.parquet's, then three.arrow's
    day = got.filter(pl.col("t").dt.epoch("ns") == parse_time("2012-06-01"))
    assert day["symbol"].to_list() == ["FB", "IBM", "AAPL", "GOOG", "MSFT"]


def test_start_end_window(expected_daily: pl.DataFrame) -> None:
    start, end = parse_time("2012-01-03"), parse_time("2012-02-01")
    got = read_all(Reader([default_data()], start=start, end=end))
    t = expected_daily["t"].dt.epoch("ns")
    assert_frame_equal(got, expected_daily.filter((t >= start) & (t < end)))
    assert got["t"].min().isoformat() == "2012-01-03T05:00:00+00:00"
    # end is exclusive, start inclusive, on exact bar times
    one = read_all(Reader([default_data()], start=start, end=start + 1))
    assert one.height == 4 and one["t"].n_unique() == 1  # AAPL, GOOG, IBM, MSFT (FB listed in May 2012)


def test_chunks_are_bounded_and_name_only_their_symbols(expected_daily: pl.DataFrame) -> None:
    batches = list(Reader([default_data()], chunk_rows=333))
    assert max(len(b) for b in batches) <= 333 and len(batches) >= 12154 // 333
    assert_frame_equal(pl.concat([b.to_polars() for b in batches]), expected_daily)
    first = batches[0]
    assert set(first.symbols) == {"AAPL", "IBM", "MSFT"}  # GOOG and FB start later
    part = first.rows(3, 9)
    assert part.bars() == first.bars()[3:9]


def test_symbols_by_their_views_and_new_names_in_later_row_groups(tmp_path: Path, expected_daily: pl.DataFrame,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Symbol texts are looked up by their views (`replay.symtab`): names first met in later row
    groups (GOOG and FB start later; " IBM " is IBM written with spaces) get their ids there, and
    a group with a name too long for a view goes by the Enum cast. The bars are the same either
    way. (Rows checked as they stream, as a replay reads: a check pass first would meet every
    name before.)"""
    import replay.source as source

    row = pl.int_range(pl.len())
    raw = expected_daily.with_columns(
        pl.when((row % 7 == 0) & (pl.col("symbol") == "IBM") & (row > 6000)).then(pl.lit(" IBM "))
        .when((row % 3 == 0) & (pl.col("symbol") == "MSFT") & (row > 12000)).then(pl.lit("MSFT" + " " * 12))
        .otherwise(pl.col("symbol"))
        .alias("symbol")
    )
    path = tmp_path / "bars.parquet"
    raw.write_parquet(path, row_group_size=500)
    by_views: list[bool] = []
    views = source.Symbols._view_codes

    def spy(self, s: pl.Series) -> np.ndarray | None:
        got = views(self, s)
        by_views.append(got is not None)
        return got

    monkeypatch.setattr(source.Symbols, "_view_codes", spy)
    assert_frame_equal(read_all(Reader([path], chunk_rows=400, check_first=False)), expected_daily)
    assert by_views[0] and not all(by_views), by_views


def test_symbol_ids_by_views_and_by_the_enum_cast_alike() -> None:
    """Symbols.codes: the same name gets one id whether a chunk goes by views or (a name over 12
    bytes in it) by the Enum cast; spaces around a name do not count; a missing or empty symbol is
    -1; a sliced column (an offset into its views) and a Categorical column read the same."""
    from replay.source import Symbols

    names = Symbols()
    assert names.codes(pl.Series(["A", "B", None, "A"])).tolist() == [0, 1, -1, 0]
    long = "L" * 13
    assert names.codes(pl.Series(["B", " A ", "", "C", long])).tolist() == [1, 0, -1, 2, 3]
    assert names.codes(pl.Series([long, "C", None, " A"])).tolist() == [3, 2, -1, 0]
    assert names.codes(pl.Series(["X", "D", "C", "D"]).slice(1)).tolist() == [4, 2, 4]
    assert names.codes(pl.Series(["E", "A", "E"]).cast(pl.Categorical)).tolist() == [5, 0, 5]
    assert names.names == ["A", "B", "C", long, "D", "E"]


def test_first_rows_of_distinct_views_in_order_of_first_sight() -> None:
    """symtab.first_rows: of the given rows, where each distinct 16-byte view is first seen, in
    order, against a plain Python pass; views that differ in either word are distinct; many rows
    (a first chunk of new names) and none."""
    from replay.symtab import first_rows

    rng = np.random.default_rng(7)
    views = rng.integers(0, 40, size=(100_000, 2)).astype(np.uint64)
    views[::5, 1] += np.uint64(1 << 40)  # high bits of one word only
    rows = np.flatnonzero(rng.random(len(views)) < 0.6)
    seen: set[tuple[int, int]] = set()
    want = []
    for i in rows.tolist():
        key = (int(views[i, 0]), int(views[i, 1]))
        if key not in seen:
            seen.add(key)
            want.append(i)
    assert first_rows(views, rows).tolist() == want
    assert first_rows(views, rows[:0]).tolist() == []


def test_spill_folder_is_removed_when_done_or_abandoned(tmp_path: Path, expected_daily: pl.DataFrame,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import tempfile

    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))
    expected_daily.sort("symbol", maintain_order=True).write_parquet(tmp_path / "g.parquet")
    r = Reader([tmp_path / "g.parquet"], chunk_rows=1000)
    it = iter(r)
    first = next(it)
    assert r.spilled and len(list(spill.iterdir())) == 1  # one folder of time buckets
    rest = list(it)
    assert_frame_equal(pl.concat([b.to_polars() for b in [first, *rest]]), expected_daily)
    assert list(spill.iterdir()) == []
    it = iter(r)
    next(it)
    it.close()  # the replay stopped early (Ctrl-C, a closed pipe)
    assert list(spill.iterdir()) == []


@pytest.mark.parametrize("check_first", [True, False])
def test_check_first_or_as_it_goes_give_the_same_bars(tmp_path: Path, expected_daily: pl.DataFrame,
                                                      check_first: bool) -> None:  # fmt: skip
    expected_daily.write_parquet(tmp_path / "t.parquet", row_group_size=500)
    expected_daily.sort("symbol", maintain_order=True).write_parquet(
        tmp_path / "s.parquet", row_group_size=500
    )
    for name in ("t.parquet", "s.parquet"):
        got = read_all(Reader([tmp_path / name], chunk_rows=700, check_first=check_first))
        assert_frame_equal(got, expected_daily)


# ---- bad rows ----------------------------------------------------------------------------------

HEADER = "Ticker,Date,Open,High,Low,Close,Volume,Adj Close"


def aapl_lines(n: int = 40) -> list[list[str]]:
    lines = raw_daily_lines()
    assert lines[0] == HEADER
    return [line.split(",") for line in lines[1 : n + 1]]


def write_lines(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    return path


def _set(col: int, value: str):
    def f(rows: list[list[str]], j: int) -> None:
        rows[j][col] = value

    return f


def _swap_high_low(rows: list[list[str]], j: int) -> None:
    rows[j][3], rows[j][4] = rows[j][4], rows[j][3]


def _dup(rows: list[list[str]], j: int) -> None:
    rows[j][1] = rows[j - 1][1]


def _earlier(rows: list[list[str]], j: int) -> None:
    rows[j][1] = rows[j - 5][1]


BAD = [
    ("unparseable time", _set(1, "2000-13-45"), "unparseable time '2000-13-45'"),
    ("unparseable time", _set(1, ""), "unparseable time empty"),
    ("missing symbol", _set(0, ""), "missing symbol"),
    ("nan price", _set(5, "NaN"), "nan price: close is 'NaN'"),
    ("nan price", _set(2, ""), "nan price: open is empty"),
    ("nan price", _set(3, "abc"), "nan price: high is 'abc'"),
    ("non-positive price", _set(4, "0"), "non-positive price: low is '0'"),
    ("non-positive price", _set(5, "-1.5"), "non-positive price: close is '-1.5'"),
    ("high < low", _swap_high_low, "high < low: high 122.06, low 128.75"),
    ("duplicate time", _dup, "duplicate time 2000-04-24T04:00:00Z for AAPL"),
    ("unsorted time", _earlier, "unsorted time 2000-04-17T04:00:00Z for AAPL, after 2000-04-24T04:00:00Z"),
]


@pytest.mark.parametrize(("fault", "spoil", "detail"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_each_bad_row_kind_raises_then_is_skipped(tmp_path: Path, fault: str, spoil, detail: str) -> None:
    rows = aapl_lines()
    j = 38  # the 39th data row: line 40 of the file
    if fault == "high < low":
        assert float(rows[j][3]) > float(rows[j][4])
    spoil(rows, j)
    path = write_lines(tmp_path / "bad.csv", rows)
    with pytest.raises(BadData) as e:
        list(Reader([path]))
    msg = str(e.value)
    assert msg == f"{path}: line 40: {detail}", msg
    assert "\n" not in msg and e.value.fault == fault
    for check_first in (True, False):
        r = Reader([path], skip_bad=True, check_first=check_first)
        got = read_all(r)
        assert got.height == 39 and r.rows == 39
        assert r.skipped == 1 and r.skipped_by_fault == {fault: 1}
        assert r.describe_skips() == f"skipped 1 bad row: 1 {fault}"
        assert got["t"].is_sorted() and got["t"].n_unique() == 39


def test_bad_rows_counted_by_fault_and_first_one_reported(tmp_path: Path) -> None:
    rows = aapl_lines()
    _set(5, "nan")(rows, 10)
    _swap_high_low(rows, 20)
    _set(2, "")(rows, 30)
    _dup(rows, 31)  # row 31 repeats row 30's time, but row 30 is bad: no duplicate then
    path = write_lines(tmp_path / "bad.csv", rows)
    with pytest.raises(BadData, match=r"bad\.csv: line 12: nan price: close is 'nan'$"):
        list(Reader([path]))
    r = Reader([path], skip_bad=True)
    got = read_all(r)
    assert r.describe_skips() == "skipped 3 bad rows: 2 nan price, 1 high < low"
    assert got.height == 37


def test_parquet_bad_row_numbers_are_data_rows(tmp_path: Path, expected_daily: pl.DataFrame) -> None:
    df = expected_daily.head(100).with_columns(
        high=pl.when(pl.int_range(100) == 41).then(pl.col("low") - 1).otherwise(pl.col("high"))
    )
    df.write_parquet(tmp_path / "x.parquet", row_group_size=16)
    with pytest.raises(BadData) as e:
        list(Reader([tmp_path / "x.parquet"], chunk_rows=20))
    assert str(e.value).startswith(f"{tmp_path / 'x.parquet'}: row 42: high < low: high ")


def test_grouped_file_unsorted_within_one_symbol(tmp_path: Path, expected_daily: pl.DataFrame) -> None:
    """Many-symbol files are checked per symbol: any interleaving is fine, a step back in time is not."""
    df = expected_daily.sort("symbol", maintain_order=True)  # grouped: times go back at each new symbol
    ibm = df.with_row_index().filter(pl.col("symbol") == "IBM")["index"]
    i, k = int(ibm[100]), int(ibm[101])
    swapped = df.with_columns(pl.col("t").gather(pl.int_range(df.height).replace({i: k, k: i})))
    swapped.write_parquet(tmp_path / "g.parquet")
    with pytest.raises(BadData, match=rf"g\.parquet: row {k + 1}: unsorted time .* for IBM"):
        list(Reader([tmp_path / "g.parquet"]))
    r = Reader([tmp_path / "g.parquet"], skip_bad=True)
    assert read_all(r).height == df.height - 1 and r.skipped_by_fault == {"unsorted time": 1}


def test_recorder_files_allow_repeated_times_but_check_kind(
    tmp_path: Path, expected_daily: pl.DataFrame
) -> None:
    df = expected_daily.filter(pl.col("symbol") == "AAPL").head(10)
    rec = pl.concat([df.with_columns(kind=pl.lit(FORMING, pl.Int8)), df]).sort("t", maintain_order=True)
    rec.write_parquet(tmp_path / "rec.parquet")
    got = read_all(Reader([tmp_path / "rec.parquet"]))
    assert_frame_equal(got, rec)
    rec.with_columns(
        kind=pl.when(pl.int_range(20) == 7).then(9).otherwise(pl.col("kind")).cast(pl.Int8)
    ).write_parquet(tmp_path / "rec2.parquet")
    with pytest.raises(BadData, match=r"row 8: bad kind 9 \(0 final or 1 forming, plus 2 warm, 4 late\)"):
        list(Reader([tmp_path / "rec2.parquet"]))


def test_bad_rows_outside_the_window_do_not_count(tmp_path: Path) -> None:
    rows = aapl_lines()
    _set(5, "NaN")(rows, 2)  # 2000-03-03
    path = write_lines(tmp_path / "w.csv", rows)
    r = Reader([path], start=parse_time("2000-03-10"))
    assert read_all(r).height == 33 and r.skipped == 0  # 7 rows before 2000-03-10, the bad one among them


def test_check_as_it_goes_raises_when_the_replay_reaches_the_row(tmp_path: Path) -> None:
    rows = aapl_lines()
    _swap_high_low(rows, 35)
    path = write_lines(tmp_path / "late.csv", rows)
    it = iter(Reader([path], chunk_rows=10, check_first=False))
    assert len(next(it)) == 10  # the first chunks replay before the bad row is reached
    with pytest.raises(BadData, match=r"line 37: high < low"):
        list(it)


# ---- bad files -------------------------------------------------------------------------------


def test_missing_column_names_the_file_and_lists_columns(tmp_path: Path, aapl: pl.DataFrame) -> None:
    aapl.head(5).drop("low").write_csv(tmp_path / "nolow.csv")
    with pytest.raises(BadData) as e:
        Reader([tmp_path / "nolow.csv"]).prepare()
    assert str(e.value) == (
        f"{tmp_path / 'nolow.csv'}: no low column (looked for low or l, any case); "
        "columns found: symbol, t, open, high, close, volume"
    )
    aapl.head(5).drop("t").write_parquet(tmp_path / "not.parquet")
    with pytest.raises(BadData, match=r"no time column \(looked for t, timestamp, datetime, date or time"):
        Reader([tmp_path / "not.parquet"]).prepare()


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    cases = {
        tmp_path / "none.parquet": "no such file",
        tmp_path: "is a directory",
    }
    (tmp_path / "junk.parquet").write_bytes(os.urandom(3000))
    cases[tmp_path / "junk.parquet"] = "cannot read as Parquet"
    (tmp_path / "junk.arrow").write_bytes(b"not arrow at all" * 10)
    cases[tmp_path / "junk.arrow"] = "cannot read as Arrow IPC"
    (tmp_path / "empty.csv").write_bytes(b"")
    cases[tmp_path / "empty.csv"] = "no time column"
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    cases[tmp_path / "blob.bin"] = "unknown file type"
    whole = gzip.compress("\n".join(raw_daily_lines()[:2000]).encode())
    (tmp_path / "trunc.csv.gz").write_bytes(whole[: len(whole) // 2])
    cases[tmp_path / "trunc.csv.gz"] = "cannot read as CSV"
    for path, text in cases.items():
        with pytest.raises(BadData) as e:
            list(Reader([path]))
        msg = str(e.value)
        assert msg.startswith(f"{path}: ") and text in msg and "\n" not in msg, msg


def test_unusable_column_types_are_one_line(tmp_path: Path, aapl: pl.DataFrame) -> None:
    aapl.head(5).with_columns(pl.concat_list("symbol", "symbol").alias("symbol")).write_parquet(
        tmp_path / "l.parquet"
    )
    with pytest.raises(BadData, match=r"l\.parquet: unusable column types \(.*symbol: List\(String\)") as e:
        list(Reader([tmp_path / "l.parquet"]))
    assert "\n" not in str(e.value)


# ---- small functions -----------------------------------------------------------------------------


def test_parse_time() -> None:
    assert parse_time("2012-01-03") == parse_time("2012-01-03T05:00:00Z") == 1325566800 * NS
    assert parse_time("2012-01-03 09:30") == parse_time("2012-01-03T14:30:00+00:00")
    assert parse_time("2012-07-03T09:30:00") == parse_time("2012-07-03T13:30Z")  # EDT
    assert parse_time("2012-01-03T09:30:00.5-05:00") == parse_time("2012-01-03T14:30:00Z") + NS // 2
    assert parse_time("2012-01-03", tz="UTC") == 1325548800 * NS
    assert parse_time("2012-01-03T14:30:00.123456789Z") == parse_time("2012-01-03T14:30Z") + 123456789
    for bad in ("yesterday", "2012-13-01", "", "03/01/2012", "2012-01-03 25:00"):
        with pytest.raises(ValueError, match="bad time") as e:
            parse_time(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_time("2012-01-03", tz="Mars/Olympus")


def test_infer_timeframe(expected_daily: pl.DataFrame) -> None:
    day = BarBatch.from_polars(expected_daily)
    assert infer_timeframe(day) == "1Day"
    t0 = parse_time("2022-05-18T13:30Z")
    for step, name in ((60, "1Min"), (300, "5Min"), (900, "15Min"), (3600, "1Hour")):
        assert infer_timeframe(t0 + np.arange(50) * step * NS) == name
    assert infer_timeframe([t0, t0 + 7 * 86400 * NS, t0 + 14 * 86400 * NS]) is None  # weekly: not ours
    assert infer_timeframe([t0]) is None


def test_reader_arguments() -> None:
    with pytest.raises(ValueError, match="no input files"):
        Reader([])
    with pytest.raises(ValueError, match="must be before"):
        Reader([default_data()], start=parse_time("2012-02-01"), end=parse_time("2012-01-01"))


# ---- bounded memory ------------------------------------------------------------------------------

MEASURE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    from replay.store import Reader, default_data

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    for _ in Reader([default_data()]):  # warm up: imports, compiled kernels
        pass
    base = status("VmRSS:")
    tracemalloc.start()
    out = []
    for path in sys.argv[1:]:  # the smaller file first: peak memory must not grow with the bigger one
        r = Reader([path], chunk_rows=50_000)
        n = biggest = 0
        for b in r:
            n += len(b)
            biggest = max(biggest, len(b))
        out.append({"rows": n, "biggest": biggest, "py_peak": tracemalloc.get_traced_memory()[1],
                    "rss_growth": status("VmHWM:") - base, "spilled": r.spilled})
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("layout, fmt", [("time", "parquet"), ("symbol", "parquet"), ("time", "csv")])
def test_big_file_reads_in_bounded_memory(tmp_path: Path, daily: pl.DataFrame, layout: str, fmt: str) -> None:
    """1 and 3 million real-shaped rows: peak memory does not grow with the file, and stays far below
    the file's size in memory (grouped by symbol, the file goes through the spilling sort)."""
    paths, sizes = [], []
    for rows in (1_000_000, 3_000_000):
        df = tiled(daily, rows)
        if layout == "time":
            df = df.sort("t", maintain_order=True)
        sizes.append(df.estimated_size())
        paths.append(tmp_path / f"big{rows}.{fmt}")
        if fmt == "csv":
            df.write_csv(paths[-1])
        else:
            df.write_parquet(paths[-1])
        del df
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    small, big = json.loads(out.stdout)
    assert small["rows"] == 1_000_000 and big["rows"] == 3_000_000 and big["biggest"] == 50_000
    assert small["spilled"] == big["spilled"] == (layout == "symbol")
    assert big["py_peak"] < sizes[1] / 20, (big, sizes)  # numpy buffers of a few chunks, not the file
    # everything, polars and Arrow included (a row group bigger than a chunk is read whole)
    assert big["rss_growth"] < sizes[1] * 0.6, (big, sizes)
    # two million more rows (about 140 MB in memory) add little: memory follows chunk_rows, not the
    # file (10-20 MB more in most runs, up to 32 MB seen: the allocators keep some pages a while; a
    # reader holding the file would add all 140)
    assert big["rss_growth"] - small["rss_growth"] < (sizes[1] - sizes[0]) / 3, (small, big, sizes)


# ---- CSV read a block at a time ----------------------------------------------------------------


def test_record_end_is_the_last_newline_outside_quotes() -> None:
    from replay.source import record_end

    assert record_end(b"a,b\n1,2") == 4
    assert record_end(b"no newline") == 0
    assert record_end(b'x,"a\nb"\ny,"c\n') == 8  # the newline in "c... is inside quotes
    assert record_end(b'x,"say ""hi""\n"\n') == len(b'x,"say ""hi""\n"\n')  # doubled quotes


@pytest.mark.parametrize("gz, eol, last", [(False, "\n", "\n"), (True, "\n", "\n"), (False, "\r\n", "")])
def test_csv_cut_into_tiny_blocks_reads_as_the_whole_file(tmp_path: Path, monkeypatch, gz: bool, eol: str,
                                                          last: str) -> None:
    """Blocks of 64 bytes cut through quoted names holding commas, quotes and newlines (CRLF lines,
    no newline at the end too): the bars are the ones read from the file in one block."""
    import replay.source

    lines = ["symbol,t,open,high,low,close,volume"]
    for i in range(60):
        name = ['"BRK,B"', '"Q""X"', "IBM", '"NEW\nLINE"'][i % 4]
        lines.append(f"{name},2024-01-{1 + i // 4:02d}T14:30:00Z,{10 + i},{11 + i},{9 + i},{10.5 + i},{100 * i}")
    text = eol.join(lines) + last
    path = tmp_path / ("q.csv.gz" if gz else "q.csv")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    whole = read_all(Reader([path]))
    monkeypatch.setattr(replay.source, "CSV_BLOCK", 64)
    assert_frame_equal(read_all(Reader([path], chunk_rows=7)), whole)
    assert whole.height == 60 and sorted(set(whole["symbol"])) == ["BRK,B", "IBM", "NEW\nLINE", 'Q"X']


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
@pytest.mark.parametrize("block", [None, 16])
def test_csv_blank_lines_are_not_rows_and_a_fault_names_the_files_own_line(tmp_path: Path, monkeypatch,
                                                                          eol: str, block: int | None) -> None:
    """Blank lines (between rows, and at the end as editors leave them) are not rows; a bad row's
    line number is the file's, counting blank lines and a quoted name over two lines (in one block,
    and in blocks cut anywhere)."""
    import replay.source

    if block:
        monkeypatch.setattr(replay.source, "CSV_BLOCK", block)
    lines = ["symbol,t,open,high,low,close", "IBM,2024-01-02,1,2,0.5,1.5", "", "IBM,2024-01-03,1,2,0.5,1.5",
             '"NEW', 'LINE",2024-01-03,1,2,0.5,1.5', "", "", "IBM,2024-01-04,1,2,0.5,1.5", "", ""]
    good = tmp_path / "good.csv"
    good.write_bytes(eol.join(lines).encode())
    df = read_all(Reader([good]))
    assert df["symbol"].to_list() == ["IBM", "IBM", f"NEW{eol}LINE", "IBM"]
    lines[8] = "IBM,2024-01-04,1,0.2,0.5,1.5"  # line 9 of the file
    bad = tmp_path / "bad.csv"
    bad.write_bytes(eol.join(lines).encode())
    with pytest.raises(BadData, match="line 9: high < low"):
        read_all(Reader([bad]))
    with pytest.raises(BadData, match="line 9: high < low"):
        read_all(Reader([bad], check_first=False))


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_aware_time_columns_of_any_unit_and_zone_are_their_instants(unit: str, tz: str) -> None:
    """An aware column's times are the instants they name (its zone and unit do not matter), nulls unparseable."""
    from datetime import UTC, datetime

    from replay.columns import TimeParser

    instants = [datetime(2020, 3, 8, 6, 30, tzinfo=UTC), datetime(1960, 1, 1, tzinfo=UTC),
                None, datetime(2100, 11, 7, 5, 59, 59, 123000, tzinfo=UTC)]
    s = pl.Series(instants).dt.cast_time_unit(unit).dt.convert_time_zone(tz)
    got = TimeParser()(s).to_list()
    want = [None if d is None else int(round(d.timestamp() * 1000)) * 1_000_000 for d in instants]
    assert got == want


@pytest.mark.parametrize("unit", ["ns", "ms"])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", None])
@pytest.mark.parametrize("nulls", [False, True])
def test_a_chunks_times_are_the_parsers(tmp_path: Path, unit: str, tz: str | None, nulls: bool) -> None:
    """A chunk's times as the reader takes them (aware nanoseconds without nulls: polars' memory
    as it is) equal the time parser's (naive: New York's), nulls NO_TIME."""
    from datetime import UTC, datetime

    from replay.columns import TimeParser
    from replay.source import Source
    from replay.validate import NO_TIME

    instants = [datetime(2020, 3, 8, 6, 30, tzinfo=UTC), datetime(1960, 1, 1, tzinfo=UTC),
                datetime(2100, 11, 7, 5, 59, 59, 123000, tzinfo=UTC)] + ([None] if nulls else [])
    s = pl.Series("t", instants).dt.cast_time_unit(unit)
    s = s.dt.convert_time_zone(tz) if tz else s.dt.replace_time_zone(None)
    path = tmp_path / "AAPL.parquet"
    pl.DataFrame({"t": s, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}).write_parquet(path)
    src = Source(path, "America/New_York", None)
    got = src.times(pl.DataFrame({"t": s}))
    want = TimeParser("America/New_York")(s).fill_null(NO_TIME).to_numpy()
    assert (tz is None) == (want[0] != 1583649000 * 10**9)  # naive: read as New York's
    assert got.dtype == np.int64 and got.tolist() == want.tolist()


def test_the_reading_kernels_are_warmed_as_a_replay_calls_them(tmp_path: Path) -> None:
    """`warm_kernels` loads the symbol table's and the row checks' kernels with the argument
    types a replay's reading passes (a fresh process: no other test's calls count), so reading
    the bundled CSV, and the same bars as Parquet, loads no other copy of them."""
    script = textwrap.dedent("""
        import sys
        from replay import symtab, validate
        from replay.store import Reader, default_data, warm_kernels, write_parquet
        kernels = (symtab.lookup, symtab.firsts, symtab.insert, validate.check_rows)
        warm_kernels()
        warmed = [len(k.overloads) for k in kernels]
        write_parquet(sys.argv[1], Reader([default_data()], check_first=False))
        for batch in Reader([sys.argv[1]], check_first=False):
            pass
        print(warmed, [len(k.overloads) for k in kernels])
    """)
    path = tmp_path / "daily.parquet"
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["[1,", "1,", "1,", "1]", "[1,", "1,", "1,", "1]"]
    assert pl.read_parquet(path).height > 10_000
