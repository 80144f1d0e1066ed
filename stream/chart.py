"""Charts: one symbol's bars, the config's indicator lines and the engine's events, drawn
with matplotlib's Agg canvas (no display), the way traders read these signals.

`prepare` runs the engine over the bars (warm-up included) and computes the plotted lines
with the engine's own indicator steps, so a line and an event's value are the same number;
`draw` turns that into a Figure whose every event artist carries a gid naming its group:
`event:<rule>:<kind>:<state>[:<part>]`, x = bar index into `ChartData.t`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .bars import FINAL, BarBatch
from .config import RuleSpec, Settings
from .engine import Engine
from .events import Event
from .indicators import EMA, MAX, MIN, RSI, SMA
from .signals.common import KINDS

_CLASSES = {"sma": SMA, "ema": EMA, "rsi": RSI, "max": MAX, "min": MIN}
_FIELDS = ("open", "high", "low", "close", "volume")


class ChartError(Exception):
    """Input a chart cannot be drawn from, phrased as one line for the user."""


def to_ns(text: str) -> int:
    """An event's RFC 3339 UTC time -> ns since the epoch."""
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def label_time(ns: int, timeframe: str, tz: str = "UTC") -> str:
    """A bar time for people: the date of daily bars, else date and time in `tz`."""
    dt = datetime.fromtimestamp(ns / 1e9, ZoneInfo(tz))
    return dt.strftime("%Y-%m-%d" if timeframe == "1Day" else "%Y-%m-%d %H:%M")


@dataclass
class ChartData:
    """What a chart shows: the symbol's final bars (x = index), lines, events in range."""

    symbol: str
    settings: Settings
    t: np.ndarray  # bar start, ns UTC, of every final bar read (warm-up included)
    bars: dict[str, np.ndarray]  # open high low close volume, aligned with t
    lines: dict[str, np.ndarray]  # indicator name -> value per bar (NaN in warm-up)
    channels: dict[str, tuple[np.ndarray, np.ndarray]]  # rule -> (lowest, highest) of the N bars before
    events: list[Event]  # the engine's events whose bar is in [start, end), in order
    i0: int  # first charted bar
    i1: int  # one past the last charted bar
    snapshot: dict | None = None  # the engine's state after the last bar
    timeframe: str = "1Day"  # the bars' (for labels; events carry the config's)
    tz: str = "UTC"  # the zone times are shown in

    def x_of(self, ns: int) -> int:
        """The x (bar index) of a bar start time."""
        return int(np.searchsorted(self.t, ns))


def _final_bars(batch: BarBatch, sid: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The symbol's final bars as the engine keeps them: a repeated start revises the last
    bar, an older one is ignored, forming snapshots are not bars."""
    m = (batch.sym == sid) & (batch.kind == FINAL)
    t = batch.t[m]
    cols = {f: getattr(batch, f)[m] for f in _FIELDS}
    if len(t) and not np.all(np.diff(t) > 0):
        keep = np.ones(len(t), dtype=bool)
        last, at = np.iinfo(np.int64).min, -1
        for i, ti in enumerate(t):
            if ti > last:
                last, at = ti, i
            elif ti == last:  # a revision replaces the bar kept so far
                keep[at] = False
                at = i
            else:
                keep[i] = False
        t = t[keep]
        cols = {f: c[keep] for f, c in cols.items()}
    return t, cols


def _stepped(kind: str, period: int, src: np.ndarray) -> np.ndarray:
    """One indicator over a series, through the engine's own step kernel."""
    upd = _CLASSES[kind](period).update
    out = np.full(len(src), np.nan)
    for i in range(len(src)):
        v = upd(src[i])
        if v is not None:
            out[i] = v
    return out


def indicator_lines(settings: Settings, bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every configured indicator over the bars, equal to the engine's values bar by bar."""
    return {name: _stepped(s.type, s.period, bars[s.source]) for name, s in settings.indicators.items()}


def channel_lines(settings: Settings, bars: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, ...]]:
    """Each channel rule's lowest low and highest high of the N bars before each bar."""
    out = {}
    for r in settings.rules.values():
        if r.type == "channel":
            n = r.params["period"]
            lo = np.r_[np.nan, _stepped("min", n, bars[r.params["low"]])[:-1]]
            hi = np.r_[np.nan, _stepped("max", n, bars[r.params["high"]])[:-1]]
            out[r.name] = (lo, hi)
    return out


def warmup(settings: Settings, lines: dict[str, np.ndarray]) -> tuple[int, str]:
    """Bars needed before every indicator has a value, and the slowest indicator."""
    need, slowest = 0, ""
    for name, v in lines.items():
        ok = np.flatnonzero(~np.isnan(v))
        spec = settings.indicators[name]
        n = int(ok[0]) + 1 if len(ok) else spec.period + (1 if spec.type == "rsi" else 0)
        if n > need:
            need, slowest = n, name
    return need, slowest


def prepare(batch: BarBatch, symbol: str, settings: Settings, start: int | None = None,
            end: int | None = None, timeframe: str | None = None, tz: str = "UTC") -> ChartData:
    """Run the engine over `batch` for `symbol`; keep what lies in [start, end).

    Bars before `start` warm the indicators up; without `start` the chart begins at the
    first bar where every indicator has a value. Raises ChartError (one line) when the
    symbol is absent, the range is empty or starts before warm-up completes."""
    tf = timeframe or settings.timeframe

    def when(ns: int) -> str:
        return label_time(ns, tf, tz)

    if symbol not in batch.symbols:
        have = ", ".join(sorted(batch.symbols)) or "none"
        raise ChartError(f"symbol {symbol!r} is not in the data (symbols: {have})")
    sid = batch.symbols.index(symbol)
    t, bars = _final_bars(batch, sid)
    span = f"{when(int(t[0]))}..{when(int(t[-1]))}" if len(t) else "no final bars"
    if end is not None:
        cut = int(np.searchsorted(t, end))
        t, bars = t[:cut], {f: c[:cut] for f, c in bars.items()}
    i1 = len(t)
    i0 = int(np.searchsorted(t, start)) if start is not None else 0
    if i0 >= i1:
        lo = when(start) if start is not None else ""
        rng = f"from {lo} on" if end is None else f"in {lo}..{when(end)} (end excluded)"
        raise ChartError(f"no {symbol} bars {rng} (the data has {span})")
    lines = indicator_lines(settings, bars)
    need, slowest = warmup(settings, lines)
    if start is not None and i0 + 1 < need:
        first = f"; the first bar with every value is {when(int(t[need - 1]))}" if need <= i1 else ""
        raise ChartError(f"{symbol}: the range starts before warm-up completes: {slowest} needs {need} bars,"
                         f" {i0 + 1} available up to {when(int(t[i0]))}{first}")
    if need > i1:
        raise ChartError(f"{symbol}: the range ends before warm-up completes: {slowest} needs {need} bars,"
                         f" {i1} available up to {when(int(t[-1]))}")
    i0 = max(i0, need - 1)

    # the engine sees every row of the symbol: forming snapshots and revisions included
    rows = np.flatnonzero(batch.sym == sid)
    if end is not None:
        rows = rows[batch.t[rows] < end]
    one = BarBatch([symbol], np.zeros(len(rows), dtype=np.int64), batch.t[rows], batch.open[rows],
                   batch.high[rows], batch.low[rows], batch.close[rows], batch.volume[rows],
                   batch.trade_count[rows], batch.vwap[rows], batch.kind[rows], batch.late)
    engine = Engine(settings)
    events = engine.process(one)
    lo = int(t[i0])
    kept = [e for e in events if lo <= to_ns(e.time) and (end is None or to_ns(e.time) < end)]
    return ChartData(symbol, settings, t, bars, lines, channel_lines(settings, bars), kept, i0, i1,
                     engine.snapshot(symbol), tf, tz)


# ---- drawing ------------------------------------------------------------------------------

BG, GRID, INK, MUTED = "#ffffff", "#e8e8e8", "#2b2b2b", "#6b6b6b"
CANDLE = "#4d4d4d"
UP, DOWN = "#1a9641", "#d7191c"
BREAK_UP, BREAK_DOWN = "#00838f", "#ef6c00"
RETRACTED = "#a8a8a8"
MA_COLOURS = {10: "#e53935", 50: "#1e63d6", 200: "#212121"}
PALETTE = ["#8e24aa", "#6d4c41", "#c2185b", "#0097a7", "#f9a825", "#546e7a"]
LEVEL = "#37474f"
CROSS_MARKERS = [("^", "v"), ("P", "X"), (">", "<"), ("*", "h")]  # a shape pair per cross rule
OSC_COLOURS = ["#7e57c2", "#00897b", "#6d4c41"]
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Chart:
    """A drawn chart: its Figure, panes by name ("price", "volume", "osc"), artists by gid."""

    figure: Figure
    axes: dict[str, Axes]
    artists: dict[str, object] = field(default_factory=dict)
    data: ChartData | None = None

    def save(self, path: str) -> None:
        """Write the PNG at exactly the figure's pixel size."""
        self.figure.savefig(path, dpi=self.figure.dpi, facecolor=self.figure.get_facecolor())


def latest(events: list[Event]) -> list[Event]:
    """Each signal's latest word: a later event with the same id supersedes an earlier one."""
    last: dict[str, Event] = {}
    for e in events:
        last.pop(e.id, None)
        last[e.id] = e
    return list(last.values())


def _style(state: str, colour: str) -> dict:
    """Marker style by state: confirmed filled, provisional hollow, retracted grey hollow."""
    if state == "confirmed":
        return {"color": colour, "markerfacecolor": colour, "markeredgecolor": "#111111",
                "markeredgewidth": 0.6}
    if state == "provisional":
        return {"color": colour, "markerfacecolor": "none", "markeredgecolor": colour,
                "markeredgewidth": 1.4}
    return {"color": RETRACTED, "markerfacecolor": "none", "markeredgecolor": RETRACTED,
            "markeredgewidth": 1.2}


_LINESTYLE = {"confirmed": "-", "provisional": "--", "retracted": ":"}


def _suffix(state: str) -> str:
    return "" if state == "confirmed" else f" ({state})"


def _boxes(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, half: float) -> np.ndarray:
    """Rectangles [x-half, x+half] x [lo, hi] as a (n, 4, 2) vertex array."""
    v = np.empty((len(x), 4, 2))
    v[:, 0, 0] = v[:, 1, 0] = x - half
    v[:, 2, 0] = v[:, 3, 0] = x + half
    v[:, 0, 1] = v[:, 3, 1] = lo
    v[:, 1, 1] = v[:, 2, 1] = hi
    return v


def _ticks(t: np.ndarray, x0: int, tz: str, most: int, timeframe: str) -> tuple[list[int], list[str]]:
    """Ticks at calendar boundaries (years, half-years, quarters, months, weeks, days,
    hours, quarter-hours): the finest kind of which at most `most` fall in view."""
    s = pl.Series("t", t).cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(tz)
    y, mo, d = s.dt.year().to_numpy(), s.dt.month().to_numpy(), s.dt.day().to_numpy()
    hh, mm, wk = s.dt.hour().to_numpy(), s.dt.minute().to_numpy(), s.dt.week().to_numpy()
    day = (y * 12 + mo - 1) * 31 + d - 1

    def month(i: int) -> str:
        return f"{MONTHS[mo[i] - 1]} {y[i]}" if mo[i] == 1 else MONTHS[mo[i] - 1]

    levels = [
        (y, lambda i: f"{y[i]}"),
        (y * 2 + (mo - 1) // 6, month),
        (y * 4 + (mo - 1) // 3, month),
        (y * 12 + mo, month),
        (y * 54 + wk, lambda i: f"{MONTHS[mo[i] - 1]} {d[i]}"),
        (day, lambda i: f"{MONTHS[mo[i] - 1]} {d[i]}"),
    ]
    if timeframe != "1Day":
        minutes = (day * 24 + hh) * 60 + mm
        for step in (360, 180, 120, 60, 30, 15, 5, 1):  # minutes; boundaries in the day's clock
            levels.append((minutes // step, lambda i: f"{hh[i]:02d}:{mm[i]:02d}"))
    best: tuple[list[int], list[str]] = ([x0], [levels[0][1](0)])
    for key, fmt in levels:
        at = np.flatnonzero(np.diff(key)) + 1
        if len(at) > most:
            break
        if len(at) >= 2 or len(best[0]) < 2:
            best = ([int(i) + x0 for i in at], [fmt(int(i)) for i in at])
    ticks, labels = best
    if timeframe != "1Day":  # name the day at the first tick of each day
        for k, i in enumerate(np.array(ticks) - x0):
            if ":" in labels[k] and (k == 0 or day[i] != day[ticks[k - 1] - x0]):
                labels[k] = f"{MONTHS[mo[i] - 1]} {d[i]}\n{labels[k]}"
    gap = 0.45 * len(t) / max(most, 1)  # irregular boundaries (a session's 09:30) can crowd
    kept = [k for k in range(len(ticks)) if k == 0 or ticks[k] - ticks[k - 1] >= gap]
    return [ticks[k] for k in kept], [labels[k] for k in kept]


class _Drawer:
    """Draws one ChartData; holds the panes and the gid -> artist registry."""

    def __init__(self, data: ChartData, axes: dict[str, Axes], reg: dict[str, object],
                 scale: float = 1.0) -> None:
        self.data, self.axes, self.reg = data, axes, reg
        self.inds = data.settings.indicators
        self.scale = scale  # marker size factor: smaller when bars are packed tight

    def pane_of(self, series: object) -> str:
        """The pane a series is drawn in: RSI below, volume in its own, prices on top."""
        if series in self.inds:
            spec = self.inds[series]
            if spec.type == "rsi":
                return "osc"
            return "volume" if spec.source == "volume" else "price"
        return "volume" if series == "volume" else "price"

    def add(self, gid: str, artist: object) -> object:
        artist.set_gid(gid)
        self.reg[gid] = artist
        return artist

    def points(self, pane: str, gid: str, x, y, marker: str, size: float, state: str, colour: str,
               label: str, z: int = 8) -> None:
        ax = self.axes.get(pane)
        if ax is None:
            return
        (art,) = ax.plot(x, y, linestyle="none", marker=marker, markersize=size * self.scale, zorder=z,
                         label=label + _suffix(state), **_style(state, colour))
        self.add(gid, art)

    # -- one function per rule type -----------------------------------------------------------
    def cross(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        a = r.params["a"]
        up = kind == "cross_up"
        same = [q.name for q in self.data.settings.rules.values() if q.type == "cross"]
        marks = CROSS_MARKERS[same.index(r.name) % len(CROSS_MARKERS)]
        self.points(self.pane_of(a), gid, x, [e.values[a] for e in evs], marks[0 if up else 1], 10,
                    state, UP if up else DOWN, f"{r.name}: {'up' if up else 'down'}")

    def level(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        s = r.params["series"]
        up = kind == "break_above"
        self.points(self.pane_of(s), gid, x, [e.values[s] for e in evs], "s", 5.5, state,
                    BREAK_UP if up else BREAK_DOWN, f"{r.name}: {kind.replace('_', ' ')}")

    def channel(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        up = kind == "break_above"
        self.points("price", gid, x, [e.values["close"] for e in evs], "D", 5.5, state,
                    BREAK_UP if up else BREAK_DOWN,
                    f"{r.name}: close {'above' if up else 'below'} {r.params['period']}-bar channel")

    def pending(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        """The close the next bar needs to cross: a tick at the next bar's x."""
        y = np.array([e.values["trigger_price"] for e in evs])
        up = np.array([e.values["direction"] == "up" for e in evs])
        for m, d in ((up, "up"), (~up, "down")):
            if m.any():
                st = _style(state, UP if d == "up" else DOWN)
                (art,) = self.axes["price"].plot(
                    x[m] + 1, y[m], linestyle="none", marker="_", markersize=14 * self.scale,
                    markeredgewidth=2.4, color=st["color"], zorder=8,
                    alpha=1.0 if state == "confirmed" else 0.7,
                    label=f"{r.name}: close to cross {d}{_suffix(state)}")
                self.add(f"{gid}:{d}", art)

    def bands(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        """enter: a triangle the way the series moved (extreme zones in colour) at its value;
        exit: a ring on the level the series left its zone through."""
        s = r.params["series"]
        pane = self.pane_of(s)
        zones, lv = r.params["zones"], r.params["levels"]
        zf = [zones.index(e.values["from"]) for e in evs]
        zt = [zones.index(e.values["to"]) for e in evs]
        if kind == "exit":
            y = [lv[f] if t > f else lv[f - 1] for f, t in zip(zf, zt, strict=True)]
            st_col = "#ffffff" if state == "confirmed" else MUTED
            self.points(pane, gid, x, y, "o", 4, state, st_col, f"{r.name}: exit (on the level)", z=7)
            if state == "confirmed":
                self.reg[gid].set_markeredgecolor(MUTED)
            return
        y = np.array([e.values[s] for e in evs])
        outer = {0: UP, len(zones) - 1: DOWN}
        keys = [("up" if t > f else "down", zones[t] if t in outer else "middle")
                for f, t in zip(zf, zt, strict=True)]
        for key in dict.fromkeys(keys):
            m = np.array([k == key for k in keys])
            d, zone = key
            colour = outer[zones.index(zone)] if zone != "middle" else MUTED
            label = f"{r.name}: enter {zone}" if zone != "middle" else f"{r.name}: enter a middle zone"
            self.points(pane, f"{gid}:{d}:{zone}", x[m], y[m], "^" if d == "up" else "v",
                        7 if zone != "middle" else 4.5, state, colour, label)

    def divergence(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        """A line joining the two pivots on the price pane and on the oscillator's."""
        p, o = r.params["price"], r.params["oscillator"]
        st = _style(state, DOWN if kind == "bearish_divergence" else UP)
        for part, key, series in (("price", "price", p), ("osc", o, o)):
            ax = self.axes.get(self.pane_of(series))
            if ax is None:
                continue
            xx: list[float] = []
            yy: list[float] = []
            for e in evs:
                xx += [self.data.x_of(to_ns(e.values["pivot1_time"])),
                       self.data.x_of(to_ns(e.values["pivot2_time"])), np.nan]
                yy += [e.values[f"pivot1_{key}"], e.values[f"pivot2_{key}"], np.nan]
            label = f"{r.name}: {kind.split('_')[0]}{_suffix(state)}" if part == "price" else ""
            (art,) = ax.plot(xx, yy, linewidth=1.8, linestyle=_LINESTYLE[state], marker="o",
                             markersize=3 * self.scale, color=st["color"], zorder=6, label=label)
            self.add(f"{gid}:{part}", art)

    def events(self) -> None:
        groups: dict[tuple[str, str, str], list[Event]] = {}
        for e in latest(self.data.events):
            groups.setdefault((e.rule, e.kind, e.state), []).append(e)
        order = {name: k for k, name in enumerate(self.data.settings.rules)}
        states = {"confirmed": 0, "provisional": 1, "retracted": 2}
        for (rule, kind, state), evs in sorted(groups.items(), key=lambda g: (
                order[g[0][0]], KINDS.index(g[0][1]), states[g[0][2]])):
            r = self.data.settings.rules[rule]
            x = np.array([self.data.x_of(to_ns(e.time)) for e in evs], dtype=np.float64)
            draw_rule = getattr(self, r.type, self.other)
            draw_rule(r, kind, state, x, evs, f"event:{rule}:{kind}:{state}")

    def other(self, r: RuleSpec, kind: str, state: str, x, evs: list[Event], gid: str) -> None:
        """A rule type this chart has no picture for yet: a dot at the close, still one per event."""
        self.points("price", gid, x, [e.values["close"] for e in evs], "o", 6, state, MUTED,
                    f"{r.name}: {kind.replace('_', ' ')}")


def _figure(width: int, height: int, panes: list[str], top_px: int) -> tuple[Figure, dict[str, Axes]]:
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=BG)
    FigureCanvasAgg(fig)
    ratios = {"price": 5.0, "volume": 1.1, "osc": 1.8}
    gs = fig.add_gridspec(len(panes), 1, height_ratios=[ratios[p] for p in panes], hspace=0.05,
                          left=20 / width, right=1 - 62 / width, top=1 - top_px / height,
                          bottom=(40 if height >= 500 else 30) / height)
    axes: dict[str, Axes] = {}
    for k, p in enumerate(panes):
        ax = fig.add_subplot(gs[k, 0], sharex=axes.get("price"))
        ax.set_facecolor(BG)
        ax.grid(True, color=GRID, linewidth=0.7)
        ax.set_axisbelow(True)
        for side in ("top", "left"):
            ax.spines[side].set_visible(False)
        for side in ("right", "bottom"):
            ax.spines[side].set_color("#c4c4c4")
        ax.yaxis.tick_right()
        ax.yaxis.set_label_position("right")
        ax.tick_params(colors=INK, labelsize=8, length=3)
        ax.tick_params(axis="x", labelbottom=k == len(panes) - 1)
        axes[p] = ax
    return fig, axes


def draw(data: ChartData, width: int = 1600, height: int = 900, volume: bool = False,
         style: str = "auto") -> Chart:
    """The chart of `data` as a Figure of width x height pixels (nothing is displayed).

    style: "candles", "line" (the close) or "auto" (candles while they are >= 2.5 px wide)."""
    settings = data.settings
    inds = settings.indicators
    i0, i1 = data.i0, data.i1
    n = i1 - i0
    xs = np.arange(i0, i1, dtype=np.float64)
    vis = slice(i0, i1)
    rules = list(settings.rules.values())
    probe = _Drawer(data, {}, {})
    osc_names = [k for k, s in inds.items() if s.type == "rsi"]
    panes_used = {probe.pane_of(s) for s in inds} | {
        probe.pane_of(r.params.get(k)) for r in rules for k in ("a", "series", "price", "oscillator")
        if isinstance(r.params.get(k), str)}
    panes = ["price"] + (["volume"] if volume or "volume" in panes_used else []) + (
        ["osc"] if "osc" in panes_used else [])

    # panes first; _header then lowers their top under the title and the legend
    fig, axes = _figure(width, height, panes, 40)
    chart = Chart(fig, axes, data=data)
    per_bar = (width - 90) / max(n, 1)
    d = _Drawer(data, axes, chart.artists, scale=float(np.clip(per_bar / 3.0, 0.45, 1.0)))
    price = axes["price"]

    o, h, lo, c = (data.bars[f][vis] for f in ("open", "high", "low", "close"))
    candles = style == "candles" or (style == "auto" and per_bar >= 2.5)
    if candles:
        d.add("bars:wicks", price.add_collection(LineCollection(
            np.stack([np.c_[xs, lo], np.c_[xs, h]], axis=1), colors=CANDLE, linewidths=0.8, zorder=2)))
        up = c >= o
        b_lo, b_hi = np.minimum(o, c), np.maximum(o, c)
        b_hi = np.where(b_hi - b_lo < 1e-9, b_hi + 1e-4 * (np.nanmax(h) - np.nanmin(lo) + 1e-9), b_hi)
        d.add("bars:candles", price.add_collection(PolyCollection(
            _boxes(xs, b_lo, b_hi, 0.34), closed=True, zorder=3, edgecolors=CANDLE, linewidths=0.7,
            facecolors=np.where(up[:, None], [[1.0, 1.0, 1.0, 1.0]], [[0.30, 0.30, 0.30, 1.0]]))))
        (key,) = price.plot([], [], linestyle="none", marker="s", markersize=7, markerfacecolor="white",
                            markeredgecolor=CANDLE, label=f"{data.symbol} {data.timeframe} bars (hollow: up)")
        d.add("legend:bars", key)
    else:
        (ln,) = price.plot(xs, c, color=INK, linewidth=1.0, zorder=2, label=f"{data.symbol} close")
        d.add("bars:close", ln)
    ymin, ymax = float(np.nanmin(lo)), float(np.nanmax(h))
    pad = 0.04 * (ymax - ymin or abs(ymax) or 1.0)
    price.set_ylim(ymin - pad, ymax + pad)

    for name, (clo, chi) in data.channels.items():  # the channel a break leaves, lightly
        d.add(f"channel:{name}", price.fill_between(
            xs, clo[vis], chi[vis], step="mid", color="#90a4ae", alpha=0.12, linewidth=0, zorder=1,
            label=f"{name}: {settings.rules[name].params['period']}-bar low/high"))

    palette = iter(PALETTE)
    for name, spec in inds.items():
        if spec.type not in ("sma", "ema"):
            continue
        pane = d.pane_of(name)
        colour = (MA_COLOURS.get(spec.period) if pane == "price" else None) or next(palette, MUTED)
        label = f"{spec.type.upper()} {spec.period}" + ("" if spec.source == "close" else f" ({spec.source})")
        (ln,) = axes[pane].plot(xs, data.lines[name][vis], color=colour, linewidth=1.5, zorder=4, label=label)
        d.add(f"line:{name}", ln)

    if "volume" in axes:
        vax = axes["volume"]
        v = data.bars["volume"][vis]
        d.add("bars:volume", vax.add_collection(PolyCollection(
            _boxes(xs, np.zeros(n), v, 0.36 if candles else 0.5), closed=True, linewidths=0,
            facecolors=np.where((c >= o)[:, None], [[0.60, 0.80, 0.66, 1.0]], [[0.93, 0.64, 0.64, 1.0]]))))
        top = float(np.nanmax(v)) if n else 0.0
        vax.set_ylim(0, top * 1.08 if top > 0 else 1.0)
        vax.yaxis.set_major_formatter(lambda y, _: _short(y))
        vax.set_ylabel("volume", fontsize=8, color=MUTED)

    if "osc" in axes:
        oax = axes["osc"]
        for k, name in enumerate(osc_names):
            (ln,) = oax.plot(xs, data.lines[name][vis], color=OSC_COLOURS[k % len(OSC_COLOURS)],
                             linewidth=1.3, zorder=4, label=f"RSI {inds[name].period}")
            d.add(f"line:{name}", ln)
        oax.set_ylim(0, 100)
        oax.set_yticks([0, 100])
        oax.set_ylabel(" / ".join(f"RSI {inds[k].period}" for k in osc_names), fontsize=8, color=MUTED)

    for r in rules:  # configured horizontal lines: band levels, fixed levels
        pane = d.pane_of(r.params.get("series"))
        if pane not in axes or r.type not in ("bands", "level"):
            continue
        ax = axes[pane]
        if r.type == "bands":
            lv = r.params["levels"]
            for q, y in enumerate(lv):
                outer = q in (0, len(lv) - 1)
                d.add(f"band:{r.name}:{y:g}", ax.axhline(y, color="#8a8a8a", linewidth=0.9, zorder=1,
                                                         linestyle="--" if outer else ":"))
            if len(lv) >= 2:
                ax.axhspan(lv[0], lv[-1], color="#7e57c2", alpha=0.05, zorder=0, linewidth=0)
            if pane == "osc":
                ax.set_yticks(sorted({0.0, 100.0} | set(lv)))
        else:
            y = float(r.params["level"])
            d.add(f"level:{r.name}", ax.axhline(y, color=LEVEL, linewidth=1.1, zorder=1, linestyle="-.",
                                                label=f"{r.name}: {r.params['series']} {y:g}"))
    if "osc" in axes:
        axes["osc"].set_ylim(0, 100)

    d.events()

    # x: bar index (no gaps for nights and weekends), labelled at calendar boundaries
    xmax = i1 - 1
    for gid, a in chart.artists.items():
        if gid.startswith("event:") and isinstance(a, Line2D) and len(a.get_xdata()):
            xmax = max(xmax, int(np.nanmax(np.asarray(a.get_xdata(), dtype=float))))
    price.set_xlim(i0 - 1, xmax + 1.5)
    ticks, labels = _ticks(data.t[vis], i0, data.tz, max(3, (width - 100) // 105), data.timeframe)
    axes[panes[-1]].set_xticks(ticks, labels)

    _header(fig, chart, data, width, height, n)
    return chart


def _header(fig: Figure, chart: Chart, data: ChartData, width: int, height: int, n: int) -> None:
    """Title line, then one legend for all panes; the panes shrink to make room for it."""
    handles, labels, seen = [], [], set()
    for art in chart.artists.values():  # in drawing order: bars, lines, levels, then events
        lab = art.get_label()
        if lab and not lab.startswith("_") and lab not in seen:
            seen.add(lab)
            handles.append(art)
            labels.append(lab)
    tf = data.timeframe
    first, last = (label_time(int(data.t[i]), tf, data.tz) for i in (data.i0, data.i1 - 1))
    sym = fig.text(20 / width, 1 - 10 / height, data.symbol, fontsize=15, fontweight="bold", color=INK,
                   va="top")
    r = fig.canvas.get_renderer()
    x = sym.get_window_extent(r).x1 + 12
    zone = "" if tf == "1Day" else f"  ·  times in {data.tz}"
    fig.text(x / width, 1 - 13 / height, f"{tf}  ·  {first} → {last}  ·  {n} bars  ·  "
             f"{len(latest(data.events))} signals{zone}", fontsize=10.5, color=MUTED, va="top")
    fig.text(1 - 62 / width, 1 - 14 / height, f"barwatch · {data.settings.path.rsplit('/', 1)[-1]}",
             fontsize=8, color="#a0a0a0", va="top", ha="right")
    top = 36
    if handles:
        ncol = max(1, min(len(handles), (width - 80) // 250))
        leg = fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(14 / width, 1 - 32 / height),
                         ncol=ncol, fontsize=8, frameon=False, handlelength=1.8, columnspacing=1.6,
                         labelspacing=0.35, borderaxespad=0.0)
        for hnd in leg.legend_handles:  # legend keys at a readable size whatever the density
            if isinstance(hnd, Line2D) and hnd.get_marker() not in ("None", "", None):
                hnd.set_markersize(max(hnd.get_markersize(), 6.0))
        top = int(32 + leg.get_window_extent(r).height + 8)
    gs = chart.axes["price"].get_subplotspec().get_gridspec()
    gs.update(top=1 - top / height)
    for ax in chart.axes.values():  # update() moves only pyplot's figures' axes
        ax.set_position(ax.get_subplotspec().get_position(fig))


def _short(y: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(y) >= div:
            return f"{y / div:g}{suffix}"
    return f"{y:g}"
