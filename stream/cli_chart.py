"""`barwatch chart`: one symbol's bars, indicator lines and signals from bar files, as a PNG.

The engine runs over every bar up to --end (those before --start warm it up), so the chart
shows exactly the signals a replay of the same files says.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .bars import BarBatch
from .config import ConfigError, load_config

EXCHANGE_TZ = "America/New_York"
SIZE_LIMITS = {"width": (300, 8000), "height": (200, 6000)}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `barwatch chart`."""
    p = sub.add_parser(
        "chart",
        help="draw a symbol's bars, MAs, RSI and every signal as a PNG",
        description="Run the engine over bar files and draw one symbol: candles (or the close), "
        "the config's moving averages, volume, RSI with its bands and levels, and a marker for "
        "every signal (hollow: provisional, grey: retracted).",
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="bar files (Parquet, CSV, CSV.gz, Arrow); default: the bundled daily bars")
    p.add_argument("--symbol", required=True, help="the symbol to draw")
    p.add_argument("--start", help="first bar drawn (date, 'YYYY-MM-DD HH:MM' exchange time, or RFC 3339);"
                   " earlier bars warm the indicators up. Default: the first bar with every indicator")
    p.add_argument("--end", help="draw bars before this time (default: to the end of the data)")
    p.add_argument("--config", help="config.toml (default: the bundled one)")
    p.add_argument("--out", help="PNG to write (default: <SYMBOL>_chart.png in the current folder)")
    p.add_argument("--width", type=int, default=1600, help="pixels (default 1600)")
    p.add_argument("--height", type=int, default=900, help="pixels (default 900)")
    p.add_argument("--volume", action="store_true", help="add a volume pane")
    p.add_argument("--style", choices=("auto", "candles", "line"), default="auto",
                   help="candles, a close line, or auto: candles while they are wide enough to read")
    p.add_argument("--tz", default=EXCHANGE_TZ,
                   help=f"zone for naive times in files and options, and for labels (default {EXCHANGE_TZ})")
    p.add_argument("--skip-bad", action="store_true", help="leave out bad rows (counted on stderr) instead of"
                   " stopping at the first")
    p.set_defaults(func=main)


class _Fail(Exception):
    """A one-line reason to stop with exit code 2."""


def _fail(msg: str) -> int:
    print(f"barwatch chart: {msg}", file=sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    """Read, run, draw, write; bad input is one line on stderr and exit code 2."""
    try:
        return _run(args)
    except _Fail as e:
        return _fail(str(e))


def _concat(batches: list[BarBatch]) -> BarBatch:
    """One symbol's batches as one batch."""
    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in batches])

    names = ("t", "open", "high", "low", "close", "volume", "trade_count", "vwap", "kind")
    cols = {k: cat(k) for k in names}
    return BarBatch([batches[0].symbols[0]], np.zeros(len(cols["t"]), dtype=np.int64), **cols)


def _run(args: argparse.Namespace) -> int:
    from replay.store import BadData, Reader, default_data, infer_timeframe, parse_time

    from .chart import ChartError, draw, label_time, latest, prepare

    for key, (lo, hi) in SIZE_LIMITS.items():
        v = getattr(args, key)
        if not lo <= v <= hi:
            raise _Fail(f"--{key} {v}: must be between {lo} and {hi} pixels")
    symbol = args.symbol.strip().upper()
    if not symbol:
        raise _Fail("--symbol: empty")
    out = Path(args.out) if args.out else Path(f"{symbol}_chart.png")
    if out.suffix.lower() != ".png":
        raise _Fail(f"--out {args.out}: must name a .png file")
    if not out.resolve().parent.is_dir():
        raise _Fail(f"--out {out}: no such folder {out.resolve().parent}")
    try:
        settings = load_config(args.config)
    except ConfigError as e:
        raise _Fail(str(e)) from None
    try:
        start = parse_time(args.start, args.tz) if args.start else None
        end = parse_time(args.end, args.tz) if args.end else None
    except ValueError as e:
        raise _Fail(str(e)) from None
    if start is not None and end is not None and start >= end:
        raise _Fail(f"--start {args.start} is not before --end {args.end}")
    paths = args.paths or [default_data()]
    shown = ", ".join(str(p) for p in paths)

    try:  # every bar up to --end: the ones before --start warm the indicators up
        reader = Reader(paths, symbols=[symbol], end=end, skip_bad=args.skip_bad, tz=args.tz)
        batches = [b for b in reader if len(b)]
        if reader.skipped:
            print(f"barwatch chart: {shown}: {reader.describe_skips()}", file=sys.stderr)
        if not batches:
            everything = Reader(paths, skip_bad=args.skip_bad, tz=args.tz)
            everything.prepare()
            have = everything.symbols_seen
            if symbol not in have:
                listed = ", ".join(sorted(have)) or "none"
                raise _Fail(f"symbol {symbol!r} is not in {shown} (symbols: {listed})")
            raise _Fail(f"no {symbol} bars in {shown} before --end {args.end}")
    except BadData as e:
        raise _Fail(str(e)) from None
    except ValueError as e:  # the reader's own argument checks
        raise _Fail(str(e)) from None
    batch = _concat(batches)
    timeframe = infer_timeframe(batch) or settings.timeframe
    try:
        data = prepare(batch, batch.symbols[0], settings, start, end, timeframe=timeframe, tz=args.tz)
    except ChartError as e:
        raise _Fail(str(e)) from None
    chart = draw(data, args.width, args.height, volume=args.volume, style=args.style)
    try:
        chart.save(str(out))
    except OSError as e:
        raise _Fail(f"--out {out}: cannot write: {e.strerror or e}") from None
    first, last = (label_time(int(data.t[i]), timeframe, args.tz) for i in (data.i0, data.i1 - 1))
    print(f"wrote {out} ({args.width}x{args.height}): {data.symbol} {timeframe} {first}..{last}, "
          f"{data.i1 - data.i0} bars, {len(latest(data.events))} signals")
    return 0


if __name__ == "__main__":  # python -m stream.cli_chart ... (the same as `barwatch chart ...`)
    _p = argparse.ArgumentParser(prog="barwatch")
    add_parser(_p.add_subparsers(dest="command"))
    _a = _p.parse_args(["chart", *sys.argv[1:]])
    sys.exit(_a.func(_a))
