"""Session files: read bars from Parquet, CSV (also .gz) and Arrow IPC files in time order, in
bounded memory, and write the replay format (the recorder's).

How `Reader` reads (see also replay/source.py, replay/validate.py, replay/merge.py):

* Every file is scanned lazily with polars and handled chunk by chunk in file order; no file
  is ever collected whole.
* Rows are checked in file order (validate.py): time, symbol, prices, kind, and time order
  per symbol. By default (`check_first=True`) a check pass over each file runs before the
  first bar is yielded, so a bad row raises `BadData` before anything is replayed; with
  `check_first=False` (what `barwatch replay` does) a quick pre-scan of the time column alone
  decides the file's layout and the rows are checked as they stream (faster: one full read
  instead of two; the good rows before a bad one are still yielded, and a bad row
  then raises when the replay reaches it).
* A file whose good rows are in time order across symbols (the recorder's files, Alpaca's
  stream) is passed through as it comes. A file that is not (grouped by symbol, like the
  bundled daily CSV and Alpaca's REST history) goes through an external bucket sort: one
  chunk in memory plus one time bucket of about `chunk_rows` rows, spilled to a temporary
  folder when the file is bigger than that.
* Several files are merged by time (k-way merge of their sorted chunk streams); equal times
  go to the earlier file, then the earlier row.

Row numbers in messages: "row N" is the N-th data row (1-based) of a Parquet or Arrow file;
"line N" is the line of a CSV file, the header being line 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from stream.bars import BarBatch, read_only
from stream.events import rfc3339

from . import merge, symtab, validate
from .columns import EXCHANGE_TZ, PRICES, check_tz, parse_time
from .source import WHOLE_GROUP, BadData, Source, Symbols
from .validate import FAULTS, NO_TIME

__all__ = [
    "BadData",
    "Reader",
    "default_data",
    "infer_timeframe",
    "parse_time",
    "write_parquet",
]

DEFAULT_DATA = "stocks_AAPL_FB_GOOG_IBM_MSFT_2000-2013.csv.gz"
CHECK_ROLES = ("t", "symbol", "open", "high", "low", "close", "kind")
ALL_ROLES = ("t", "symbol", "open", "high", "low", "close", "volume", "trade_count", "vwap", "kind")
OUT = ["sym", "t", "open", "high", "low", "close", "volume", "trade_count", "vwap", "kind"]
INT64_MAX = np.iinfo(np.int64).max
Chunk = dict[str, np.ndarray] | pl.DataFrame  # a stream's chunk: numpy columns, or a frame after sorting


def default_data() -> Path:
    """The bundled real daily bars (AAPL, FB, GOOG, IBM, MSFT, 2000-2013): what `barwatch` replays."""
    import stream

    return Path(stream.__file__).resolve().parent / "data" / DEFAULT_DATA


def warm_kernels() -> None:
    """Loads (on a cold cache: compiles) the reading's kernels (symbol table, row checks) on a
    few rows: a replay does it where the step kernel loads, before it, so that the first chunk
    does not wait for numba's compile lock while the step, one-bar and encoding kernels load."""
    n = 2
    views = read_only(np.zeros((n, 2), np.uint64))  # as `Symbols` passes a chunk's views
    table, out = symtab.ViewTable(), np.empty(n, np.int64)
    table.lookup(views, out)
    rows = symtab.first_rows(views, np.flatnonzero(out == symtab.UNKNOWN))
    table.add(views[rows], np.arange(len(rows), dtype=np.int64))
    f = read_only(np.ones(n))
    i = read_only(np.zeros(n, np.int64))
    validate.check_rows(i, i, f, f, f, f, read_only(np.zeros(n, np.int8)), 0, 1, True,
                        np.full(1, NO_TIME, np.int64), np.array([NO_TIME, 1, 0], np.int64),
                        np.zeros(n, np.int8), True)

class _Checks:
    """The row checks of one file, with their state carried from chunk to chunk."""

    def __init__(self, reader: Reader, src: Source) -> None:
        self.reader = reader
        self.src = src
        self.last = np.full(0, NO_TIME, np.int64)  # per symbol id: time of its last good bar
        self.order = np.array([NO_TIME, 1, 0], np.int64)  # see validate.check_rows
        self.kept = np.zeros(0, np.int64)  # good rows per symbol id
        self.sample = merge.Sample()
        self.bad: list[np.ndarray] = []

    def run(self, raw: pl.DataFrame, a: dict[str, np.ndarray]) -> np.ndarray:
        """Check one chunk; raise BadData on a fault unless skipping; return the good-row mask."""
        r = self.reader
        n_sym = len(r._symbols.names)
        if len(self.last) < n_sym:
            grow = n_sym - len(self.last)
            self.last = np.concatenate([self.last, np.full(grow, NO_TIME, np.int64)])
            self.kept = np.concatenate([self.kept, np.zeros(grow, np.int64)])
        fault = np.zeros(len(a["t"]), np.int8)
        lo, hi = r._window()
        cols = [read_only(a[k]) for k in ("t", "sym", "open", "high", "low", "close", "kind")]
        first = validate.check_rows(*cols, lo, hi, not self.src.recorder, self.last, self.order, fault,
                                    not r.skip_bad)
        if first >= 0:
            bad = r._fault(self.src, raw, a, first, int(fault[first]), self.last)
            bad.keep = fault[:first] == 0  # the chunk's rows before it that are replayed still
            raise bad
        good = fault == 0
        all_good = bool(good.all())
        if not all_good:
            faulty = fault > 0
            if faulty.any():
                self.bad.append(a["__row"][faulty])
                for code, count in zip(*np.unique(fault[faulty], return_counts=True), strict=True):
                    name = FAULTS[code]
                    r.skipped_by_fault[name] = r.skipped_by_fault.get(name, 0) + int(count)
                    r.skipped += int(count)
        t = a["t"] if all_good else a["t"][good]
        sym = a["sym"] if all_good else a["sym"][good]
        self.sample.add(t)
        self.kept += np.bincount(sym, minlength=len(self.kept))
        return good

    @property
    def ordered(self) -> bool:
        return bool(self.order[1])

    @property
    def good_rows(self) -> int:
        return int(self.order[2])

    def bad_rows(self) -> np.ndarray:
        return np.concatenate(self.bad) if self.bad else np.empty(0, np.int64)


@dataclass
class _Plan:
    """How one file is streamed: after a check pass (bad rows known) or checked as it goes."""

    checked: bool
    ordered: bool
    rows: int  # good rows (checked) or rows in the time window (an upper bound)
    last_row: int = -1  # highest file row seen before replay: later rows (a growing file) are ignored
    bad_rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    edges: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    checks: _Checks | None = None  # the live checks of an unchecked file


class Reader:
    """Bars of one or more files, merged by time, as BarBatch chunks of at most `chunk_rows` bars.

    `start`/`end` are ns UTC (start inclusive, end exclusive, on the bar's start time);
    `symbols` filters (any case), and names the symbol of a file without a symbol column when
    exactly one symbol is given and one such file is read (else the file name gives it);
    naive times are `tz` (exchange) time. Bad rows raise BadData, or with `skip_bad` are
    skipped and counted. `rows` counts bars yielded so far.
    """

    def __init__(
        self,
        paths: list[str | Path],
        symbols: list[str] | None = None,
        start: int | None = None,
        end: int | None = None,
        skip_bad: bool = False,
        chunk_rows: int = 500_000,
        tz: str = EXCHANGE_TZ,
        check_first: bool = True,
    ) -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        if not paths:
            raise ValueError("no input files")
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be positive")
        if start is not None and end is not None and start >= end:
            raise ValueError(f"start ({rfc3339(start)}) must be before end ({rfc3339(end)})")
        check_tz(tz)
        self.names = [str(p) for p in paths]
        wanted = [s.strip().upper() for s in symbols or [] if s.strip()]
        self.wanted: set[str] | None = set(wanted) if wanted else None
        self.fixed_hint = wanted[0] if len(wanted) == 1 else None
        self.start = start
        self.end = end
        self.skip_bad = skip_bad
        self.chunk_rows = int(chunk_rows)
        self.tz = tz
        self.check_first = check_first
        self.rows = 0
        self.skipped = 0
        self.skipped_by_fault: dict[str, int] = {}
        self.expected_rows = 0  # bars a full iteration yields: exact after check passes, else at most
        self.spilled = False  # some file is not in time order and bigger than one bucket
        self._symbols = Symbols()
        self._sources: list[Source] = []
        self._plans: list[_Plan] = []
        self._fresh = False  # prepare() ran and no iteration has used it yet

    # ---- before the first bar --------------------------------------------------------------

    def prepare(self) -> None:
        """Open every file and plan its reading (check pass or pre-scan); raises BadData."""
        self.rows = 0
        self.skipped = 0
        self.skipped_by_fault = {}
        self._symbols = Symbols()
        self._sources = [Source(name, self.tz, self.wanted) for name in self.names]
        nameless = [s for s in self._sources if s.fixed is not None]
        if self.fixed_hint is not None and len(nameless) == 1:
            nameless[0].fixed = self.fixed_hint
        self._plans = [self._plan(src) for src in self._sources]
        self.expected_rows = sum(p.rows for p in self._plans)
        self.spilled = any(not p.ordered and len(p.edges) for p in self._plans)
        self._fresh = True

    def _window(self) -> tuple[int, int]:
        lo = NO_TIME + 1 if self.start is None else int(self.start)
        hi = INT64_MAX if self.end is None else int(self.end)
        return lo, hi

    def _plan(self, src: Source) -> _Plan:
        if not self.check_first:
            ordered, rows, last_row = self._prescan(src)
            if ordered:
                return _Plan(
                    checked=False, ordered=True, rows=rows, last_row=last_row, checks=_Checks(self, src)
                )
        checks = _Checks(self, src)
        last_row = -1
        for raw in src.frames(CHECK_ROLES, self.chunk_rows):
            a = src.arrays(raw, self._symbols, full=False)
            last_row = int(a["__row"][-1])
            checks.run(raw, a)
        plan = _Plan(
            checked=True, ordered=checks.ordered, rows=checks.good_rows, last_row=last_row, checks=checks
        )
        plan.bad_rows = checks.bad_rows()
        if not plan.ordered:
            plan.edges = merge.bucket_edges(checks.sample.values(), plan.rows, self.chunk_rows)
        return plan

    def _prescan(self, src: Source) -> tuple[bool, int, int]:
        """Times only: are the parseable times in the window non-decreasing in file order?"""
        lo, hi = self._window()
        prev = NO_TIME
        rows = 0
        last_row = -1
        ordered = True
        # the times alone are small: read in big chunks (a Parquet row group whole), so the per-chunk
        # Python, which holds the GIL while the kernels load in another thread, runs a tenth as often
        for raw in src.frames(("t",), max(self.chunk_rows, WHOLE_GROUP)):
            last_row = int(raw.get_column("__row")[-1])
            t = src.times(raw)
            if len(t) and (t.min() < lo or t.max() >= hi):  # two reductions: cheaper than the mask
                t = t[(t >= lo) & (t < hi)]
            rows += len(t)
            if ordered and len(t) and (t[0] < prev or bool((t[1:] < t[:-1]).any())):
                ordered = False
            if len(t):
                prev = max(prev, int(t.max()))
        return ordered, rows, last_row

    @property
    def symbols_seen(self) -> list[str]:
        """Symbols with a good row read so far (or found by check passes), in order of first sight."""
        kept = np.zeros(len(self._symbols.names), np.int64)
        for plan in self._plans:
            if plan.checks is not None:
                kept[: len(plan.checks.kept)] += plan.checks.kept
        return [s for s, k in zip(self._symbols.names, kept.tolist(), strict=False) if k > 0]

    def _fault(
        self, src: Source, raw: pl.DataFrame, a: dict[str, np.ndarray], i: int, code: int, last: np.ndarray
    ) -> BadData:
        """The BadData for row i of a chunk, with the values at fault."""
        at = raw.row(i, named=True)
        name = FAULTS[code]
        sym_id = int(a["sym"][i])
        sym = self._symbols.names[sym_id] if sym_id >= 0 else "?"
        t = int(a["t"][i])
        if code == validate.F_TIME:
            shown = at["t"] if "__time" not in at else f"{at['t']} {at['__time']}"
            detail = f"unparseable time {_show(shown)}"
        elif code == validate.F_SYMBOL:
            detail = "missing symbol"
        elif code in (validate.F_NAN, validate.F_NONPOS):
            vals = {p: float(a[p][i]) for p in PRICES}
            if code == validate.F_NAN:
                bad = [p for p in PRICES if not np.isfinite(vals[p])]
            else:
                bad = [p for p in PRICES if vals[p] <= 0]
            p = bad[0] if bad else "close"
            detail = f"{name}: {p} is {_show(at[p])}"
        elif code == validate.F_HL:
            detail = f"high < low: high {at['high']}, low {at['low']}"
        elif code == validate.F_KIND:
            detail = f"bad kind {_show(at.get('kind'))} (0 final or 1 forming, plus 2 warm, 4 late)"
        elif code == validate.F_DUP:
            detail = f"duplicate time {rfc3339(t)} for {sym}"
        else:
            detail = f"unsorted time {rfc3339(t)} for {sym}, after {rfc3339(int(last[sym_id]))}"
        return BadData(src.name, detail, row=src.where(int(a["__row"][i])), unit=src.unit, fault=name)

    # ---- the bars --------------------------------------------------------------------------

    def _stream(self, src: Source, plan: _Plan) -> Iterator[Chunk]:
        """One file's good rows, sorted by time (equal times in file order), in chunks of OUT columns."""
        lo, hi = self._window()
        windowed = self.start is not None or self.end is not None

        def chunks() -> Iterator[dict[str, np.ndarray]]:
            for raw in src.frames(ALL_ROLES, self.chunk_rows, upto=plan.last_row):
                a = src.arrays(raw, self._symbols, full=True)
                if not plan.checked:
                    assert plan.checks is not None
                    try:
                        keep = plan.checks.run(raw, a)
                    except BadData as bad:  # the bars before the bad row first, then the error
                        if bad.keep.any():
                            yield {k: a[k][: len(bad.keep)][bad.keep] for k in OUT}
                        raise
                else:
                    keep = ((a["t"] >= lo) & (a["t"] < hi)) if windowed else None
                    if len(plan.bad_rows):
                        good = ~np.isin(a["__row"], plan.bad_rows, assume_unique=True)
                        keep = good if keep is None else keep & good
                if keep is not None and not keep.all():
                    a = {k: v[keep] for k, v in a.items()}
                if len(a["t"]):
                    yield {k: a[k] for k in OUT}

        if plan.ordered:
            return chunks()  # as numpy columns: no frame is built on the fast path
        return merge.sort_by_time((pl.DataFrame(c) for c in chunks()), plan.edges)

    def __iter__(self) -> Iterator[BarBatch]:
        if not self._fresh:
            self.prepare()
        self._fresh = False
        streams = [
            self._stream(s, p)
            for s, p in zip(self._sources, self._plans, strict=True)
            if p.rows and not s.excluded
        ]
        if not streams:
            return
        names = self._symbols.names
        for chunk in merge.merge(streams):
            cols = chunk if isinstance(chunk, dict) else {k: chunk.get_column(k).to_numpy() for k in OUT}
            lut = np.full(len(names), -1, np.int64)
            n = len(cols["t"])
            for off in range(0, n, self.chunk_rows):
                part = {k: v[off : off + self.chunk_rows] for k, v in cols.items()}
                yield _batch(part, lut, names)
                self.rows += len(part["t"])

    def describe_skips(self) -> str:
        """One line for the summary, e.g. "skipped 3 bad rows: 2 nan price, 1 high < low"."""
        if not self.skipped:
            return "skipped 0 bad rows"
        parts = sorted(self.skipped_by_fault.items(), key=lambda kv: (-kv[1], kv[0]))
        noun = "row" if self.skipped == 1 else "rows"
        return f"skipped {self.skipped} bad {noun}: " + ", ".join(f"{n} {name}" for name, n in parts)


def _batch(part: dict[str, np.ndarray], lut: np.ndarray, names: list[str]) -> BarBatch:
    """OUT columns as a BarBatch listing only its own symbols (in id order)."""
    sym = part["sym"]
    present = np.flatnonzero(np.bincount(sym, minlength=len(names)))
    if len(present) == len(names):  # every name so far: the ids are the batch's own
        symbols = list(names)
    else:
        lut[present] = np.arange(len(present))
        symbols, sym = [names[i] for i in present], lut[sym]
    return BarBatch(
        symbols=symbols,
        sym=sym,
        t=part["t"],
        open=part["open"],
        high=part["high"],
        low=part["low"],
        close=part["close"],
        volume=part["volume"],
        trade_count=part["trade_count"],
        vwap=part["vwap"],
        kind=part["kind"],
    )


def _show(value: object) -> str:
    if value is None or value == "":
        return "empty"
    if isinstance(value, float):
        return repr(value) if np.isfinite(value) else str(value)
    return repr(value) if isinstance(value, str) else str(value)


def write_parquet(path: str | Path, batches: Iterable[BarBatch]) -> int:
    """Write bars as a session file in the replay format (BarBatch.to_polars); returns the rows written.

    Streams batch by batch into a sibling ".partial" file renamed into place at the end, so
    an interrupted write never leaves a truncated file under the real name.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    schema = BarBatch.from_bars([]).to_polars().to_arrow().schema
    rows = 0
    try:
        with pq.ParquetWriter(str(tmp), schema, compression="zstd") as writer:
            for batch in batches:
                if not len(batch):
                    continue
                table = batch.to_polars().to_arrow().cast(schema)
                writer.write_table(table)
                rows += table.num_rows
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


TIMEFRAMES = ((60, "1Min"), (300, "5Min"), (900, "15Min"), (3600, "1Hour"), (86_400, "1Day"))


def infer_timeframe(batch_or_times: BarBatch | np.ndarray | Iterable[int]) -> str | None:
    """The bars' timeframe from the median spacing of one symbol's bar starts, None if unclear.

    For a batch, the symbol with the most bars is used. Within 10 % of 1Min, 5Min, 15Min,
    1Hour or 1Day (a daily series spaced 23 or 25 hours across daylight-saving changes still
    reads as 1Day).
    """
    if isinstance(batch_or_times, BarBatch):
        b = batch_or_times
        if not len(b):
            return None
        times = b.t[b.sym == np.bincount(b.sym).argmax()]
    elif isinstance(batch_or_times, np.ndarray):
        times = batch_or_times
    else:
        times = np.fromiter(batch_or_times, dtype=np.int64)
    times = np.unique(np.asarray(times, dtype=np.int64))
    if len(times) < 2:
        return None
    step = float(np.median(np.diff(times))) / 1e9
    for seconds, name in TIMEFRAMES:
        if abs(step - seconds) <= 0.1 * seconds:
            return name
    return None
