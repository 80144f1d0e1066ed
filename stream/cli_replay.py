"""`barwatch replay`: bars from files through the engine into JSON lines, the table and the fan-out.

Also what `barwatch` with no arguments runs: the bundled daily bars at a watchable pace.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from replay.clock import Pacer, parse_speed
from replay.store import BadData, Reader, default_data, infer_timeframe, parse_time, warm_kernels

from .cli_common import Bad, add_output_options, settle, warmed
from .cli_common import say as _say
from .config import TIMEFRAMES, ConfigError, Settings, load_config
from .engine import Engine, warm_up
from .outputs.fanout import FanOut, ServeError, parse_address
from .outputs.jsonl import JsonLines, OutputClosed, silence_stdout
from .outputs.table import Board, Columns, LiveTable, Stats
from .replay_feed import ReplayFeed
from .runner import Session

WATCHABLE = 50  # bars of the timeframe per second when no --speed is given and the table is on
CHUNK = 100_000  # bars a read: large enough that per-chunk costs vanish, small enough that one
# chunk's events (about 0.5 a bar, ~1 KB each as records) stay well under the memory budget
TF_SECONDS = {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}

HELP = """\
Replay bars from files (Parquet, CSV or .csv.gz, Arrow IPC; several files merge by time) through
the engine. With no PATH: the bundled daily bars of AAPL, FB, GOOG, IBM, MSFT (2000-2013).

Events: with --events - (or by default whenever stdout is not a terminal) every event is one
JSON line on stdout; --events FILE appends to FILE (flushed every batch). When stdout is a
terminal and --events is not given, events are written nowhere and the table draws on stdout.
The table draws on the terminal only (stderr when stdout carries events); --no-table turns it off.

Pace: --speed max (as fast as possible), or X times the bars' own spacing (60 turns a minute into
a second); a gap longer than 2 s of wall time (a night, a weekend) is cut to 2 s. Without --speed:
{WATCHABLE} bars of the timeframe per second while the table is on (the bundled 13 years of daily
bars take about a minute and a half), max otherwise. Lines are byte-identical at any speed.

Timeframe (the events' "timeframe"): --timeframe, else inferred from the data's bar spacing,
else the config's [engine] timeframe.

Fan-out: --serve HOST:PORT (port 0 picks one; the bound address is printed on stderr as
"serving ws://HOST:PORT") serves events to websocket clients while the replay runs
(?symbols=A,B&rules=NAME filter; ?since=SEQ first sends the kept events after SEQ, config [serve]
history; a client more than [serve] queue events behind is closed with code 1013; BARWATCH_TOKEN
requires ?token= or a Bearer header). Loopback only unless --serve-public. With --hold the server
stays up after the replay until Ctrl-C; --wait-clients N starts the replay once N clients are in.

Ctrl-C or SIGTERM stops cleanly with a summary line on stderr; bad input is one line on stderr
and exit status 2. Rows are checked as they stream (a file in time order is read once): a bad
row stops the replay where it is, after every event of the bars before it has been written.
""".replace("{WATCHABLE}", str(WATCHABLE))


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `barwatch replay`."""
    p = sub.add_parser("replay", help="replay bars from files through the engine (the default command)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="*", metavar="PATH", help="bar files (default: the bundled daily bars)")
    p.add_argument("--config", metavar="FILE", help="settings file (default: the repository's config.toml)")
    p.add_argument("--symbols", metavar="A,B", help="only these symbols (also names a one-symbol file)")
    p.add_argument("--start", metavar="T", help="first bar time (inclusive), e.g. 2012-01-03 or RFC 3339")
    p.add_argument("--end", metavar="T", help="last bar time (exclusive)")
    p.add_argument("--speed", metavar="X|max", help="pace: max, or X times real time (see above)")
    add_output_options(p)
    p.add_argument("--skip-bad", action="store_true", help="skip bad rows (counted and reported) "
                   "instead of stopping at the first")
    p.add_argument("--timeframe", choices=TIMEFRAMES, help="the bars' timeframe (default: inferred)")
    p.add_argument("--hold", action="store_true", help="with --serve: keep serving after the replay ends")
    p.add_argument("--wait-clients", type=int, default=0, metavar="N",
                   help="with --serve: start once N fan-out clients are connected")
    p.set_defaults(func=main)
    return p


@dataclasses.dataclass
class Plan:
    """Everything the command line decided, checked before anything runs."""

    settings: Settings
    paths: list[Path]
    symbols: list[str] | None
    start: int | None
    end: int | None
    speed: float | None  # None: max
    auto_speed: bool  # no --speed: watchable pace while the table is on
    events: str | None  # "-", a file, or None
    table: Console | None
    serve: tuple[str, int] | None


def plan(args: argparse.Namespace) -> Plan:
    """Check the arguments; raise Bad with one line on any mistake."""
    try:
        settings = load_config(args.config)
    except ConfigError as e:
        raise Bad(str(e)) from None
    paths = [Path(p) for p in args.paths] or [default_data()]
    for p in paths:
        if not p.is_file():
            raise Bad(f"{p}: no such file")

    def when(flag: str, text: str | None) -> int | None:
        if text is None:
            return None
        try:
            return parse_time(text)
        except Exception as e:  # noqa: BLE001 - any parse failure is the user's input
            raise Bad(f"{flag} {text}: {str(e).splitlines()[0] if str(e) else 'not a time'}") from None

    start, end = when("--start", args.start), when("--end", args.end)
    if start is not None and end is not None and start >= end:
        raise Bad(f"--start {args.start} is not before --end {args.end}")
    speed, auto = None, args.speed is None
    if args.speed is not None:
        try:
            speed = parse_speed(args.speed)
        except Exception as e:  # noqa: BLE001
            why = str(e).splitlines()[0] if str(e) else "expected max or a number"
            raise Bad(f"--speed {args.speed}: {why}") from None
    serve = None
    if args.serve is not None:
        try:
            serve = parse_address(args.serve, args.serve_public)
        except ServeError as e:
            raise Bad(str(e)) from None
    elif args.hold or args.wait_clients:
        raise Bad("--hold and --wait-clients need --serve")
    if args.wait_clients < 0:
        raise Bad("--wait-clients must be >= 0")
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None

    events = args.events
    if events is None and not sys.stdout.isatty():
        events = "-"
    table = None
    if not args.no_table:
        console = Console(stderr=True) if events == "-" else Console()
        if console.is_terminal:
            table = console
    return Plan(settings, paths, symbols, start, end, speed, auto, events, table, serve)


def main(args: argparse.Namespace) -> int:
    """Run the replay; the exit status (0 done or stopped, 2 bad input)."""
    try:
        p = plan(args)
    except Bad as e:
        _say(f"barwatch: {e}")
        return 2
    try:
        return asyncio.run(_run(p, args))
    except KeyboardInterrupt:  # before the loop's own handler was installed
        _say("barwatch: interrupted")
        return 130


async def _run(p: Plan, args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stopped: list[str] = []
    stop_event = asyncio.Event()
    work: asyncio.Task | None = None

    def on_signal(name: str) -> None:
        stopped.append(name)
        stop_event.set()
        if work is not None:
            work.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)

    # ---- outputs that can fail on bad input come first
    say = [_say]  # replaced by the table's console while it draws, so lines print above it
    jsonl: JsonLines | None = None
    try:
        if p.events == "-":
            jsonl = JsonLines.stdout()
        elif p.events is not None:
            jsonl = JsonLines.append(p.events)
    except OSError as e:
        _say(f"barwatch: --events {p.events}: {e.strerror or e}")
        return 2

    try:
        reader = Reader(p.paths, symbols=p.symbols, start=p.start, end=p.end, skip_bad=args.skip_bad,
                        chunk_rows=CHUNK, check_first=False)
    except (BadData, ValueError, OSError) as e:
        _say(f"barwatch: {str(e).splitlines()[0]}")
        return 2

    settings = p.settings
    # the kernels load while the first bars are read; stepping starts once the batch kernel has,
    # the one-bar and encoding kernels loading beside the first steps
    stepping = loop.create_future()

    def can_step() -> None:
        if not stepping.done():
            stepping.set_result(None)

    def settled(f: asyncio.Future) -> None:
        can_step()  # a warm-up that failed before stepping could start says so below
        if not f.cancelled():  # retrieved: a kernel that fails after stepping began fails again
            f.exception()  # where it is called

    def warm() -> None:  # the reading's kernels first: the first chunk needs them before a step
        warm_kernels()
        warm_up(settings, lambda: loop.call_soon_threadsafe(can_step))

    warm = loop.run_in_executor(None, warm)
    warm.add_done_callback(settled)
    feed = ReplayFeed(reader)
    t_read = time.perf_counter()  # the summary's elapsed counts reading (a pre-scan or check pass included)
    try:
        work = loop.create_task(feed.first())  # the pre-scan (or check pass), then the first chunk
        first = await work
    except (BadData, OSError, ValueError) as e:
        _say(f"barwatch: {str(e).splitlines()[0]}")
        return 2
    except asyncio.CancelledError:
        return _summary(None, reader, stopped, None)

    tf = args.timeframe or (infer_timeframe(first) if first is not None else None) or settings.timeframe
    if tf != settings.timeframe:
        settings = dataclasses.replace(settings, timeframe=tf)
    speed = p.speed
    pace = "max"
    if p.auto_speed and p.table is not None:
        speed = WATCHABLE * TF_SECONDS[tf]
        pace = f"{WATCHABLE} bars/s"
    elif speed is not None:
        pace = f"x{speed:g}"
    if speed is not None:
        feed.pacer = Pacer(speed)

    await warmed(stepping)
    if warm.done():
        warm.result()  # the batch kernel failed to load (or compile): said here
    engine = Engine(settings)
    session = Session(engine, [jsonl] if jsonl is not None else [], ahead=speed is None)
    outputs = session.outputs

    fan: FanOut | None = None
    if p.serve is not None:
        fan = FanOut(p.serve[0], p.serve[1], queue=settings.serve.queue, history=settings.serve.history)
        try:
            url = await fan.start()
        except OSError as e:
            _say(f"barwatch: --serve {args.serve}: {e.strerror or e}")
            return 2
        fan.on_cut = lambda msg: say[0](msg)
        outputs.append(fan)
        _say(f"serving {url}")

    live: LiveTable | None = None
    if p.table is not None:
        source = "bundled daily bars" if not args.paths else ", ".join(x.name for x in p.paths)

        def stats() -> Stats:
            return Stats(source=source, pace=pace, timeframe=tf, bars=session.bars, events=session.events,
                         lag_s=feed.lag(), clients=fan.clients if fan else None,
                         skipped=reader.skipped, state="stopped" if stopped else
                         "done" if session.ended else "running")

        board = Board(engine, Columns.from_settings(settings), stats, order=p.symbols)
        outputs.append(board)
        live = LiveTable(p.table, board.frame)

    code = 0
    closed_pipe = completed = False
    try:
        if fan is not None and args.wait_clients:
            _say(f"waiting for {args.wait_clients} fan-out client(s)")
            work = loop.create_task(fan.wait_clients(args.wait_clients))
            await work
        if not stopped:
            if live is not None:
                live.start()
                say[0] = lambda msg: p.table.print(msg, markup=False, highlight=False)
            settle()
            work = loop.create_task(session.run(feed, started=None if args.wait_clients else t_read))
            await work
            completed = True
            if fan is not None and args.hold and not stopped:
                say[0](f"replay done; still serving on port {fan.port} (Ctrl-C to stop)")
                await stop_event.wait()
    except asyncio.CancelledError:
        pass
    except OutputClosed:
        closed_pipe = True
    except (BadData, OSError, ValueError) as e:
        _say(f"barwatch: {str(e).splitlines()[0]}")
        code = 2
    finally:
        if live is not None:
            await live.stop()
            say[0] = _say
        for out in outputs:
            if isinstance(out, JsonLines):
                out.close()
        if fan is not None:
            await fan.stop(drain=0.5 if stopped else 5.0)
    if closed_pipe:
        silence_stdout()
        return 0
    if code:
        return code
    _summary(session, reader, [] if completed else stopped, fan)
    return 0


def _summary(session: Session | None, reader, stopped: list[str], fan: FanOut | None) -> int:
    """One line on stderr: how the run ended, bars, events, skipped rows, elapsed."""
    how = f"stopped by {stopped[0]}" if stopped else "done"
    bars = session.bars if session else 0
    events = session.events if session else 0
    elapsed = session.elapsed if session else 0.0
    parts = [f"replay {how}: {bars} bars", f"{events} events", reader.describe_skips(),
             f"{elapsed:.2f} s"]
    if session is not None and session.engine.rejected:
        parts.append(f"{session.engine.rejected} bars older than their symbol's last refused")
    if fan is not None:
        parts.append(f"fan-out: {fan.served} clients, {fan.cutoffs} cut off")
    _say(", ".join(parts))
    return 0

