"""`barwatch live` as a subprocess against the fake Alpaca: fatal errors (402 auth failed,
406 connection limit) end it with one line and exit 3, the keys never printed; missing keys
exit 2; a recorded session replays (`barwatch replay`) to the same event lines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import polars as pl
from fake_alpaca import FakeAlpaca
from live_helpers import until
from websockets.asyncio.client import connect

from stream.recorder import read_recording

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-SHOULD-NEVER-BE-PRINTED"
KEY = "AKFAKEKEYIDNOTPRINTED"


def _env(fake: FakeAlpaca | None, key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "BARWATCH_"))}
    env.update(APCA_API_KEY_ID=key, APCA_API_SECRET_KEY=secret, PYTHONUNBUFFERED="1")
    if fake is not None:
        env.update(BARWATCH_ALPACA_STREAM_URL=fake.stream_url, BARWATCH_ALPACA_DATA_URL=fake.data_url)
    return env


async def _barwatch(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stream.cli", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def test_missing_keys_name_them():
    async def go():
        env = _env(None)
        del env["APCA_API_SECRET_KEY"]
        p = await _barwatch("live", "--symbols", "MSFT", "--no-table", env=env)
        out, err = await asyncio.wait_for(p.communicate(), 300)
        return p.returncode, err.decode()

    code, err = asyncio.run(go())
    assert code == 2
    assert err.strip().splitlines() == [err.strip()] and "APCA_API_SECRET_KEY" in err
    assert "APCA_API_KEY_ID" not in err and KEY not in err


def test_auth_failure_is_fatal_with_a_hint_and_no_key():
    async def go():
        async with FakeAlpaca(key=KEY, secret="the-right-secret") as fake:
            p = await _barwatch("live", "--symbols", "MSFT", "--no-table", "--events", os.devnull,
                                env=_env(fake))
            out, err = await asyncio.wait_for(p.communicate(), 300)
            return p.returncode, out.decode() + err.decode(), fake.connections

    code, text, connections = asyncio.run(go())
    assert code == 3
    assert "402" in text and "auth failed" in text and "APCA_API_SECRET_KEY" in text
    assert connections == 1  # not retried
    assert SECRET not in text and KEY not in text
    assert "Traceback" not in text


def test_connection_limit_is_fatal():
    async def go():
        async with FakeAlpaca(key=KEY, secret=SECRET) as fake:
            # another program holds the one connection the plan allows
            async with connect(fake.stream_url + "/v2/iex") as other:
                await other.recv()
                await other.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
                await other.recv()
                p = await _barwatch("live", "--symbols", "MSFT", "--no-table", "--events", os.devnull,
                                    env=_env(fake))
                out, err = await asyncio.wait_for(p.communicate(), 300)
            return p.returncode, out.decode() + err.decode()

    code, text = asyncio.run(go())
    assert code == 3
    assert "406" in text and "connection limit exceeded" in text
    assert SECRET not in text and "Traceback" not in text


def test_record_then_replay_gives_the_same_events(tmp_path):
    """A live session (a drop and a backfill included) recorded with --record, stopped with
    SIGTERM, compacted to Parquet; `barwatch replay` of it writes the same lines."""
    cfg = tmp_path / "config.toml"
    cfg.write_text((ROOT / "config.toml").read_text().replace('timeframe = "1Day"', 'timeframe = "1Min"')
                   .replace("stall_seconds = 30", "stall_seconds = 30\nbackoff_seconds = 0.02"))
    rec = tmp_path / "rec"
    events = tmp_path / "live.jsonl"

    async def go():
        async with FakeAlpaca(key=KEY, secret=SECRET) as fake:
            p = await _barwatch("live", "--config", str(cfg), "--symbols", "MSFT", "--no-table",
                                "--events", str(events), "--record", str(rec), env=_env(fake))
            await fake.wait_subscribed()
            await fake.publish(300)
            fake.outage(True)
            await fake.drop()
            await fake.publish(20)  # missed: fetched from REST after the reconnect
            fake.outage(False)
            await fake.wait_subscribed(2)
            await fake.publish(200)
            last = fake.minutes[fake.pos - 1]

            def recorded() -> bool:
                files = list(rec.glob("session-*.arrows"))
                if not files:
                    return False
                df = read_recording(files[0])
                return len(df) > 0 and df["t"].dt.epoch("ns").max() == last

            await until(recorded)
            p.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(p.communicate(), 300)
            return p.returncode, err.decode()

    code, err = asyncio.run(go())
    assert code == 0, err
    assert "stopped by SIGTERM" in err and "20 minutes backfilled" in err
    (parquet,) = rec.glob("session-*.parquet")
    assert not list(rec.glob("*.arrows"))
    df = pl.read_parquet(parquet)
    assert len(df) == 520 and df["late"].sum() == 20 and df["warm"].sum() == 0

    async def replay():
        p = await _barwatch("replay", str(parquet), "--config", str(cfg), "--timeframe", "1Min",
                            "--speed", "max", "--events", "-", "--no-table", env=_env(None))
        out, err = await asyncio.wait_for(p.communicate(), 120)
        return p.returncode, out, err.decode()

    code, out, err = asyncio.run(replay())
    assert code == 0, err
    live = events.read_bytes()
    assert live.count(b"\n") > 50
    assert b'"late":true' in live
    assert out == live  # late flags included: the recording's kind carries them


def test_cli_speaks_msgpack():
    """The CLI's client asks for msgpack (as alpaca-py does) and sends its messages in it."""
    async def go():
        async with FakeAlpaca(key=KEY, secret=SECRET) as fake:
            p = await _barwatch("live", "--symbols", "MSFT", "--no-table", "--events", os.devnull,
                                env=_env(fake))
            await fake.wait_subscribed()
            p.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(p.communicate(), 300)
            return fake.content_types, fake.client_messages, p.returncode, err.decode()

    ctypes, msgs, code, err = asyncio.run(go())
    assert ctypes == ["application/msgpack"]
    assert msgs[0] == {"action": "auth"} and msgs[1]["action"] == "subscribe"
    assert code == 0 and "live stopped by SIGTERM" in err


def test_fan_out_serves_the_live_events(tmp_path):
    """--serve: the replay's websocket fan-out, fed by the live feed (same lines as --events)."""
    cfg = tmp_path / "config.toml"
    cfg.write_text((ROOT / "config.toml").read_text().replace('timeframe = "1Day"', 'timeframe = "1Min"'))
    events = tmp_path / "live.jsonl"

    async def go():
        async with FakeAlpaca(key=KEY, secret=SECRET) as fake:
            p = await _barwatch("live", "--config", str(cfg), "--symbols", "MSFT", "--no-table",
                                "--events", str(events), "--serve", "127.0.0.1:0", env=_env(fake))
            line = ""
            while "serving ws://" not in line:
                line = (await asyncio.wait_for(p.stderr.readline(), 300)).decode()
                assert line, "barwatch live ended before serving"
            url = line.split("serving ", 1)[1].strip()
            async with connect(url) as client:
                await fake.wait_subscribed()
                await fake.publish(200)
                got = [await asyncio.wait_for(client.recv(), 120) for _ in range(5)]
            p.send_signal(signal.SIGTERM)
            await asyncio.wait_for(p.communicate(), 300)
            return got, p.returncode

    got, code = asyncio.run(go())
    assert code == 0
    first = events.read_text().splitlines()[:5]
    assert [g if isinstance(g, str) else g.decode() for g in got] == first
    assert all(json.loads(x)["symbol"] == "MSFT" for x in first)
