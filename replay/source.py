"""One input file: its format, which columns are which, and its rows as numpy chunks in file order.

Parquet and Arrow IPC files are read through polars lazy scans one row range at a time
(slices are pushed down to the reader; Parquet ranges are whole row groups); CSV files (also
.gz), which have no random access, a block of bytes at a time cut at record ends, each parsed
by polars; the recorder's Arrow IPC stream a record batch at a time. Memory follows the chunk
(or a row group), never the file.
"""

from __future__ import annotations

import bisect
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from stream.bars import read_only

from . import symtab
from .columns import PRICES, ColumnError, Columns, TimeParser, resolve, symbol_from_name
from .validate import NO_TIME


class BadData(Exception):
    """Bad input data; str() is one line: "<file>: row <n>: <fault>" (or "line <n>" for CSV)."""

    def __init__(
        self, file: str, message: str, row: int | None = None, unit: str = "row", fault: str = ""
    ) -> None:
        self.file = file
        self.row = row
        self.unit = unit
        self.fault = fault or message
        self.keep = np.zeros(0, bool)  # found as rows stream: which rows of its chunk before it are good
        where = f"{file}: {unit} {row}: " if row is not None else f"{file}: "
        super().__init__(where + " ".join(str(message).split()))


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (polars' messages run to several)."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def is_reader_error(e: BaseException) -> bool:
    """Errors polars, pyarrow or gzip raise on a bad file (a Rust panic is a BaseException)."""
    if isinstance(e, GeneratorExit | KeyboardInterrupt | SystemExit):  # first: at exit, modules are gone
        return False
    errors = (pl.exceptions.PolarsError, pa.ArrowException, OSError, ValueError, EOFError, zlib.error)
    return isinstance(e, errors) or type(e).__name__ == "PanicException"


def detect(path: Path) -> str:
    """The file's format ("parquet", "ipc", "csv") from its name, else from its first bytes."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if name.endswith((".arrow", ".feather", ".ipc")):
        return "ipc"
    if name.endswith(".arrows"):
        return "stream"
    if name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
        return "csv"
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1"):
        return "ipc"
    if head.startswith(b"\xff\xff\xff\xff"):
        return "stream"
    if head.startswith(b"\x1f\x8b") or (head and all(32 <= b < 127 or b in b"\t\r\n" for b in head)):
        return "csv"
    raise BadData(
        str(path), "unknown file type (expected .parquet, .csv, .csv.gz, .arrow, .feather, .ipc or .arrows)"
    )


CSV_BLOCK = 1 << 20  # bytes of CSV parsed at a time


def record_end(data: bytes) -> int:
    """The end of the last complete record in data (after its newline; 0 if none): a newline
    outside quotes, where an even number of '"' come before it (RFC 4180 doubles a quote
    inside a quoted field, so the parity holds)."""
    b = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(b == 10)
    if not len(nl):
        return 0
    if data.find(b'"') < 0:
        return int(nl[-1]) + 1
    even = (np.cumsum(b == 34, dtype=np.uint8)[nl] & 1) == 0  # parity survives the wrap at 256
    ok = nl[even]
    return int(ok[-1]) + 1 if len(ok) else 0


def records(data: bytes) -> tuple[bytes, np.ndarray | None]:
    """Whole CSV records (the last may lack its newline) without their blank lines, and each kept
    record's line (0-based, from the start of data); None when every line is one kept record."""
    b = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(b == 10)
    ends = nl if data.find(b'"') < 0 else nl[(np.cumsum(b == 34, dtype=np.uint8)[nl] & 1) == 0]
    if len(data) and data[-1] != 10:
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1))
    size = ends - starts
    blank = (size == 0) | ((size == 1) & (b[np.minimum(starts, len(b) - 1)] == 13))
    if len(ends) == len(nl) + (len(data) and data[-1] != 10) and not blank.any():
        return data, None
    keep = np.ones(len(b), bool)
    for lo, hi in zip(starts[blank].tolist(), np.minimum(ends[blank] + 1, len(b)).tolist(), strict=True):
        keep[lo:hi] = False
    return b[keep].tobytes(), np.searchsorted(nl, starts[~blank])


def _floats(s: pl.Series) -> np.ndarray:
    """A column as float64 (NaN where missing or not a number)."""
    if s.dtype == pl.Float64 and not s.null_count():
        return s.to_numpy()
    if s.null_count() == len(s):
        return np.full(len(s), np.nan)
    if s.dtype == pl.String:
        s = s.str.strip_chars()
    return s.cast(pl.Float64, strict=False).fill_null(float("nan")).to_numpy()


class Symbols:
    """Symbol names -> small ids shared by all files of a replay (-1: missing or empty)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ids: dict[str, int] = {}
        # names as found in files (before trimming), matched with a polars Enum cast
        self._raw: dict[str, int] = {}
        self._raw_codes: list[int] = []
        self._enum = pl.Enum([])
        self._lut = np.array([-1], np.int64)
        self._views = symtab.ViewTable()  # texts of up to 12 bytes, by their views

    def id(self, name: str) -> int:
        got = self.ids.get(name)
        if got is None:
            got = self.ids[name] = len(self.names)
            self.names.append(name)
        return got

    def codes(self, s: pl.Series) -> np.ndarray:
        """Ids of a chunk's symbol column: its texts looked up by their views (`symtab`), those
        over 12 bytes by an Enum cast (which fails only when new names appear)."""
        if s.dtype != pl.String:
            s = s.cast(pl.String)
        got = self._view_codes(s)
        if got is not None:
            return got
        try:
            raw = s.cast(self._enum)
        except pl.exceptions.InvalidOperationError:
            for name in s.drop_nulls().unique(maintain_order=True).to_list():
                if name not in self._raw:
                    self._raw[name] = len(self._raw)
                    self._raw_codes.append(self._code(name))
            self._enum = pl.Enum(list(self._raw))
            self._lut = np.array([*self._raw_codes, -1], np.int64)  # the last entry is for nulls
            raw = s.cast(self._enum)
        return self._lut[self._physical(raw)]

    def _code(self, raw: str) -> int:
        norm = raw.strip()
        return self.id(norm) if norm else -1

    def _view_codes(self, s: pl.Series) -> np.ndarray | None:
        """Ids by the texts' views; None if a text is too long for its view (or polars gave no views)."""
        arr = s.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.type != pa.string_view():
            return None
        n = len(arr)
        views = np.frombuffer(arr.buffers()[1], np.uint64).reshape(-1, 2)[arr.offset : arr.offset + n]
        if arr.null_count:  # a null reads as "" (no symbol: -1); its view holds anything
            views = read_only(np.where(s.is_null().to_numpy()[:, None], np.uint64(0), views))  # one signature
        out = np.empty(n, np.int64)
        if self._views.lookup(views, out):
            if (out == symtab.LONG).any():
                return None
            rows = symtab.first_rows(views, np.flatnonzero(out == symtab.UNKNOWN))  # ids by first sight
            names = s.gather(rows).fill_null("").to_list()
            self._views.add(views[rows], np.array([self._code(x) for x in names], np.int64))
            self._views.lookup(views, out)
        return out

    def _physical(self, s: pl.Series) -> np.ndarray:
        """An Enum column's codes, nulls as the lookup's last entry (filled only when there are
        any: a fill costs more than the rest of a chunk's lookup)."""
        codes = s.to_physical()
        return (codes.fill_null(len(self._raw_codes)) if codes.null_count() else codes).to_numpy()


WHOLE_GROUP = 1 << 20  # rows of a Parquet row group read whole (pyarrow's default largest group)


class Source:
    """One input file and chunked lazy scans of it."""

    def __init__(self, path: str | Path, tz: str, wanted: set[str] | None) -> None:
        self.path = Path(path)
        self.name = str(path)
        p = self.path
        if not p.exists():
            raise BadData(self.name, "no such file")
        if p.is_dir():
            raise BadData(self.name, "is a directory, not a bar file")
        try:
            self.kind = detect(p)
            with open(p, "rb") as f:
                f.read(1)
        except OSError as e:
            raise BadData(self.name, f"cannot read: {e.strerror or first_line(e)}") from None
        self.unit = "line" if self.kind == "csv" else "row"
        self._shift_rows: list[int] = []  # CSV: from record _shift_rows[k] on, a record's line is
        self._shifts: list[int] = []  # its number + 2 + _shifts[k] (blank lines, records over lines)
        try:
            if self.kind == "parquet":
                self.lf = pl.scan_parquet(p, row_index_name="__row")
            elif self.kind == "ipc":
                self.lf = pl.scan_ipc(p, row_index_name="__row")
            elif self.kind == "csv":
                self.lf = pl.scan_csv(p, row_index_name="__row", infer_schema=False, raise_if_empty=False)
            else:  # an Arrow IPC stream (.arrows, the recorder's file while it records): no lazy scan
                with pa.OSFile(str(p), "rb") as f:
                    schema = pa.ipc.open_stream(f).schema
                self.lf = pl.LazyFrame(
                    schema={"__row": pl.UInt32, **pl.from_arrow(schema.empty_table()).schema}
                )
            names = self.lf.collect_schema().names()[1:]
            self._names = names
        except BaseException as e:
            if not is_reader_error(e):
                raise
            raise self.unreadable(e) from None
        try:
            self.cols: Columns = resolve(names)
        except ColumnError as e:
            raise BadData(self.name, str(e)) from None
        self.recorder = "kind" in self.cols.names  # repeated times are revisions there, not duplicates
        self.fixed: str | None = None if "symbol" in self.cols.names else symbol_from_name(p)
        self.wanted = wanted
        self.parser = TimeParser(tz)

    def unreadable(self, e: BaseException) -> BadData:
        what = {"parquet": "Parquet", "ipc": "Arrow IPC", "csv": "CSV", "stream": "an Arrow IPC stream"}[
            self.kind
        ]
        return BadData(self.name, f"cannot read as {what}: {first_line(e)}")

    def where(self, row: int) -> int:
        """The row number shown to people: data row (1-based), or CSV line (header = line 1; blank
        lines and records spanning lines counted as the file has them)."""
        if self.kind != "csv":
            return row + 1
        k = bisect.bisect_right(self._shift_rows, row) - 1
        return row + 2 + (self._shifts[k] if k >= 0 else 0)

    @property
    def excluded(self) -> bool:
        """The file's one symbol (from its name) is not among the wanted ones."""
        return self.fixed is not None and self.wanted is not None and self.fixed.upper() not in self.wanted

    def frames(self, roles: tuple[str, ...], chunk_rows: int, upto: int | None = None
               ) -> Iterator[pl.DataFrame]:
        """Raw chunks in file order: __row plus the file's columns for `roles`, renamed to them."""
        if self.excluded:
            return
        names = self.cols.names
        filtering = self.fixed is None and self.wanted is not None
        need = [r for r in roles if r in names or (r == "symbol" and filtering)]
        if filtering and "symbol" not in need:
            need.append("symbol")
        cols = [pl.col("__row")] + [pl.col(names[r]).alias(r) for r in need if r in names]  # UInt32: not cast
        if self.cols.date_time is not None and "t" in need:
            cols.append(pl.col(self.cols.date_time[1]).alias("__time"))
        lf = self.lf.select(cols)

        def narrow(q: pl.LazyFrame) -> pl.LazyFrame:
            if upto is not None:
                q = q.filter(pl.col("__row") <= upto)
            if filtering:
                sym = pl.col("symbol").cast(pl.String).str.strip_chars().str.to_uppercase()
                q = q.filter(sym.is_in(sorted(self.wanted or ())))
            return q

        try:
            if self.kind in ("csv", "stream"):  # read front to back, a block at a time
                used = [names[r] for r in need if r in names]
                if self.cols.date_time is not None and "t" in need:
                    used.append(self.cols.date_time[1])
                batches = self._csv_batches(used) if self.kind == "csv" else self._stream_batches()
                for part in self._parts(batches, chunk_rows, upto):
                    df = narrow(part.lazy().select(cols)).collect()
                    if df.height:
                        yield df
                return
            for off, n in self._ranges(chunk_rows, upto):
                df = narrow(lf.slice(off, n)).collect()
                for k in range(0, df.height, chunk_rows):  # a whole row group: in chunks
                    yield df.slice(k, chunk_rows)
        except BaseException as e:
            if not is_reader_error(e):
                raise
            raise self.unreadable(e) from None

    def _stream_batches(self) -> Iterator[pa.RecordBatch]:
        """An Arrow IPC stream's record batches (the recorder's file, perhaps still growing)."""
        with pa.OSFile(str(self.path), "rb") as f:
            yield from pa.ipc.open_stream(f)

    def _csv_batches(self, columns: list[str]) -> Iterator[pl.DataFrame]:
        """A CSV file's rows in blocks of about CSV_BLOCK bytes cut at record ends, `columns` only,
        each block parsed by polars as the whole file would be (strings, empty as null). Read
        here a block at a time because polars' streaming engine and pyarrow's streaming CSV
        reader both read ahead to the end of the file, holding it in memory."""
        with open(self.path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        idx = sorted({self._names.index(c) for c in columns})
        names = [self._names[i] for i in idx]
        self._shift_rows, self._shifts = [], []
        row = line = shift = 0  # records and lines read (after the header), and the current shift
        with gzip.open(self.path, "rb") if gz else open(self.path, "rb") as f:
            f.readline()  # the header (its names are polars' reading of it)
            rest = b""
            while True:
                block = f.read(CSV_BLOCK)
                data = rest + block
                cut = len(data) if not block else record_end(data)
                rest = data[cut:]
                if cut:
                    kept, lines = records(data[:cut])
                    if kept:
                        df = pl.read_csv(kept, has_header=False, infer_schema=False, columns=idx,
                                         raise_if_empty=False)
                        n = df.height
                        if lines is not None and len(lines) != n:  # polars read the records otherwise:
                            lines = None  # lines from this block on are approximate, not an error
                        # each record's line minus its number: where that changes, where() learns it
                        moved = line - row + (0 if lines is None else lines - np.arange(n))
                        at = np.flatnonzero(np.diff(np.broadcast_to(moved, n), prepend=shift))
                        if len(at):
                            self._shift_rows += (row + at).tolist()
                            self._shifts += np.broadcast_to(moved, n)[at].tolist()
                            shift = self._shifts[-1]
                        row += n
                        yield df.rename(dict(zip(df.columns, names, strict=True)))
                    line += data.count(b"\n", 0, cut)
                if not block:
                    return

    @staticmethod
    def _parts(
        batches: Iterator[pa.RecordBatch] | Iterator[pl.DataFrame], chunk_rows: int, upto: int | None
    ) -> Iterator[pl.DataFrame]:
        """Record batches (or frames) gathered into frames of about chunk_rows rows, numbered (__row)."""
        row = 0
        held: list[pa.RecordBatch] = []
        count = 0
        while True:
            rb = next(batches, None)
            if rb is not None and len(rb):
                held.append(rb)
                count += len(rb)
            if held and (rb is None or count >= chunk_rows):
                if isinstance(held[0], pl.DataFrame):
                    df = pl.concat(held) if len(held) > 1 else held[0]
                else:
                    df = pl.from_arrow(pa.Table.from_batches(held))
                assert isinstance(df, pl.DataFrame)
                yield df.with_row_index("__row", offset=row)
                row += count
                held, count = [], 0
            if rb is None or (upto is not None and row > upto):
                return

    def _ranges(self, chunk_rows: int, upto: int | None) -> list[tuple[int, int]]:
        """Row ranges on Parquet row-group boundaries: small groups together up to chunk_rows, a
        bigger one whole (a slice of a group decodes the group up to it: slicing one group into
        chunks would decode it again for each) unless it has over WHOLE_GROUP rows (then in
        chunks: memory follows chunk_rows, not the writer's choice)."""
        if self.kind == "parquet":
            meta = pq.read_metadata(self.path)
            sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        else:
            sizes = [self.lf.select(pl.len()).collect().item()]
        out: list[tuple[int, int]] = []
        off = 0
        pending = 0
        for size in sizes:
            if pending and pending + size > chunk_rows:
                out.append((off, pending))
                off, pending = off + pending, 0
            if chunk_rows < size <= WHOLE_GROUP:
                out.append((off, size))
                off += size
            elif size > chunk_rows:
                for k in range(0, size, chunk_rows):
                    out.append((off, min(chunk_rows, size - k)))
                    off += min(chunk_rows, size - k)
            else:
                pending += size
        if pending:
            out.append((off, pending))
        if upto is not None:
            out = [(o, n) for o, n in out if o <= upto]
        if out and out[0][1] > chunk_rows:
            # the first chunk alone: the replay starts once its rows are decoded, not the whole
            # group's (the rest decodes the group again, to its end: a tenth more of one group)
            o, n = out[0]
            out[:1] = [(o, chunk_rows), (o + chunk_rows, n - chunk_rows)]
        return out

    def times(self, raw: pl.DataFrame) -> np.ndarray:
        """A raw chunk's bar times as int64 ns UTC, NO_TIME where unparseable."""
        tcol = raw.get_column("t")
        if "__time" in raw.columns:
            tcol = tcol.cast(pl.String) + " " + raw.get_column("__time").cast(pl.String)
        dtype = tcol.dtype
        aware_ns = isinstance(dtype, pl.Datetime) and dtype.time_zone and dtype.time_unit == "ns"
        if aware_ns and not tcol.null_count():
            return tcol.to_numpy().view(np.int64)  # already the instants: polars' memory as it is
        return self.parser(tcol).fill_null(NO_TIME).to_numpy()

    def arrays(self, raw: pl.DataFrame, symbols: Symbols, full: bool) -> dict[str, np.ndarray]:
        """A raw chunk as numpy columns: __row, sym, t, open, high, low, close, kind (+ volume,
        trade_count, vwap when `full`); BadData if a column's type cannot be used at all."""
        try:
            return self._arrays(raw, symbols, full)
        except pl.exceptions.PolarsError as e:
            types = ", ".join(
                f"{self.cols.names.get(c, c)}: {t}" for c, t in raw.schema.items() if c != "__row"
            )
            raise BadData(self.name, f"unusable column types ({types}): {first_line(e)}") from None

    def _arrays(self, raw: pl.DataFrame, symbols: Symbols, full: bool) -> dict[str, np.ndarray]:
        n = raw.height
        if self.fixed is not None:
            sym = np.full(n, symbols.id(self.fixed), np.int64)
        else:
            sym = symbols.codes(raw.get_column("symbol"))
        out = {"__row": raw.get_column("__row").to_numpy(), "sym": sym, "t": self.times(raw)}
        for name in PRICES:
            out[name] = _floats(raw.get_column(name))
        if "kind" in raw.columns:
            out["kind"] = raw.get_column("kind").cast(pl.Int8, strict=False).fill_null(-1).to_numpy()
        else:
            out["kind"] = np.zeros(n, np.int8)
        if full:
            if "volume" in raw.columns:
                vol = _floats(raw.get_column("volume"))
                out["volume"] = np.where(np.isnan(vol), 0.0, vol) if np.isnan(vol).any() else vol
            else:
                out["volume"] = np.zeros(n)
            for name in ("trade_count", "vwap"):
                out[name] = _floats(raw.get_column(name)) if name in raw.columns else np.full(n, np.nan)
        return out
