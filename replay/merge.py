"""Putting bars in time order with bounded memory: a k-way merge of sorted chunk streams, and an
external bucket sort for a file whose rows are not in time order (e.g. grouped by symbol).

Chunks are polars frames with at least `t` (Int64 ns), in file-row order within each
stream; a stream's rows are sorted by time, equal times in file-row order (stable sorts keep
that). Ties between files go to the earlier file.
"""

from __future__ import annotations

import atexit
import functools
import math
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa


def _frame(chunk: pl.DataFrame | dict[str, np.ndarray]) -> pl.DataFrame:
    return chunk if isinstance(chunk, pl.DataFrame) else pl.DataFrame(chunk)


def merge(streams: list[Iterator]) -> Iterator:
    """Merge time-sorted chunk streams into one, by (t, stream, row), holding one chunk per stream.

    A single stream passes through as it is; otherwise chunks (frames or dicts of numpy columns)
    are merged as frames.

    Each round emits every buffered row whose key is at or before the smallest "last buffered
    key" among streams: no later chunk of any stream can come before it.
    """
    if len(streams) == 1:
        yield from streams[0]
        return
    bufs: dict[int, pl.DataFrame] = {}
    alive = list(range(len(streams)))
    while True:
        for i in list(alive):
            while i not in bufs or bufs[i].height == 0:
                nxt = next(streams[i], None)
                if nxt is None:
                    alive.remove(i)
                    bufs.pop(i, None)
                    break
                bufs[i] = _frame(nxt)
        if not alive:
            return
        ht, hf = min((bufs[i]["t"][-1], i) for i in alive)
        parts = []
        for i in alive:
            b = bufs[i]
            if i == hf:
                cut = b.height
            else:
                cut = int(np.searchsorted(b["t"].to_numpy(), ht, side="right" if i < hf else "left"))
            if cut:
                parts.append(b.slice(0, cut).with_columns(pl.lit(i, pl.Int32).alias("__f")))
                bufs[i] = b.slice(cut)
        out = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
        yield out.sort(["t", "__f"], maintain_order=True).drop("__f")


class Sample:
    """A bounded, evenly strided sample of a stream of times (for bucket boundaries)."""

    def __init__(self, size: int = 1 << 16) -> None:
        self.size = size
        self.stride = 1
        self.parts: list[np.ndarray] = []
        self.held = 0
        self.phase = 0

    def add(self, t: np.ndarray) -> None:
        """Keep every stride-th value; halve the sample when it grows past twice its size."""
        take = t[self.phase :: self.stride]
        self.phase = (self.phase - len(t)) % self.stride
        self.parts.append(take)
        self.held += len(take)
        if self.held > 2 * self.size:
            allv = np.concatenate(self.parts)[::2]
            self.parts, self.held, self.stride = [allv], len(allv), self.stride * 2

    def values(self) -> np.ndarray:
        return np.sort(np.concatenate(self.parts)) if self.parts else np.empty(0, np.int64)


def bucket_edges(sample: np.ndarray, rows: int, bucket_rows: int) -> np.ndarray:
    """Time boundaries cutting `rows` rows into buckets of about `bucket_rows` (equal times stay together)."""
    n = max(1, math.ceil(rows / max(1, bucket_rows)))
    n = min(n, 4096)
    if n == 1 or len(sample) == 0:
        return np.empty(0, np.int64)
    q = np.quantile(sample, np.arange(1, n) / n, method="lower").astype(np.int64)
    return np.unique(q)


def sort_by_time(
    chunks: Iterable[pl.DataFrame], edges: np.ndarray, tmp_root: str | None = None
) -> Iterator[pl.DataFrame]:
    """Yield all rows of `chunks` (given in file-row order) sorted by time, stably, bucket by bucket.

    With no edges everything is sorted in memory; otherwise rows go to one Arrow IPC spill
    file per time bucket in a temporary folder (removed afterwards), and each bucket is read
    back, sorted and yielded in turn, so memory holds one chunk or one bucket at a time.
    """
    if len(edges) == 0:
        frames = [c for c in chunks if c.height]
        if frames:
            yield pl.concat(frames, how="vertical").sort("t", maintain_order=True)
        return
    tmp = Path(tempfile.mkdtemp(prefix="barwatch-replay-", dir=tmp_root))
    cleanup = functools.partial(shutil.rmtree, tmp, True)
    atexit.register(cleanup)  # also gone at exit if the replay is abandoned mid-way
    writers: dict[int, tuple[object, pa.ipc.RecordBatchStreamWriter]] = {}
    try:
        for chunk in chunks:
            if not chunk.height:
                continue
            b = np.searchsorted(edges, chunk["t"].to_numpy(), side="right").astype(np.int32)
            parts = chunk.with_columns(pl.Series("__b", b)).partition_by("__b", as_dict=True)
            for (k,), part in parts.items():  # partition_by keeps file order within each part
                table = part.to_arrow()
                if k not in writers:
                    sink = pa.OSFile(str(tmp / f"{k}.arrows"), "wb")
                    opts = pa.ipc.IpcWriteOptions(compression="zstd")  # a quarter of the disk, no slower
                    writers[k] = (sink, pa.ipc.new_stream(sink, table.schema, options=opts))
                writers[k][1].write_table(table)
        for sink, writer in writers.values():
            writer.close()
            sink.close()
        for k in sorted(writers):
            path = tmp / f"{k}.arrows"
            with pa.OSFile(str(path), "rb") as src:  # read into memory: the file is deleted next
                table = pa.ipc.open_stream(src).read_all()
            frame = pl.from_arrow(table).drop("__b")
            del table
            path.unlink()
            yield frame.sort("t", maintain_order=True)
    finally:
        for sink, writer in writers.values():
            try:
                writer.close()
                sink.close()
            except Exception:  # noqa: BLE001 - already closed or the disk is gone; the folder goes anyway
                pass
        cleanup()
        atexit.unregister(cleanup)
