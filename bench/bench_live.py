"""Live-path benchmark: the fake Alpaca server on loopback -> the live feed -> engine -> JSON lines.

1. Burst: one frame holding 10,000 symbols' minute bars (msgpack, as Alpaca sends), from the
   moment the client's websocket recv() returns it to the moment every event of it is written
   (JSON lines to /dev/null, flushed). Engines warmed first (emit=False) so the rules fire.
   Timeframe 1Min (final bars) and 1Day (the headline: forming daily bars, evaluated with peek).
   Reference, same run: msgpack.unpackb and json.loads of the same frame.
2. Single bar: one symbol (the real MSFT minutes), one bar per frame, receipt -> events written;
   p50 / p99 / max over 2,000 frames, and over the frames that fired events.

    .venv/bin/python -m bench.bench_live [--symbols 10000] [--bursts 15] [--single 2000]

Targets (issue 4): burst <= 50 ms, single-bar p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fake_alpaca import FakeAlpaca, msft_minutes  # noqa: E402

from bench.data import tiled  # noqa: E402
from stream.bars import BarBatch  # noqa: E402
from stream.config import load_config  # noqa: E402
from stream.engine import Engine  # noqa: E402
from stream.feeds.live import LiveFeed  # noqa: E402
from stream.feeds.protocol import Counters, decode, split  # noqa: E402
from stream.outputs.jsonl import JsonLines, encode_lines  # noqa: E402
from stream.runner import Session  # noqa: E402
from stream.timeframes import Aggregator  # noqa: E402

NY = ZoneInfo("America/New_York")
MIN = 60 * 10**9
DAY = 86_400 * 10**9
OPEN = int(datetime(2022, 6, 1, 9, 30, tzinfo=NY).timestamp()) * 10**9


class Stamp:
    """An output noting when each batch's events were written, and of which frame."""

    def __init__(self, feed: LiveFeed) -> None:
        self.feed = feed
        self.marks: list[tuple[int, int, int]] = []  # (frame received, written, events)

    def write(self, events, blob) -> None:
        self._n = len(events)

    def flush(self) -> None:
        self.marks.append((self.feed.last_received, time.perf_counter_ns(), self._n))


def per_frame(marks: list[tuple[int, int, int]]) -> list[tuple[float, int]]:
    """(ms from receipt to the frame's last batch written, events) per frame."""
    out: dict[int, tuple[int, int]] = {}
    for rec, done, n in marks:
        if rec is None:
            continue
        d, e = out.get(rec, (0, 0))
        out[rec] = (max(d, done), e + n)
    return [((d - rec) / 1e6, e) for rec, (d, e) in sorted(out.items())]


def series(nsym: int, n: int) -> np.ndarray:
    """[nsym, n, 5] real-shaped OHLCV: each symbol a different stretch of the tiled real bars."""
    base = tiled(97 * nsym + n)
    idx = 97 * np.arange(nsym)[:, None] + np.arange(n)[None, :]
    return base[idx]


async def burst(timeframe: str, nsym: int, bursts: int, hist: int, binary: bool = True) -> dict:
    cfg = dataclasses.replace(load_config(), timeframe=timeframe)
    x = series(nsym, hist + bursts)
    symbols = [f"S{s:05d}" for s in range(nsym)]
    if timeframe == "1Day":  # daily labels: midnights New York before the live day
        t_hist = int(datetime(2022, 6, 1, tzinfo=NY).timestamp()) * 10**9 - DAY * np.arange(hist, 0, -1)
    else:
        t_hist = OPEN - MIN * np.arange(hist, 0, -1)
    h = x[:, :hist].transpose(1, 0, 2).reshape(-1, 5)  # time-major
    warm = BarBatch(symbols, np.tile(np.arange(nsym), hist), np.repeat(t_hist, nsym), h[:, 0],
                    np.maximum(h[:, 1], h[:, [0, 3]].max(1)), np.minimum(h[:, 2], h[:, [0, 3]].min(1)),
                    h[:, 3], h[:, 4])
    live = x[:, hist:].transpose(1, 0, 2).reshape(-1, 5)
    t_live = np.repeat(OPEN + MIN * np.arange(bursts), nsym)
    df = pl.DataFrame({"symbol": symbols * bursts, "t": t_live, "open": live[:, 0],
                       "high": np.maximum(live[:, 1], live[:, [0, 3]].max(1)),
                       "low": np.minimum(live[:, 2], live[:, [0, 3]].min(1)),
                       "close": live[:, 3], "volume": live[:, 4]})
    engine = Engine(cfg)
    engine.process(warm, emit=False)
    async with FakeAlpaca(df) as fake:
        feed = LiveFeed(engine, symbols, fake.key, fake.secret, stream_url=fake.stream_url,
                        data_url=fake.data_url, binary=binary, warm=False)
        stamp = Stamp(feed)
        sink = JsonLines.append(os.devnull)
        session = Session(engine, [sink, stamp])
        task = asyncio.create_task(session.run(feed))
        await fake.wait_subscribed()
        for k in range(bursts):
            await fake.publish(1)
            t = OPEN + k * MIN
            while feed.agg.last_minute(symbols[-1]) != t or feed.counters.daily < (k + 1) * nsym:
                await asyncio.sleep(0.001)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        sink.close()
        frame_rows = [dict(fake.rows[(s, OPEN)], T="b") for s in symbols]
    frames = per_frame(stamp.marks)[1:]  # the first frame also paid one-off costs (warm-up)
    ms = np.array([f[0] for f in frames])
    packed = msgpack.packb([FakeAlpaca._pack(m) for m in frame_rows], datetime=False)
    text = json.dumps([FakeAlpaca._json(m) for m in frame_rows])
    ref_mp = best(lambda: msgpack.unpackb(packed, timestamp=3))
    ref_js = best(lambda: json.loads(text))
    return {"timeframe": timeframe, "binary": binary, "ms": ms, "events": [f[1] for f in frames],
            "bytes": len(packed) if binary else len(text), "unpackb": ref_mp, "json": ref_js,
            "stages": stages(cfg, warm, packed if binary else text, symbols)}


def best(f, n: int = 7) -> float:
    """The fastest of n runs of f, in ms."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return 1e3 * min(out)


def stages(cfg, warm: BarBatch, frame, symbols) -> dict[str, float]:
    """Where a burst's time goes: each stage alone on the same frame (a fresh warmed engine)."""
    engine = Engine(cfg)
    engine.process(warm, emit=False)
    agg = Aggregator(cfg.timeframe)
    for s in symbols:
        agg.sid(s)
    c = Counters()
    out = {}
    t0 = time.perf_counter()
    msgs = decode(frame, c)
    t1 = time.perf_counter()
    minutes, _ = split(msgs, agg, c)
    a = minutes.arrays()
    t2 = time.perf_counter()
    b = agg.add(*a)
    t3 = time.perf_counter()
    events = engine.process(b)
    t4 = time.perf_counter()
    encode_lines(events)
    t5 = time.perf_counter()
    for name, (x, y) in {"decode": (t0, t1), "split": (t1, t2), "aggregate": (t2, t3),
                         "engine": (t3, t4), "encode": (t4, t5)}.items():
        out[name] = 1e3 * (y - x)
    return out


async def single(frames: int) -> dict:
    cfg = dataclasses.replace(load_config(), timeframe="1Min")
    engine = Engine(cfg)
    hist = 400
    async with FakeAlpaca(msft_minutes()) as fake:
        await fake.publish(hist)
        feed = LiveFeed(engine, ["MSFT"], fake.key, fake.secret, stream_url=fake.stream_url,
                        data_url=fake.data_url)
        stamp = Stamp(feed)
        sink = JsonLines.append(os.devnull)
        session = Session(engine, [sink, stamp])
        task = asyncio.create_task(session.run(feed))
        await fake.wait_subscribed()
        for _ in range(frames):
            await fake.publish(1)
            t = fake.minutes[fake.pos - 1]
            while feed.agg.last_minute("MSFT") != t or feed.counters.daily < fake.pos - hist:
                await asyncio.sleep(0)
            await asyncio.sleep(0.0005)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        sink.close()
    got = per_frame(stamp.marks)[1:]
    return {"ms": np.array([g[0] for g in got]), "events": np.array([g[1] for g in got])}


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=10_000)
    ap.add_argument("--bursts", type=int, default=15)
    ap.add_argument("--single", type=int, default=2000)
    args = ap.parse_args()
    print(f"live benchmark: {args.symbols:,} symbols per burst frame, {args.bursts} bursts; "
          f"{args.single:,} single-bar frames; {os.cpu_count()} CPUs")
    Engine(load_config()).process(BarBatch.from_bars([]))  # compile (cached) before timing
    for tf, hist, binary in (("1Min", 400, True), ("1Day", 400, True), ("1Day", 400, False)):
        r = asyncio.run(burst(tf, args.symbols, args.bursts, hist, binary))
        enc = "msgpack" if binary else "json"
        ref = r["unpackb"] if binary else r["json"]
        med = float(np.median(r["ms"]))
        print(f"\nburst {tf} ({enc}, {r['bytes'] / 1e6:.2f} MB frame): receipt -> all events written "
              f"median {med:.1f} ms, max {r['ms'].max():.1f} ms (target <= 50), "
              f"{int(np.median(r['events']))} events/frame")
        print(f"  reference, same frame: msgpack.unpackb {r['unpackb']:.1f} ms, "
              f"json.loads {r['json']:.1f} ms; burst / {'unpackb' if binary else 'json.loads'} "
              f"= {med / ref:.1f}x")
        print("  stages alone: " + ", ".join(f"{k} {v:.1f} ms" for k, v in r["stages"].items()))
    s = asyncio.run(single(args.single))
    fired = s["ms"][s["events"] > 0]
    print(f"\nsingle bar (1Min, MSFT, msgpack): receipt -> events written over {len(s['ms'])} frames: "
          f"p50 {pct(s['ms'], 50):.3f} ms, p99 {pct(s['ms'], 99):.3f} ms, max {s['ms'].max():.3f} ms "
          f"(target p99 <= 1)")
    print(f"  frames that fired events ({len(fired)}): p50 {pct(fired, 50):.3f} ms, "
          f"p99 {pct(fired, 99):.3f} ms")


if __name__ == "__main__":
    main()
