"""`barwatch fetch`: historical bars from Alpaca's REST API into a Parquet file in the replay format."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .bars import BarBatch
from .config import ADJUSTMENTS, FEEDS, TIMEFRAMES, ConfigError, load_config
from .recorder import write_parquet

KEY_ENV, SECRET_ENV, DATA_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "BARWATCH_ALPACA_DATA_URL"
EXIT_BAD, EXIT_API = 2, 3

HELP = f"""\
Fetch bars of SYMBOLS (comma-separated) from Alpaca's historical bars endpoint through
alpaca-py (paging, feed, adjustment) and write them to a Parquet file in the replay format
(symbol, t, open, high, low, close, volume, trade_count, vwap, kind), readable by
`barwatch replay` and usable as a warm-start cache ([alpaca] cache_dir): the file records its
timeframe, feed and adjustment.

--start and --end: a date (midnight New York; a date --end means through that day), a
date-time in New York time, or RFC 3339 with an offset. Keys from {KEY_ENV} and {SECRET_ENV};
the endpoint from [alpaca] data_url or {DATA_ENV}. Progress on stderr.
Exit status: 0 written, 2 bad input or missing keys, 3 the API refused or failed (one line).
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `barwatch fetch`."""
    p = sub.add_parser("fetch", help="download historical bars to Parquet", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("symbols", metavar="SYMBOLS", help="comma-separated, e.g. IWM,SPY")
    p.add_argument("--start", required=True, metavar="T", help="first bar time")
    p.add_argument("--end", required=True, metavar="T", help="last bar time (inclusive)")
    p.add_argument("--timeframe", choices=TIMEFRAMES, default="1Min", help="bar timeframe (default 1Min)")
    p.add_argument("--feed", choices=FEEDS, help="data feed (default: [alpaca] feed)")
    p.add_argument("--adjustment", choices=ADJUSTMENTS, default="raw",
                   help="corporate-action adjustment (default raw, as streamed)")
    p.add_argument("--config", metavar="FILE", help="settings file (for [alpaca] feed and data_url)")
    p.add_argument("--out", metavar="FILE",
                   help="Parquet file to write (default: SYMBOLS-TF-START-END.parquet)")
    p.set_defaults(func=main)
    return p


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _when(text: str, end: bool) -> int:
    from replay.columns import parse_time

    t = parse_time(text)
    if end and re.fullmatch(r"\s*\d{4}-\d{2}-\d{2}\s*", text):
        from .timeframes import next_ny_midnight

        t = next_ny_midnight(t) - 1  # a date as --end: through the end of that day
    return t


def main(args: argparse.Namespace) -> int:
    """Fetch and write; the exit status."""
    try:
        settings = load_config(args.config)
    except ConfigError as e:
        _say(f"barwatch: {e}")
        return EXIT_BAD
    feed = args.feed or settings.alpaca.feed
    symbols = [s.strip() if feed == "crypto" else s.strip().upper() for s in args.symbols.split(",")]
    symbols = [s for s in dict.fromkeys(symbols) if s]
    if not symbols:
        _say("barwatch: SYMBOLS: no symbol given")
        return EXIT_BAD
    try:
        start, end = _when(args.start, False), _when(args.end, True)
    except ValueError as e:
        _say(f"barwatch: {str(e).splitlines()[0]}")
        return EXIT_BAD
    if start > end:
        _say(f"barwatch: --start {args.start} is after --end {args.end}")
        return EXIT_BAD
    missing = [k for k in (KEY_ENV, SECRET_ENV) if not os.environ.get(k)]
    if missing:
        _say(f"barwatch: missing {' and '.join(missing)} in the environment (your Alpaca API key id and "
             "secret; they are never read from files)")
        return EXIT_BAD
    name = "_".join(s.replace("/", "") for s in symbols[:5])
    out = Path(args.out or f"{name}-{args.timeframe}-{args.start[:10]}-{args.end[:10]}.parquet")
    if out.parent and not out.parent.is_dir():
        _say(f"barwatch: --out {out}: no such directory {out.parent}")
        return EXIT_BAD
    from .feeds.history import History, HistoryError  # alpaca-py (and pandas): only when fetching

    history = History(os.environ[KEY_ENV], os.environ[SECRET_ENV],
                      os.environ.get(DATA_ENV) or settings.alpaca.data_url, feed, args.adjustment)
    console = Console(stderr=True)
    columns = (TextColumn("fetch {task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rows]:,} bars"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task(f"{','.join(symbols[:3])}{'...' if len(symbols) > 3 else ''} "
                                     f"{args.timeframe}", total=None, rows=0)

            def step(done: int, total: int, rows: int) -> None:
                progress.update(task, completed=done, total=total, rows=rows)

            df = history.bars_chunked(symbols, args.timeframe, start, end, progress=step)
    except HistoryError as e:
        _say(f"barwatch: {e}")
        return EXIT_API
    except KeyboardInterrupt:
        _say("barwatch: interrupted; nothing written")
        return 130
    df = BarBatch.from_polars(df.sort(["t", "symbol"])).to_polars() if len(df) else df
    meta = {"timeframe": args.timeframe, "feed": feed, "adjustment": args.adjustment, "symbols": symbols,
            "source": "alpaca rest"}
    try:
        write_parquet(df, out, meta)
    except OSError as e:
        _say(f"barwatch: --out {out}: {e.strerror or e}")
        return EXIT_BAD
    got = df["symbol"].n_unique() if len(df) else 0
    none = [s for s in symbols if s not in set(df["symbol"].to_list())] if len(df) else symbols
    tail = f"; no bars for {', '.join(none)}" if none else ""
    _say(f"wrote {len(df):,} bars of {got} symbol(s) to {out} ({history.requests} requests){tail}")
    return 0
