"""`barwatch chart`: the drawn markers are the engine's events, the lines the engine's values,
the PNG has the asked size, and bad input is one line with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest
from matplotlib.lines import Line2D

from stream.bars import FINAL, FORMING, BarBatch
from stream.chart import RETRACTED, ChartError, draw, prepare, to_ns
from stream.config import load_config, parse_config
from stream.engine import Engine

DATA = Path(__file__).resolve().parent.parent / "stream" / "data" / "stocks_AAPL_FB_GOOG_IBM_MSFT_2000-2013.csv.gz"
START, END = to_ns("2011-06-01T00:00:00Z"), to_ns("2013-03-01T00:00:00Z")


@pytest.fixture(scope="module")
def settings():
    return load_config()


@pytest.fixture(scope="module")
def aapl_batch(aapl: pl.DataFrame) -> BarBatch:
    return BarBatch.from_polars(aapl)


@pytest.fixture(scope="module")
def chart(aapl_batch, settings):
    return draw(prepare(aapl_batch, "AAPL", settings, START, END), 1400, 800, volume=True)


def _last_words(events):
    last = {}
    for e in events:
        last.pop(e.id, None)
        last[e.id] = e
    return list(last.values())


def _expected(events, settings, t: np.ndarray) -> Counter:
    """(gid prefix, pane, x, y) of every point each event should put on the chart, worked
    out from the events' own values and the bars' times, not from the chart."""
    want: Counter = Counter()

    def x(time_: str) -> int:
        i = int(np.searchsorted(t, to_ns(time_)))
        assert i == len(t) or t[i] == to_ns(time_)  # on a bar (or the forming one after the last)
        return i

    def add(e, pane, xx, yy, part=""):
        want[(f"event:{e.rule}:{e.kind}:{e.state}{part}", pane, float(xx), round(float(yy), 9))] += 1

    for e in _last_words(events):
        r = settings.rules[e.rule]
        p = r.params
        osc = "osc" if r.type in ("bands", "divergence") else None
        if r.type == "cross":
            add(e, "price", x(e.time), e.values[p["a"]])
        elif r.type == "channel":
            add(e, "price", x(e.time), e.values["close"])
        elif r.type == "pending":
            add(e, "price", x(e.time) + 1, e.values["trigger_price"])
        elif r.type == "bands" and e.kind == "enter":
            add(e, osc, x(e.time), e.values[p["series"]])
        elif r.type == "bands":  # exit: on the level the zone was left through
            zf, zt = p["zones"].index(e.values["from"]), p["zones"].index(e.values["to"])
            add(e, osc, x(e.time), p["levels"][zf] if zt > zf else p["levels"][zf - 1])
        elif r.type == "level":
            s = p["series"]
            add(e, "osc" if settings.indicators.get(s) and settings.indicators[s].type == "rsi" else "price",
                x(e.time), e.values[s])
        elif r.type == "divergence":
            o = p["oscillator"]
            for n in ("1", "2"):
                xx = x(e.values[f"pivot{n}_time"])
                add(e, "price", xx, e.values[f"pivot{n}_price"], ":price")
                add(e, osc, xx, e.values[f"pivot{n}_{o}"], ":osc")
        else:
            raise AssertionError(f"no expectation for rule type {r.type}")
    return want


def _drawn(ch) -> Counter:
    """The same tuples read back from the chart's event artists."""
    pane = {id(ax): name for name, ax in ch.axes.items()}
    got: Counter = Counter()
    for gid, art in ch.artists.items():
        if not gid.startswith("event:"):
            continue
        assert isinstance(art, Line2D)
        rule, kind, state = gid.split(":")[1:4]
        part = ":" + gid.split(":")[4] if gid.split(":")[-1] in ("price", "osc") else ""
        for xx, yy in zip(art.get_xdata(), art.get_ydata(), strict=True):
            if np.isnan(xx):
                continue
            got[(f"event:{rule}:{kind}:{state}{part}", pane[id(art.axes)], float(xx), round(float(yy), 9))] += 1
    return got


def test_markers_are_the_events_of_the_same_run(chart, aapl_batch, settings):
    events = Engine(settings).process(aapl_batch)
    t = chart.data.t
    lo = t[chart.data.i0]
    in_range = [e for e in events if lo <= to_ns(e.time) < END]
    assert chart.data.events == in_range  # the chart's run is the engine's run
    want = _expected(in_range, settings, t)
    got = _drawn(chart)
    assert got == want
    kinds = {k[0].split(":")[1] + ":" + k[0].split(":")[2] for k in want}
    assert {"ma_cross:cross_up", "ma_cross:cross_down", "rsi_bands:enter", "rsi_bands:exit",
            "support_break:break_below", "support_break:break_above", "ma_cross_pending:cross_pending",
            "rsi_divergence:bearish_divergence", "rsi_divergence:bullish_divergence"} <= kinds
    # and nothing outside the range was drawn
    assert min(k[2] for k in got) >= chart.data.i0 - 60  # divergence pivots may precede the range
    assert all(k[2] >= chart.data.i0 for k in got if not k[0].endswith(("price", "osc")))


def test_lines_equal_engine_values(chart, aapl_batch, settings):
    """The plotted SMA/RSI lines are the engine's numbers: at the events' bars and in snapshots."""
    d = chart.data
    for e in d.events:
        i = d.x_of(to_ns(e.time))
        for name in settings.indicators:
            if name in e.values and e.values[name] is not None:
                assert d.lines[name][i] == e.values[name], (e.id, name)
    for name in settings.indicators:  # what was drawn is the line over the charted bars
        y = chart.artists[f"line:{name}"].get_ydata()
        np.testing.assert_array_equal(y, d.lines[name][d.i0 : d.i1])
    # the engine stepped in chunks agrees at each chunk's last bar, over the whole file
    d = prepare(aapl_batch, "AAPL", settings)
    assert d.i0 == 49 and d.i1 == len(aapl_batch)  # charted from the first bar with an SMA 50
    eng = Engine(settings)
    n = len(aapl_batch)
    cuts = [49, 50, 51, 700, 2900, n]
    prev = 0
    for c in cuts:
        eng.process(_rows(aapl_batch, np.arange(prev, c)))
        prev = c
        snap = eng.snapshot("AAPL")
        assert snap["t"] == d.t[c - 1]
        for name, v in snap["indicators"].items():
            if name in d.lines:
                line = d.lines[name][c - 1]
            elif c < n:  # a channel's rolling low / high: the band at the next bar
                rule, which = name.split(".")
                line = d.channels[rule][0 if which == "lowest" else 1][c]
            else:
                continue
            assert v == line or (v is None and np.isnan(line)), (c, name)
    assert {k: v for k, v in d.snapshot["indicators"].items() if k in d.lines} == {
        k: float(v[-1]) for k, v in d.lines.items()}


def test_channel_band_is_the_rule_s_channel(chart):
    d = chart.data
    lo, hi = d.channels["support_break"]
    seen = 0
    for e in d.events:
        if e.rule == "support_break":
            i = d.x_of(to_ns(e.time))
            assert (lo[i], hi[i]) == (e.values["lowest_low"], e.values["highest_high"])
            seen += 1
    assert seen > 10


def _rows(b: BarBatch, idx: np.ndarray, kind: np.ndarray | None = None) -> BarBatch:
    return BarBatch(b.symbols, b.sym[idx], b.t[idx], b.open[idx], b.high[idx], b.low[idx], b.close[idx],
                    b.volume[idx], b.trade_count[idx], b.vwap[idx], b.kind[idx] if kind is None else kind)


def test_provisional_and_retracted_are_styled_apart(aapl_batch, settings):
    """Forming snapshots (at each bar's open, then a crash in a bar that never closes) give
    provisional and retracted signals; they are drawn where they belong, hollow or grey."""
    n = len(aapl_batch)
    idx = np.arange(n - 300, n)
    both = np.repeat(idx, 2)
    kind = np.tile(np.array([FORMING, FINAL], dtype=np.int8), len(idx))
    b = _rows(aapl_batch, both, kind)
    form = kind == FORMING
    b.high[form] = b.low[form] = b.close[form] = b.open[form]  # the bar as it opened
    last = _rows(aapl_batch, np.array([n - 1]), np.array([FORMING], dtype=np.int8))
    last.t[:] += 86_400 * 10**9
    last.close[:] = last.low[:] = last.open[:] = aapl_batch.close[-1] * 0.8
    batch = BarBatch(b.symbols, np.r_[b.sym, last.sym], np.r_[b.t, last.t], np.r_[b.open, last.open],
                     np.r_[b.high, last.high], np.r_[b.low, last.low], np.r_[b.close, last.close],
                     np.r_[b.volume, last.volume], kind=np.r_[kind, last.kind])
    ch = draw(prepare(batch, "AAPL", settings), 1200, 700)
    d = ch.data
    assert len(d.t) == 300  # forming snapshots are not bars
    states = Counter(e.state for e in _last_words(d.events))
    assert states["provisional"] > 0 and states["retracted"] > 0 and states["confirmed"] > 0
    assert _drawn(ch) == _expected(d.events, settings, d.t)
    for gid, art in ch.artists.items():
        if not gid.startswith("event:") or gid.endswith(("price", "osc")) or art.get_marker() == "_":
            continue
        state = gid.split(":")[3]
        face = art.get_markerfacecolor()
        if state == "confirmed":
            assert face != "none", gid
        else:
            assert face == "none", gid
        assert (art.get_color() == RETRACTED) == (state == "retracted"), gid
    for gid, art in ch.artists.items():
        if gid.startswith("event:") and gid.endswith(("price", "osc")):
            ls = {"confirmed": "-", "provisional": "--", "retracted": ":"}[gid.split(":")[3]]
            assert art.get_linestyle() == ls


def test_revised_bars_are_drawn_as_revised(aapl_batch, settings):
    """A final bar sent twice (a wrong close, then the right one) is one bar, its second
    version: lines as if the wrong one never came, its signals retracted."""
    n = len(aapl_batch)
    idx = np.arange(n - 300, n)
    twice = idx[::7]
    rows = np.sort(np.r_[idx, twice], kind="stable")  # each of these bars appears twice in a row
    b = _rows(aapl_batch, rows)
    first = np.r_[False, rows[1:] == rows[:-1]]  # the second copy is the revision...
    wrong = np.r_[first[1:], False]  # ...so the first copy gets the wrong close
    b.close[wrong] = b.close[wrong] * 1.08
    b.high[wrong] = np.maximum(b.high[wrong], b.close[wrong])
    d = prepare(b, "AAPL", settings)
    plain = prepare(_rows(aapl_batch, idx), "AAPL", settings)
    np.testing.assert_array_equal(d.t, plain.t)
    for name in settings.indicators:
        np.testing.assert_array_equal(d.lines[name], plain.lines[name])
    states = Counter(e.state for e in _last_words(d.events))
    assert states["retracted"] > 0
    ch = draw(d, 1000, 600)
    assert _drawn(ch) == _expected(d.events, settings, d.t)
    words = _last_words(d.events)
    assert {e.id for e in words if e.state == "confirmed"} == {e.id for e in plain.events}
    assert not {e.id for e in words if e.state == "retracted"} & {e.id for e in plain.events}


def test_other_symbols_in_the_data_change_nothing(chart, daily, settings):
    d = prepare(BarBatch.from_polars(daily), "AAPL", settings, START, END)
    assert d.events == chart.data.events
    np.testing.assert_array_equal(d.t, chart.data.t)


EXTRA = """
[indicators.ema20]
type = "ema"
period = 20

[rules.rsi_40_support]
type = "level"
series = "rsi14"
level = 40

[rules.close_500]
type = "level"
series = "close"
level = 500

[rules.close_ema]
type = "cross"
a = "close"
b = "ema20"
"""


def test_level_rules_and_other_mas(aapl_batch):
    root = Path(__file__).resolve().parent.parent
    settings = parse_config((root / "config.toml").read_text() + EXTRA, "extra.toml")
    ch = draw(prepare(aapl_batch, "AAPL", settings, START, END), 1400, 800)
    d = ch.data
    assert ch.artists["level:rsi_40_support"].axes is ch.axes["osc"]
    assert list(ch.artists["level:rsi_40_support"].get_ydata()) == [40, 40]
    assert ch.artists["level:close_500"].axes is ch.axes["price"]
    assert list(ch.artists["level:close_500"].get_ydata()) == [500, 500]
    ema = ch.artists["line:ema20"]
    assert ema.get_color() not in (ch.artists["line:sma10"].get_color(), ch.artists["line:sma50"].get_color())
    rules = Counter(e.rule for e in d.events)
    assert rules["rsi_40_support"] > 5 and rules["close_500"] > 0 and rules["close_ema"] > 5
    assert _drawn(ch) == _expected(d.events, settings, d.t)
    for e in d.events:
        if e.rule == "close_ema":
            assert d.lines["ema20"][d.x_of(to_ns(e.time))] == e.values["ema20"]


def test_png_has_the_asked_size(chart, tmp_path):
    small = draw(chart.data, 900, 500)
    out = tmp_path / "c.png"
    small.save(str(out))
    img = mpimg.imread(out)
    assert img.shape[:2] == (500, 900)
    assert img[..., :3].std() > 0.05  # something was drawn


def test_bad_ranges_are_one_line(aapl_batch, settings):
    with pytest.raises(ChartError, match=r"'XYZ' is not in the data \(symbols: AAPL\)"):
        prepare(aapl_batch, "XYZ", settings)
    with pytest.raises(ChartError, match=r"no AAPL bars from 2014-01-01 on \(the data has 2000-03-01..2013-03-01\)"):
        prepare(aapl_batch, "AAPL", settings, to_ns("2014-01-01T00:00:00Z"))
    with pytest.raises(ChartError) as e:
        prepare(aapl_batch, "AAPL", settings, to_ns("2000-03-10T00:00:00Z"))
    assert "sma50 needs 50 bars, 8 available up to 2000-03-10" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ChartError, match="ends before warm-up completes: sma50 needs 50 bars, 20 available"):
        prepare(aapl_batch, "AAPL", settings, None, int(aapl_batch.t[20]))


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", "chart", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_cli_writes_the_png(tmp_path):
    r = _cli(str(DATA), "--symbol", "IBM", "--start", "2012-01-01", "--end", "2012-07-01",
             "--width", "800", "--height", "450", "--volume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "IBM_chart.png"
    assert mpimg.imread(out).shape[:2] == (450, 800)
    assert "IBM_chart.png" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--symbol", "XYZ"], "'XYZ' is not in"),
    (["--symbol", "AAPL", "--start", "2014-01-01"], "no AAPL bars"),
    (["--symbol", "AAPL", "--start", "2000-03-10"], "sma50 needs 50 bars"),
    (["--symbol", "AAPL", "--start", "yesterday-ish"], "yesterday-ish"),
    (["--symbol", "AAPL", "--width", "10"], "--width"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    r = _cli(str(DATA), *args, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.png"))
