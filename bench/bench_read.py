"""Benchmark: replay.store.Reader on a 10-million-row real-shaped Parquet file, against polars'
own `pl.read_parquet` of the same file in the same run.

    .venv/bin/python bench/bench_read.py [--rows 10000000] [--symbols 1000] [--dir /tmp]

Two layouts of the same bars: time-ordered (as the recorder writes) and grouped by symbol
(as Alpaca's REST history comes; the Reader sorts it externally). Each measurement runs in
its own process so its peak RSS (ru_maxrss) is its own. Prints bars/s, the ratio to
read_parquet, and peak RSS; the baseline RSS of a process that only imported is shown too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_files(rows: int, symbols: int, folder: Path) -> dict[str, Path]:
    """The bench files (made once, reused): tiled real bars, time-ordered and grouped by symbol."""
    import polars as pl

    from bench.data import many_symbols
    from replay.store import write_parquet

    out = {"time": folder / f"bench_read_{rows}_{symbols}_time.parquet",
           "symbol": folder / f"bench_read_{rows}_{symbols}_symbol.parquet"}  # fmt: skip
    if all(p.exists() for p in out.values()):
        return out
    bars = -(-rows // symbols)
    batch = many_symbols(symbols, bars)
    df = batch.to_polars().head(rows)
    write_parquet(out["time"], [batch.__class__.from_polars(df)])
    df.sort("symbol", maintain_order=True).write_parquet(out["symbol"])
    del df, batch
    pl.scan_parquet(out["time"]).select(pl.len()).collect()
    return out


def one(mode: str, path: str, chunk_rows: int) -> dict:
    """One measurement in this process: rows, seconds, peak RSS (VmHWM: this program's own)."""
    import polars as pl

    from replay.store import Reader, default_data
    from stream.bars import BarBatch

    for _ in Reader([default_data()]):  # imports and compiled kernels, as a replay has them
        pass
    t0 = time.perf_counter()
    n = 0
    if mode == "read_parquet":
        n = pl.read_parquet(path).height
    elif mode == "eager":
        n = len(BarBatch.from_polars(pl.read_parquet(path).sort("t", maintain_order=True)))
    elif mode == "imports":
        pass
    else:
        r = Reader([path], chunk_rows=chunk_rows, check_first=(mode == "reader"))
        for b in r:
            n += len(b)
    dt = time.perf_counter() - t0
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return {"mode": mode, "rows": n, "seconds": dt, "peak_mb": peak / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--symbols", type=int, default=1000)
    ap.add_argument("--chunk-rows", type=int, default=500_000)
    ap.add_argument("--dir", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--one", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.chunk_rows)))
        return
    files = make_files(args.rows, args.symbols, Path(args.dir))

    def run(mode: str, path: Path) -> dict:
        cmd = [sys.executable, __file__, "--one", mode, str(path), "--chunk-rows", str(args.chunk_rows)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        return json.loads(out.stdout.strip().splitlines()[-1])

    base = run("imports", files["time"])
    print(f"{args.rows:,} bars, {args.symbols} symbols, chunk_rows {args.chunk_rows:,}; "
          f"RSS of a process with the imports only: {base['peak_mb']:.0f} MB")  # fmt: skip
    print(f"{'file':<8} {'how':<34} {'bars/s':>12} {'seconds':>8} {'vs read_parquet':>16} {'peak RSS':>9}")
    for layout, path in files.items():
        ref = run("read_parquet", path)
        rows = [
            ("pl.read_parquet (whole file)", ref),
            ("read_parquet + sort + BarBatch", run("eager", path)),
            ("Reader, check pass first", run("reader", path)),
            ("Reader, checks as it goes (replay)", run("reader_streaming", path)),
        ]
        for name, m in rows:
            assert m["rows"] == args.rows, m
            rate = m["rows"] / m["seconds"]
            ratio = ref["seconds"] / m["seconds"]
            line = f"{layout:<8} {name:<34} {rate:>12,.0f} {m['seconds']:>8.2f} {ratio:>15.2f}x"
            print(f"{line} {m['peak_mb']:>6.0f} MB")


if __name__ == "__main__":
    main()
