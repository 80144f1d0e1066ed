"""The recorder: crash-safe appends (a real kill -9), compaction to Parquet, and a recording
that steps the engine to the live run's exact event lines (warm start and backfill included)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
from live_helpers import lines, live_run, settings, until

from stream.bars import FINAL, FORMING, LATE, WARM, BarBatch
from stream.engine import Engine
from stream.recorder import Recorder, metadata, read_recording, recover, session_batches

ROOT = Path(__file__).resolve().parent.parent


def _batch(k: int, late: bool = False) -> BarBatch:
    t = 1_650_000_000_000_000_000 + k * 60_000_000_000
    return BarBatch(["A", "B"], np.array([0, 1]), np.array([t, t]), np.array([1.0 + k, 2.0]),
                    np.array([2.0 + k, 3.0]), np.array([0.5, 1.0]), np.array([1.5, 2.5]), np.array([10.0, 20.0]),
                    kind=np.array([FINAL, FORMING], dtype=np.int8), late=late)


def test_close_compacts_to_parquet_with_metadata(tmp_path):
    rec = Recorder(tmp_path, {"timeframe": "1Min", "feed": "iex"})
    rec.write(_batch(0), warm=True)
    rec.write(_batch(1))
    rec.write(_batch(2, late=True))
    out = rec.close()
    assert out is not None and out.suffix == ".parquet" and not list(tmp_path.glob("*.arrows"))
    df = read_recording(out)
    assert len(df) == 6
    assert df["warm"].to_list() == [True, True, False, False, False, False]
    assert df["late"].to_list() == [False] * 4 + [True] * 2
    assert df["kind"].to_list() == [WARM | FINAL, WARM | FORMING, FINAL, FORMING, LATE | FINAL, LATE | FORMING]
    assert df.schema["t"] == pl.Datetime("ns", "UTC")
    assert metadata(out) == {"timeframe": "1Min", "feed": "iex"}
    got = [(len(b), emit, b.late) for b, emit in session_batches(df)]
    assert got == [(2, False, False), (2, True, False), (2, True, True)]
    back = BarBatch.from_polars(df)
    assert back.open.tolist() == [1.0, 2.0, 2.0, 2.0, 3.0, 2.0]


def test_kill_9_keeps_every_batch_written(tmp_path):
    """A real SIGKILL while recording: every batch whose write returned is in the file."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'tests')!r})
        from test_recorder import _batch
        from stream.recorder import Recorder
        rec = Recorder({str(tmp_path)!r}, {{"timeframe": "1Min"}})
        for k in range(25):
            rec.write(_batch(k))
            print(k, flush=True)
        time.sleep(600)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for k in range(25):
        assert p.stdout.readline().strip() == str(k)
    p.kill()  # SIGKILL: no cleanup runs
    p.wait()
    (stream,) = tmp_path.glob("session-*.arrows")
    df = read_recording(stream)
    assert len(df) == 50
    made = recover(tmp_path)
    assert len(made) == 1 and read_recording(made[0]).equals(df)
    assert metadata(made[0]) == {"timeframe": "1Min"} and not list(tmp_path.glob("*.arrows"))


def test_a_stream_cut_anywhere_reads_its_complete_batches(tmp_path):
    rec = Recorder(tmp_path, {})
    sizes = []
    for k in range(6):
        rec.write(_batch(k))
        sizes.append(rec.path.stat().st_size)
    data = rec.path.read_bytes()
    rec._writer.close()
    for cut in range(0, len(data), 97):
        part = tmp_path / "cut.arrows"
        part.write_bytes(data[:cut])
        complete = sum(1 for s in sizes if s <= cut)
        assert len(read_recording(part)) == 2 * complete


def test_recording_replays_to_the_live_lines(tmp_path):
    """Warm start, a drop with backfill, forming bars: stepping the recording as it says
    (warm rows without events, late rows late) gives the live run's lines, byte for byte."""
    from live_helpers import SMALL

    cfg = settings("1Day", SMALL)
    rec = Recorder(tmp_path, {"timeframe": "1Day"})

    async def script(fake, feed):
        await fake.publish(2300)
        await fake.wait_subscribed()
        await fake.publish(1900)  # into 2022-06-03, a day of provisional crosses
        await until(lambda: feed.agg.last_minute("MSFT") == fake.minutes[fake.pos - 1])
        fake.outage(True)
        await fake.drop()
        await fake.publish(120)
        fake.outage(False)
        await fake.wait_subscribed(2)
        await fake.publish(400)

    run = asyncio.run(live_run(cfg, script, recorder=rec))
    out = rec.close()
    df = read_recording(out)
    assert df["warm"].any() and df["late"].any() and (df["kind"] == FORMING).any()
    engine, events = Engine(cfg), []
    for batch, emit in session_batches(df):
        events += engine.process(batch, emit=emit)
    assert any(e.late for e in run.events)
    assert lines(events) == lines(run.events)
