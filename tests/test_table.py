"""The live table: rendered into a recording rich Console (content, widths 80 and 120), column
names from the config, the spread arrow, the Board's last signals, and the redraw timer."""

from __future__ import annotations

import asyncio
import io
import re

import pytest
from rich.console import Console

from stream.bars import BarBatch
from stream.config import load_config, parse_config
from stream.engine import Engine
from stream.outputs.table import Board, Columns, LiveTable, Signal, Stats, render
from stream.runner import Session


@pytest.fixture(scope="module")
def run(daily):
    """The engine after the bundled daily bars, with a Board that saw every event."""
    engine = Engine()
    board = Board(engine, Columns.from_settings(load_config()), lambda: Stats(
        source="bundled daily bars", pace="50 bars/s", timeframe="1Day", bars=len(daily), events=5843,
        lag_s=0.02, clients=3, skipped=2))
    batch = BarBatch.from_polars(daily)
    events = []
    for i in range(0, len(batch), 3000):  # blocks of columns, as the runner writes them
        block = engine.step(batch.rows(i, i + 3000))
        board.write(block, b"")
        events += block
    return engine, board, events


def shown(renderable, width: int) -> list[str]:
    c = Console(width=width, record=True, force_terminal=True, color_system="truecolor", file=io.StringIO())
    c.print(renderable)
    return c.export_text().splitlines()


def cell_width(line: str) -> int:
    return Console().measure(line).maximum if line else 0


@pytest.mark.parametrize("width", [80, 120])
def test_table_fits_the_width_and_shows_each_symbol(run, width):
    engine, board, events = run
    lines = shown(board.frame(width, 40), width)
    assert max(len(x.rstrip()) for x in lines) <= width
    text = "\n".join(lines)
    for head in ("symbol", "close", "chg%", "sma10", "sma50", "spread", "rsi14", "last signal", "age"):
        assert head in text
    for sym in ("AAPL", "FB", "GOOG", "IBM", "MSFT"):
        snap = engine.snapshot(sym)
        row = next(x for x in lines if x.startswith(sym + " "))
        assert f"{snap['close']:,.2f}" in row
        assert f"{snap['indicators']['sma50']:,.2f}" in row
        last = [e for e in events if e.symbol == sym][-1]
        assert last.rule[:8] in row  # the last signal's rule (possibly cut with an ellipsis at 80)
    assert "2013-03-01" in lines[0]  # the latest bar's date in the title
    footer = " ".join(x.strip() for x in lines[-3:]).replace("\u00a0", " ")
    for part in ("bundled daily bars", "50 bars/s", "12,154 bars", "5,843 events", "lag 0.02s",
                 "3 fan-out clients", "2 skipped rows"):
        assert part in footer


def test_wide_table_has_zone_and_full_kinds(run):
    engine, board, events = run
    lines = shown(board.frame(120, 40), 120)
    aapl = next(x for x in lines if x.startswith("AAPL "))
    snap = engine.snapshot("AAPL")
    assert snap["zones"]["rsi_bands"] in aapl
    last = [e for e in events if e.symbol == "AAPL"][-1]
    assert f"{last.rule} {last.kind}" in aapl
    assert "2013-03-01" in aapl and f"{snap['indicators']['rsi14']:.1f}" in aapl
    narrow = next(x for x in shown(board.frame(80, 40), 80) if x.startswith("AAPL "))
    assert snap["zones"]["rsi_bands"] not in narrow and "03-01" in narrow


def test_rows_are_limited_to_the_height_in_the_chosen_order(run):
    engine, board, _ = run
    rows, n = board.rows(2)
    assert n == 5 and [s["symbol"] for s, _ in rows] == ["AAPL", "FB"]
    board2 = Board(engine, board.cols, board.stats, order=["MSFT", "IBM", "NOPE"])
    rows, _ = board2.rows(10)
    assert [s["symbol"] for s, _ in rows] == ["MSFT", "IBM"]


def test_board_keeps_each_symbols_last_event(run):
    _, board, events = run
    for sym in ("AAPL", "GOOG"):
        last = [e for e in events if e.symbol == sym][-1]
        sig = board.signal(sym)
        assert (sig.rule, sig.kind, sig.state) == (last.rule, last.kind, last.state)


def snap(symbol="X", fast=10.0, slow=9.0, pfast=9.0, pslow=9.0, rsi=55.0, t=5 * 86400 * 10**9):
    return {"symbol": symbol, "time": "1970-01-06T00:00:00Z", "t": t, "close": 10.0, "change_pct": 1.0,
            "indicators": {"sma10": fast, "sma50": slow, "rsi14": rsi},
            "previous": {"sma10": pfast, "sma50": pslow}, "zones": {}}


def arrow_of(line: str) -> str:
    m = re.search(r"%([▲▼•])", line)
    assert m, line
    return m.group(1)


def test_spread_arrow_follows_the_spread_not_the_averages():
    cols = Columns("sma10", "sma50", "rsi14")
    st = Stats(timeframe="1Day")
    up = shown(render([(snap(fast=10, slow=9, pfast=9.5, pslow=9), None)], st, cols), 80)
    down = shown(render([(snap(fast=10, slow=9.8, pfast=9.9, pslow=9.5), None)], st, cols), 80)  # both rise
    flat = shown(render([(snap(fast=10, slow=9, pfast=9.5, pslow=8.5), None)], st, cols), 80)
    assert arrow_of(next(x for x in up if x.startswith("X "))) == "▲"
    assert arrow_of(next(x for x in down if x.startswith("X "))) == "▼"
    assert arrow_of(next(x for x in flat if x.startswith("X "))) == "•"


def test_rsi_zone_without_a_bands_rule_uses_30_70_and_signal_age():
    cols = Columns("sma10", "sma50", "rsi14")
    sig = Signal("ma_cross", "cross_up", "provisional", 2 * 86400 * 10**9, {})
    lines = shown(render([(snap(rsi=75.0), sig), (snap("Y", rsi=20.0), None)], Stats(timeframe="1Day"), cols,
                         width=120), 120)
    x = next(x for x in lines if x.startswith("X "))
    assert "overbought" in x and "ma_cross cross_up?" in x and x.rstrip().endswith("3d")
    assert "oversold" in next(x for x in lines if x.startswith("Y "))


def test_a_forming_bar_is_marked_in_its_time():
    cols = Columns("sma10", "sma50", "rsi14")
    rows = [(snap("X"), None), ({**snap("Y"), "forming": True}, None)]
    lines = shown(render(rows, Stats(timeframe="1Day"), cols), 80)
    assert "01-06 " in next(x for x in lines if x.startswith("X "))
    assert "01-06… " in next(x for x in lines if x.startswith("Y "))


def test_column_names_come_from_the_config_and_fall_back():
    s = parse_config("""
[indicators.ema_fast]
type = "ema"
period = 12
[indicators.sma_slow]
type = "sma"
period = 26
[indicators.sma_fast]
type = "sma"
period = 5
[indicators.myrsi]
type = "rsi"
period = 9
""")
    cols = Columns.from_settings(s)
    assert (cols.fast, cols.slow, cols.rsi, cols.bands) == ("ema_fast", "sma_slow", "myrsi", None)
    engine = Engine(s)
    engine.process(BarBatch.from_bars([]))
    none = Columns.from_settings(parse_config(""))
    assert (none.fast, none.slow, none.rsi) == (None, None, None)
    lines = shown(render([({"symbol": "Q", "time": None, "t": None, "close": None, "change_pct": None,
                            "indicators": {}, "zones": {}}, None)], Stats(timeframe="1Min"), none), 80)
    assert "Q" in "\n".join(lines) and "ma" in lines[1] and "rsi" in lines[1]


def test_live_table_redraws_on_its_timer_not_per_batch(daily):
    """Thousands of one-time batches, the table on a (fake-terminal) console: draws stay at the
    timer's rate and the final frame shows the end state."""
    batch = BarBatch.from_polars(daily)
    engine = Engine()
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, height=30)
    session = Session(engine, [])
    board = Board(engine, Columns.from_settings(engine.config),
                  lambda: Stats(timeframe="1Day", bars=session.bars, events=session.events))
    session.outputs.append(board)
    live = LiveTable(console, board.frame, fps=10)

    async def feed():
        t = batch.t
        cuts = [0, *[i for i in range(1, len(t)) if t[i] != t[i - 1]], len(t)]
        for i, j in zip(cuts[:-1], cuts[1:], strict=False):
            yield batch.rows(i, j)

    async def main():
        live.start()
        await session.run(feed())
        await live.stop()

    asyncio.run(main())
    assert session.batches > 3000
    assert 1 <= live.draws <= session.elapsed * 10 + 2
    assert "MSFT" in out.getvalue() and "2013-03-01" in out.getvalue()
