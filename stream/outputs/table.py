"""The live terminal table: one row per symbol from engine snapshots, redrawn on a timer.

`render` is a pure function of (rows, stats, columns, width) so it can be checked on a recording
Console; `LiveTable` owns a rich Live and redraws at most `fps` times a second from its own
task, never per bar, so the engine never waits for the terminal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from ..config import Settings
from ..events import Event
from ..records import Latest

UP, DOWN, FLAT = "▲", "▼", "•"
_DIRECTION = {  # event kind -> +1 up / -1 down / 0 neither
    "cross_up": 1, "cross_down": -1, "break_above": 1, "break_below": -1,
    "bullish_divergence": 1, "bearish_divergence": -1, "enter": 0, "exit": 0, "cross_pending": 0,
}
_ZONE_STYLE = {"oversold": "bold green", "lower_half": "cyan", "neutral": "", "upper_half": "yellow",
               "overbought": "bold red"}
WIDE = 100  # from this width on: full dates, zone names, full signal kinds, wider gauge


@dataclass(frozen=True)
class Columns:
    """Which indicators the table shows, by their config names (any may be None)."""

    fast: str | None = None
    slow: str | None = None
    rsi: str | None = None
    bands: str | None = None  # the bands rule reading `rsi`, for its zone
    levels: tuple[float, ...] = (30.0, 70.0)
    zones: tuple[str, ...] = ("oversold", "neutral", "overbought")

    @classmethod
    def from_settings(cls, settings: Settings) -> Columns:
        """The first two moving averages (faster first) and the first RSI of the config."""
        inds = [s for s in settings.indicators.values() if not getattr(s, "hidden", False)]
        mas = [s for s in inds if s.type in ("sma", "ema")][:2]
        mas.sort(key=lambda s: s.period)
        rsi = next((s.name for s in inds if s.type == "rsi"), None)
        bands = next((r for r in settings.rules.values()
                      if r.type == "bands" and r.params.get("series") == rsi), None)
        kw: dict = {}
        if bands is not None and bands.params.get("zones"):
            kw = {"bands": bands.name, "levels": tuple(float(x) for x in bands.params["levels"]),
                  "zones": tuple(bands.params["zones"])}
        return cls(mas[0].name if mas else None, mas[1].name if len(mas) > 1 else None, rsi, **kw)

    def zone(self, snap: dict, value: float) -> str:
        """The RSI's zone: the bands rule's if there is one, else by the levels."""
        if self.bands is not None:
            z = snap.get("zones", {}).get(self.bands)
            if z is not None:
                return z
        i = sum(1 for lv in self.levels if value >= lv)
        return self.zones[min(i, len(self.zones) - 1)]


@dataclass
class Signal:
    """A symbol's latest event, as the table shows it."""

    rule: str
    kind: str
    state: str
    t: int  # bar start, ns
    values: dict = field(default_factory=dict)

    @classmethod
    def of(cls, ev: Event, t: int) -> Signal:
        return cls(ev.rule, ev.kind, ev.state, t, ev.values)


@dataclass
class Stats:
    """The footer's figures."""

    source: str = ""
    pace: str = ""
    timeframe: str = ""
    bars: int = 0
    events: int = 0
    bars_per_s: float | None = None
    lag_s: float | None = None
    clients: int | None = None  # None: no fan-out
    skipped: int = 0
    symbols: int = 0  # all symbols seen (rows may show fewer)
    state: str = "running"


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _age(ns: int) -> str:
    s = ns / 1e9
    if s <= 0:
        return "now"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def _time(snap: dict, timeframe: str, wide: bool) -> str:
    """The bar's date or time; a forming bar (values as of now, not final) ends with "…"."""
    iso = snap.get("time") or ""
    if not iso:
        return "—"
    if timeframe == "1Day":
        text = iso[:10] if wide else iso[5:10]
    else:
        text = f"{iso[5:10]} {iso[11:16]}" if wide else iso[11:16]
    return text + "…" if snap.get("forming") else text


def _gauge(value: float, width: int, style: str) -> Text:
    filled = max(0, min(width, round(value / 100 * width)))
    return Text("█" * filled, style=style or "white") + Text("░" * (width - filled), style="dim")


def _label(sig: Signal, wide: bool) -> Text:
    d = _DIRECTION.get(sig.kind, 0)
    if sig.kind == "cross_pending":
        d = 1 if sig.values.get("direction") == "up" else -1
    style = "green" if d > 0 else "red" if d < 0 else "yellow"
    if sig.kind in ("enter", "exit"):
        zone = sig.values.get("zone", "")
        what = f"{sig.kind} {zone}".strip() if wide else f"→{sig.values.get('to', sig.kind)}"
    elif sig.kind == "cross_pending":
        what = f"pending {UP if d > 0 else DOWN}"
        style = "dim " + style
    else:
        what = sig.kind if wide else (UP if d > 0 else DOWN)
    text = f"{sig.rule} {what}"
    if sig.state == "provisional":
        return Text(text + "?", style="italic " + style)
    if sig.state == "retracted":
        return Text(text, style="strike dim")
    return Text(text, style=style)


def render(rows: Sequence[tuple[dict, Signal | None]], stats: Stats, cols: Columns, width: int = 80) -> Group:
    """The table for these snapshots and figures, laid out for a terminal `width` columns wide.

    Laid out here, line by line (every column as wide as its content, one space apart, the last
    signal cut to what is left): a fraction of the cost of a rich Table at 10 frames a second.
    """
    wide = width >= WIDE
    latest = max((s.get("time") or "" for s, _ in rows), default="")
    day = latest[:10] if stats.timeframe == "1Day" else latest[:16].replace("T", " ")
    title = f"barwatch · {stats.timeframe} · {day or '—'} · {stats.symbols} symbols · {stats.state}"
    fast, slow = cols.fast or "ma", cols.slow or "ma"
    heads = ["symbol", "date" if stats.timeframe == "1Day" else "time", "close", "chg%", fast, slow, "spread",
             cols.rsi or "rsi", *(["zone"] if wide else []), "last signal", "age"]
    right = [h in ("close", "chg%", "spread", "age", fast, slow) for h in heads]
    gauge = 10 if wide else 4
    body = [_cells(snap, sig, stats.timeframe, cols, wide, gauge) for snap, sig in rows]
    need = [max([len(h)] + [c.cell_len for c in col])
            for h, col in zip(heads, zip(*body, strict=True) if body else [()] * len(heads), strict=True)]
    sig_i = heads.index("last signal")
    need[sig_i] = max(6, min(need[sig_i], width - (sum(need) - need[sig_i]) - (len(heads) - 1)))
    span = min(width, sum(need) + len(heads) - 1)
    lines = [Text(title, style="italic", no_wrap=True, overflow="ellipsis"),
             _line([Text(h) for h in heads], need, right, "bold"),
             Text("─" * span, style="dim")]
    lines += [_line(cells, need, right, "") for cells in body]
    lines.append(Text(_footer(stats), style="dim italic"))
    return Group(*lines)


def _line(cells: list[Text], widths: list[int], right: list[bool], style: str) -> Text:
    """Cells padded (or cut with an ellipsis) to their column widths, one space apart."""
    out = Text(style=style, no_wrap=True, overflow="ellipsis", end="\n")
    for i, (c, w) in enumerate(zip(cells, widths, strict=True)):
        if i:
            out.append(" ")
        if c.cell_len > w:
            c = c.copy()
            c.truncate(w, overflow="ellipsis")
        pad = " " * (w - c.cell_len)
        if right[i]:
            out.append(pad)
            out.append_text(c)
        else:
            out.append_text(c)
            out.append(pad)
    if cells:
        out.stylize("bold", 0, cells[0].cell_len)  # the symbol
    return out


def _cells(snap: dict, sig: Signal | None, timeframe: str, cols: Columns, wide: bool, gauge: int) -> list:
    """One row's cells."""
    ind = snap.get("indicators", {})
    prev = snap.get("previous", {})
    fast = ind.get(cols.fast) if cols.fast else None
    slow = ind.get(cols.slow) if cols.slow else None
    chg = snap.get("change_pct")
    chg_t = Text("—") if chg is None else Text(f"{chg:+.2f}" if wide else f"{chg:+.1f}",
                                                style="green" if chg > 0 else "red" if chg < 0 else "")
    spread_t = Text("—")
    if fast is not None and slow is not None and slow:
        spread = 100.0 * (fast - slow) / slow
        pf, ps = prev.get(cols.fast), prev.get(cols.slow)
        arrow, style = FLAT, "dim"
        if pf is not None and ps is not None:
            move = (fast - slow) - (pf - ps)
            arrow, style = (UP, "green") if move > 0 else (DOWN, "red") if move < 0 else (FLAT, "dim")
        spread_t = Text(f"{spread:+.2f}%" if wide else f"{spread:+.1f}%") + Text(arrow, style=style)
    r = ind.get(cols.rsi) if cols.rsi else None
    zone = ""
    if r is None:
        rsi_t = Text("—")
    else:
        zone = cols.zone(snap, r)
        zs = _ZONE_STYLE.get(zone, "")
        rsi_t = Text(f"{r:4.1f} " if wide else f"{r:3.0f} ", style=zs) + _gauge(r, gauge, zs)
    close = snap.get("close")
    digits = 2 if close is None or close < 10_000 else 0
    cells: list = [snap["symbol"], _time(snap, timeframe, wide), _num(close, digits), chg_t,
                   _num(fast, digits), _num(slow, digits), spread_t, rsi_t]
    if wide:
        cells.append(Text(zone, style=_ZONE_STYLE.get(zone, "")))
    if sig is None:
        cells += [Text(""), Text("")]
    else:
        t_now = snap.get("t")
        cells += [_label(sig, wide), Text(_age(t_now - sig.t) if t_now is not None else "")]
    return [Text(c) if isinstance(c, str) else c for c in cells]


def _footer(stats: Stats) -> str:
    parts = [f"{stats.source} @ {stats.pace}" if stats.pace else stats.source,
             f"{stats.bars:,} bars",
             f"{stats.bars_per_s:,.0f} bars/s" if stats.bars_per_s is not None else "",
             f"{stats.events:,} events", f"lag {stats.lag_s:.2f}s" if stats.lag_s is not None else "",
             f"{stats.clients} fan-out clients" if stats.clients is not None else "",
             f"{stats.skipped:,} skipped rows" if stats.skipped else ""]
    return " · ".join(p.replace(" ", "\u00a0") for p in parts if p)  # wrap between items only


class LiveTable:
    """A rich Live redrawn from `frame()` by its own task: at most `fps` times a second, and
    spending at most `budget` of the time drawing, so a big table slows its rate, not the engine."""

    def __init__(self, console: Console, frame: Callable[[int, int], Group], fps: float = 10.0,
                 budget: float = 0.03) -> None:
        self.console = console
        self.budget = budget
        self.frame = frame  # (width, height) -> renderable
        self.period = 1.0 / fps
        self.draws = 0
        self.busy = 0.0  # seconds spent drawing
        self._live: Live | None = None
        self._task: asyncio.Task | None = None

    def _draw(self) -> None:
        t0 = time.perf_counter()
        w, h = self.console.size
        assert self._live is not None
        self._live.update(self.frame(w, h), refresh=True)
        self.draws += 1
        self.busy += time.perf_counter() - t0

    async def _loop(self) -> None:
        while True:
            busy = self.busy
            self._draw()
            cost = self.busy - busy
            # at most fps frames a second, and drawing at most `budget` of the time (big tables)
            await asyncio.sleep(max(self.period - cost, cost * (1 / self.budget - 1)))

    def start(self) -> None:
        self._live = Live(console=self.console, auto_refresh=False, redirect_stdout=False,
                          redirect_stderr=False, transient=False)
        self._live.start()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Draw the final state once more and leave it on screen."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._live is not None:
            self._draw()
            self._live.stop()
            self._live = None


def _ns(rfc: str) -> int:
    d = datetime.fromisoformat(rfc)
    return int(d.timestamp()) * 1_000_000_000 + d.microsecond * 1000


class Board:
    """The table's side of a run: an output keeping each symbol's last signal, and `frame`,
    which reads engine snapshots and figures into a renderable (only when the timer asks)."""

    ROWS_AROUND = 7  # title, header, rule, caption (2 lines), margin

    def __init__(self, engine, cols: Columns, stats: Callable[[], Stats],
                 order: Sequence[str] | None = None) -> None:
        self.engine = engine
        self.cols = cols
        self.stats = stats
        self.order = list(order) if order else None
        self._last = Latest()
        self._rate: tuple[float, int] | None = None  # (time, bars) at the last frame
        self._bps: float | None = None

    def write(self, events: Sequence[Event], blob: bytes) -> None:
        self._last.add(events)

    def signal(self, symbol: str) -> Signal | None:
        """The symbol's last event, as the table shows it (built only for the rows drawn)."""
        ev = self._last.get(symbol)
        return None if ev is None else Signal.of(ev, _ns(ev.time))

    def flush(self) -> None:
        pass

    def rows(self, limit: int) -> tuple[list[tuple[dict, Signal | None]], int]:
        """Up to `limit` rows (the --symbols order, else alphabetical) and the number of symbols."""
        known = self.engine.symbols
        names = [s for s in self.order if s in set(known)] if self.order else sorted(known)
        out = []
        for sym in names:
            if len(out) >= max(limit, 1):
                break
            snap = self.engine.snapshot(sym)
            if snap is not None and snap["t"] is not None:  # known but no bar yet: no row
                out.append((snap, self.signal(sym)))
        return out, len(known)

    def frame(self, width: int, height: int) -> Group:
        st = self.stats()
        now = time.perf_counter()
        if self._rate is not None and now - self._rate[0] >= 0.25:
            bps = (st.bars - self._rate[1]) / (now - self._rate[0])
            self._bps = bps if self._bps is None else 0.5 * self._bps + 0.5 * bps
            self._rate = (now, st.bars)
        elif self._rate is None:
            self._rate = (now, st.bars)
        st.bars_per_s = self._bps
        rows, st.symbols = self.rows(height - self.ROWS_AROUND)
        return render(rows, st, self.cols, width)
