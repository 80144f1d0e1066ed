"""`barwatch live`: Alpaca's market-data stream through the engine into the replay's outputs."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from pathlib import Path

from rich.console import Console

from .cli_common import Bad, add_output_options, settle, warmed
from .cli_common import say as _say
from .config import FEEDS, TIMEFRAMES, ConfigError, Settings, load_config
from .engine import Engine, warm_up
from .feeds.alpaca import StreamFatal
from .outputs.fanout import FanOut, ServeError, parse_address
from .outputs.jsonl import JsonLines, OutputClosed, silence_stdout
from .outputs.table import Board, Columns, LiveTable, Stats
from .recorder import Recorder, recover
from .runner import Session

KEY_ENV, SECRET_ENV = "APCA_API_KEY_ID", "APCA_API_SECRET_KEY"
STREAM_ENV, DATA_ENV = "BARWATCH_ALPACA_STREAM_URL", "BARWATCH_ALPACA_DATA_URL"
EXIT_BAD, EXIT_FATAL = 2, 3

HELP = f"""\
Watch live bars from Alpaca's market-data stream (websocket) and fire the config's rules as
bars arrive. With --timeframe 1Day (the seed config), minute bars build today's forming daily
bar: its signals are "provisional" during the day, then "confirmed" or "retracted" at the close.

Keys come only from the environment: {KEY_ENV} and {SECRET_ENV}. Endpoints: config [alpaca]
stream_url / data_url, overridden by {STREAM_ENV} and {DATA_ENV} (proxies, tests).

Before the first live bar each symbol is warmed up from local files (the --record folder and
[alpaca] cache_dir, same timeframe) and Alpaca's REST bars, so every indicator is converged.
Dropped connections and stalls reconnect with backoff; missed minutes are fetched from REST
and applied before newer live bars (their events carry "late": true).

Outputs are the replay's: --events FILE|- (JSON lines; stdout by default when it is not a
terminal), the table on the terminal (--no-table), --serve HOST:PORT (websocket fan-out).
--record DIR appends every bar stepped to DIR/session-*.arrows (crash-safe), compacted to
Parquet on exit: `barwatch replay` of it writes the same event lines.

Exit status: 0 stopped (Ctrl-C, SIGTERM), 2 bad input or missing keys, 3 the stream refused us
(auth failed, connection limit, plan limits): one line says why.
"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `barwatch live`."""
    p = sub.add_parser("live", help="watch Alpaca's live bars", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="settings file (default: the repository's config.toml)")
    p.add_argument("--symbols", metavar="A,B", help="symbols to watch (default: [alpaca] symbols)")
    p.add_argument("--feed", choices=FEEDS, help="data feed (default: [alpaca] feed)")
    p.add_argument("--timeframe", choices=TIMEFRAMES, help="bar timeframe (default: [engine] timeframe)")
    add_output_options(p)
    p.add_argument("--record", metavar="DIR", help="record every bar stepped into DIR (replayable)")
    p.set_defaults(func=main)
    return p


@dataclasses.dataclass
class Plan:
    settings: Settings
    symbols: list[str]
    feed: str
    key: str
    secret: str
    stream_url: str | None
    data_url: str | None
    events: str | None
    table: Console | None
    serve: tuple[str, int] | None
    record: Path | None


def plan(args: argparse.Namespace, env: dict[str, str] | None = None) -> Plan:
    """Check arguments, config and environment; raise Bad with one line on any mistake."""
    env = os.environ if env is None else env
    try:
        settings = load_config(args.config)
    except ConfigError as e:
        raise Bad(str(e)) from None
    if args.timeframe and args.timeframe != settings.timeframe:
        settings = dataclasses.replace(settings, timeframe=args.timeframe)
    feed = args.feed or settings.alpaca.feed
    if args.symbols is not None:
        symbols = [s.strip().upper() if feed != "crypto" else s.strip() for s in args.symbols.split(",")]
        symbols = [s for s in symbols if s]
        if not symbols:
            raise Bad("--symbols: no symbol given")
    else:
        symbols = list(settings.alpaca.symbols)
        if not symbols:
            raise Bad("no symbols: pass --symbols IWM,SPY or set [alpaca] symbols in the config")
    missing = [k for k in (KEY_ENV, SECRET_ENV) if not env.get(k)]
    if missing:
        raise Bad(f"missing {' and '.join(missing)} in the environment (your Alpaca API key id and "
                  "secret; they are never read from files)")
    serve = None
    if args.serve is not None:
        try:
            serve = parse_address(args.serve, args.serve_public)
        except ServeError as e:
            raise Bad(str(e)) from None
    record = None
    if args.record is not None:
        record = Path(args.record)
        if record.exists() and not record.is_dir():
            raise Bad(f"--record {args.record}: not a directory")
    events = args.events
    if events is None and not sys.stdout.isatty():
        events = "-"
    table = None
    if not args.no_table:
        console = Console(stderr=True) if events == "-" else Console()
        if console.is_terminal:
            table = console
    return Plan(settings, symbols, feed, env[KEY_ENV], env[SECRET_ENV],
                env.get(STREAM_ENV) or settings.alpaca.stream_url,
                env.get(DATA_ENV) or settings.alpaca.data_url, events, table, serve, record)


def main(args: argparse.Namespace) -> int:
    """Run until stopped; the exit status."""
    try:
        p = plan(args)
    except Bad as e:
        _say(f"barwatch: {e}")
        return EXIT_BAD
    try:
        return asyncio.run(_run(p))
    except KeyboardInterrupt:
        _say("barwatch: interrupted")
        return 130


async def _run(p: Plan) -> int:
    loop = asyncio.get_running_loop()
    stopped: list[str] = []
    work: asyncio.Task | None = None

    def on_signal(name: str) -> None:
        stopped.append(name)
        if work is not None:
            work.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)

    jsonl: JsonLines | None = None
    try:
        if p.events == "-":
            jsonl = JsonLines.stdout()
        elif p.events is not None:
            jsonl = JsonLines.append(p.events)
    except OSError as e:
        _say(f"barwatch: --events {p.events}: {e.strerror or e}")
        return EXIT_BAD

    recorder = None
    local: list[Path] = []
    if p.settings.alpaca.cache_dir:
        local.append(Path(p.settings.alpaca.cache_dir))
    if p.record is not None:
        try:
            p.record.mkdir(parents=True, exist_ok=True)
            for made in recover(p.record):
                _say(f"recovered {made} (left by an interrupted run)")
            recorder = Recorder(p.record, {"timeframe": p.settings.timeframe, "feed": p.feed,
                                           "symbols": p.symbols, "config": p.settings.path})
        except OSError as e:
            _say(f"barwatch: --record {p.record}: {e.strerror or e}")
            return EXIT_BAD
        local.append(p.record)

    settings = p.settings
    engine = Engine(settings)
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        _say(line)

    from .feeds.live import LiveFeed  # alpaca-py (and pandas): only when watching

    feed = LiveFeed(engine, p.symbols, p.key, p.secret, feed=p.feed, stream_url=p.stream_url,
                    data_url=p.data_url, stall_seconds=settings.alpaca.stall_seconds,
                    backoff_base=settings.alpaca.backoff_seconds, local=local, recorder=recorder, log=log)
    outputs: list = [jsonl] if jsonl is not None else []
    session = Session(engine, outputs)

    fan: FanOut | None = None
    if p.serve is not None:
        fan = FanOut(p.serve[0], p.serve[1], queue=settings.serve.queue, history=settings.serve.history)
        try:
            url = await fan.start()
        except OSError as e:
            _say(f"barwatch: --serve {p.serve[0]}:{p.serve[1]}: {e.strerror or e}")
            return EXIT_BAD
        fan.on_cut = _say
        outputs.append(fan)
        _say(f"serving {url}")

    live: LiveTable | None = None
    if p.table is not None:
        def stats() -> Stats:
            return Stats(source=f"alpaca {p.feed}", pace="live", timeframe=settings.timeframe,
                         bars=session.bars, events=session.events, lag_s=None,
                         clients=fan.clients if fan else None, skipped=sum(feed.counters.bad.values()),
                         state="stopped" if stopped else "reconnecting" if feed.stream._ws is None
                         else "live")

        board = Board(engine, Columns.from_settings(settings), stats, order=p.symbols)
        outputs.append(board)
        live = LiveTable(p.table, board.frame)

    code = 0
    closed_pipe = False
    try:
        if live is not None:
            live.start()
        await warmed(loop.run_in_executor(None, warm_up, settings))  # no live bar waits for a kernel
        settle()
        work = loop.create_task(session.run(feed))
        await work
    except asyncio.CancelledError:
        pass
    except StreamFatal as e:
        _say(f"barwatch: {e}")
        code = EXIT_FATAL
    except OutputClosed:
        closed_pipe = True
    finally:
        if live is not None:
            await live.stop()
        if jsonl is not None:
            jsonl.close()
        if fan is not None:
            await fan.stop(drain=0.5)
        if recorder is not None:
            made = recorder.close()
            if made is not None:
                _say(f"recorded {recorder.rows} bars to {made}")
    if closed_pipe:
        silence_stdout()
        return 0
    how = f"stopped by {stopped[0]}" if stopped else "ended" if not code else "failed"
    parts = [f"live {how}: {session.bars} bars stepped", f"{session.events} events", feed.summary()]
    if engine.rejected:
        parts.append(f"{engine.rejected} bars older than their symbol's last refused")
    parts.append(f"{session.elapsed:.1f} s")
    _say(", ".join(parts))
    return code
