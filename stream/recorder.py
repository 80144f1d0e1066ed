"""The session recorder (`barwatch live --record DIR`): every bar the engine is given, on disk.

Each batch is appended to DIR/session-<UTC start>.arrows, an Arrow IPC stream, and flushed
to the operating system at once (a kill -9 loses nothing written; a power cut at most the
last second: the file is fsynced once a second). On a clean exit the stream is compacted to
DIR/session-<UTC start>.parquet and removed; a stream left by a crash is compacted by the next
`recover` (the live command runs it at start), keeping every complete batch.

Rows are the replay format (symbol, t, open, high, low, close, volume, trade_count, vwap,
kind) in the order the engine stepped them: forming bars, finals and revisions alike, so a
replay steps the same bars and writes the same event lines. Two more columns say how the
live run stepped a row: `warm` (history loaded before the first live bar: stepped without
events) and `late` (fetched after a reconnect: its events say "late": true). The file's
metadata (key "barwatch") holds the timeframe, feed and symbols.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .bars import LATE, WARM, BarBatch

META_KEY = b"barwatch"
SCHEMA = pa.schema([
    ("symbol", pa.string()), ("t", pa.timestamp("ns", "UTC")), ("open", pa.float64()),
    ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()), ("volume", pa.float64()),
    ("trade_count", pa.float64()), ("vwap", pa.float64()), ("kind", pa.int8()), ("late", pa.bool_()),
    ("warm", pa.bool_()),
])
ROW_GROUP = 65536


def _record_batch(batch: BarBatch, warm: bool) -> pa.RecordBatch:
    n = len(batch)
    symbols = np.array(batch.symbols, dtype=object)[batch.sym] if n else np.array([], dtype=object)
    cols = [
        pa.array(symbols, pa.string()),
        pa.array(batch.t.view("datetime64[ns]"), pa.timestamp("ns", "UTC")),
        pa.array(batch.open), pa.array(batch.high), pa.array(batch.low), pa.array(batch.close),
        pa.array(batch.volume), pa.array(batch.trade_count), pa.array(batch.vwap),
        pa.array(batch.kind | (WARM if warm else 0) | (LATE if batch.late else 0), pa.int8()),
        pa.array(np.full(n, batch.late, dtype=bool)), pa.array(np.full(n, warm, dtype=bool)),
    ]
    return pa.RecordBatch.from_arrays(cols, schema=SCHEMA)


class Recorder:
    """Appends engine-input batches to an Arrow IPC stream; `close` compacts it to Parquet."""

    def __init__(self, folder: str | Path, meta: dict | None = None, fsync_every: float = 1.0) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = self.folder / f"session-{stamp}.arrows"
        self.meta = dict(meta or {})
        schema = SCHEMA.with_metadata({META_KEY: json.dumps(self.meta).encode()})
        self._file = open(self.path, "wb")  # noqa: SIM115 - lives as long as the recorder
        self._writer = ipc.new_stream(self._file, schema)
        self._file.flush()
        self.fsync_every = fsync_every
        self._synced = time.monotonic()
        self.rows = 0
        self.closed = False

    def write(self, batch: BarBatch, warm: bool = False) -> None:
        """Append a batch (flushed to the OS before returning)."""
        if not len(batch):
            return
        self._writer.write_batch(_record_batch(batch, warm))
        self._file.flush()
        self.rows += len(batch)
        now = time.monotonic()
        if now - self._synced >= self.fsync_every:
            os.fsync(self._file.fileno())
            self._synced = now

    def close(self) -> Path | None:
        """End the stream and compact it to Parquet; the Parquet path (None if no rows)."""
        if self.closed:
            return None
        self.closed = True
        self._writer.close()
        self._file.close()
        return compact(self.path)


def read_recording(path: str | Path) -> pl.DataFrame:
    """A recording (Parquet, or an Arrow IPC stream, complete or cut short by a crash)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    return pl.from_arrow(_read_stream(path)[0], rechunk=False)


def _read_stream(path: Path) -> tuple[pa.Table, dict]:
    batches = []
    with open(path, "rb") as f:
        try:
            reader = ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError):
            return SCHEMA.empty_table(), {}
        schema = reader.schema
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):  # a batch cut short by a crash: the rest is lost
                break
    meta = _meta(schema.metadata)
    return pa.Table.from_batches(batches, schema=schema), meta


def _meta(md: dict | None) -> dict:
    if not md or META_KEY not in md:
        return {}
    try:
        return json.loads(md[META_KEY])
    except ValueError:
        return {}


def metadata(path: str | Path) -> dict:
    """The barwatch metadata of a recording or fetched Parquet file ({} if none)."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            return _meta(pq.read_schema(path).metadata)
        with open(path, "rb") as f:
            return _meta(ipc.open_stream(f).schema.metadata)
    except (pa.ArrowInvalid, OSError):
        return {}


def write_parquet(df: pl.DataFrame, path: str | Path, meta: dict) -> Path:
    """A frame in the replay format to Parquet, with barwatch metadata (row groups of 64k)."""
    table = df.to_arrow()
    md = {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    table = table.replace_schema_metadata(md)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, row_group_size=ROW_GROUP)
    os.replace(tmp, path)
    return path


def compact(path: str | Path) -> Path | None:
    """An .arrows stream -> .parquet beside it (the stream removed); None if it was empty."""
    path = Path(path)
    table, meta = _read_stream(path)
    if table.num_rows == 0:
        path.unlink(missing_ok=True)
        return None
    out = path.with_suffix(".parquet")
    write_parquet(pl.from_arrow(table), out, meta)
    path.unlink()
    return out


def recover(folder: str | Path) -> list[Path]:
    """Compact every stream a crashed run left in `folder`; the Parquet files made."""
    made = []
    for p in sorted(Path(folder).glob("session-*.arrows")):
        out = compact(p)
        if out is not None:
            made.append(out)
    return made


def session_batches(df: pl.DataFrame) -> Iterator[tuple[BarBatch, bool]]:
    """A recording as the live run stepped it: (batch, emit) for each run of rows with the
    same warm/late flags, in order (warm rows: emit False; late rows: batch.late)."""
    if not len(df):
        return
    warm = df.get_column("warm").to_numpy() if "warm" in df.columns else np.zeros(len(df), bool)
    late = df.get_column("late").to_numpy() if "late" in df.columns else np.zeros(len(df), bool)
    flags = warm.astype(np.int8) * 2 + late.astype(np.int8)
    cuts = np.flatnonzero(np.diff(flags)) + 1
    bounds = [0, *cuts.tolist(), len(df)]
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        part = df.slice(a, b - a)
        yield BarBatch.from_polars(part, late=bool(late[a])), not bool(warm[a])
