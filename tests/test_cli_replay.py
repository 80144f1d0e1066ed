"""`barwatch replay` end to end: subprocess runs of the installed command on the bundled data,
compared with the engine called directly; bad input; closed pipes; signals; a pseudo-terminal;
the fan-out with real websockets clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from replay.store import Reader, default_data, parse_time
from stream.engine import Engine
from stream.events import decode, encode

BARWATCH = str(Path(sys.executable).with_name("barwatch"))
SUMMARY = re.compile(r"^replay (done|stopped by SIG\w+): (\d+) bars, (\d+) events, skipped (\d+) bad rows?\b.*, "
                     r"[\d.]+ s")


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "BARWATCH_TOKEN"}
    e.update(extra)
    return e


def barwatch(*args: str, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", env())
    return subprocess.run([BARWATCH, *args], capture_output=True, timeout=timeout, **kw)


def expected(*paths, symbols=None, start=None, end=None) -> bytes:
    """The engine called directly on the Reader's batches, encoded."""
    engine = Engine()
    reader = Reader(list(paths) or [default_data()], symbols=symbols,
                    start=None if start is None else parse_time(start), end=None if end is None else parse_time(end))
    return b"".join(encode(e) for b in reader for e in engine.process(b))


@pytest.fixture(scope="module")
def bundled() -> bytes:
    return expected()


def one_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def write_config(tmp_path: Path, **serve: int) -> Path:
    """The repository's config with [serve] keys changed."""
    text = (Path(__file__).resolve().parent.parent / "config.toml").read_text()
    for key, value in serve.items():
        text, n = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
        assert n == 1
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    return cfg


# ---- events ----------------------------------------------------------------------------------

def test_barwatch_alone_into_a_pipe_writes_the_engines_events(bundled):
    """`barwatch` with no arguments and stdout not a terminal: events on stdout, as fast as possible
    (no table: stderr is not a terminal either), the summary on stderr."""
    r = barwatch()
    assert r.returncode == 0
    assert r.stdout == bundled and len(bundled.splitlines()) > 5000
    m = SUMMARY.match(one_line(r.stderr))
    assert m and m.group(1) == "done" and int(m.group(2)) == 12154 and int(m.group(3)) == len(bundled.splitlines())


def test_events_dash_and_events_file_appends(bundled, tmp_path):
    r = barwatch("replay", "--speed", "max", "--events", "-", "--no-table")
    assert r.returncode == 0 and r.stdout == bundled
    out = tmp_path / "ev.jsonl"
    for _ in range(2):
        r = barwatch("replay", "--speed", "max", "--events", str(out))
        assert r.returncode == 0 and r.stdout == b""
    assert out.read_bytes() == bundled + bundled


def test_symbols_and_time_range(tmp_path):
    args = dict(symbols=["IBM", "MSFT"], start="2011-01-01", end="2012-07-01")
    r = barwatch("replay", str(default_data()), "--symbols", "IBM,MSFT", "--start", "2011-01-01",
                 "--end", "2012-07-01", "--speed", "max")
    assert r.returncode == 0
    want = expected(**args)
    assert r.stdout == want and want
    syms = {decode(x).symbol for x in r.stdout.splitlines()}
    assert syms == {"IBM", "MSFT"}


def test_paced_and_max_give_identical_lines():
    """At 100 days a second (about a second for this range) and at max: the same bytes."""
    rng = ["--start", "2012-01-01", "--end", "2012-04-01"]
    fast = barwatch("replay", *rng, "--speed", "max")
    paced = barwatch("replay", *rng, "--speed", str(100 * 86400))
    assert fast.returncode == paced.returncode == 0
    assert paced.stdout == fast.stdout == expected(start="2012-01-01", end="2012-04-01")


def test_minute_data_timeframe_is_inferred_unless_given():
    minute = default_data().with_name("MSFT_1min_2022-05-18_2022-06-15.csv.gz")
    r = barwatch("replay", str(minute), "--symbols", "MSFT", "--speed", "max")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines and {decode(x).timeframe for x in lines} == {"1Min"}
    r2 = barwatch("replay", str(minute), "--symbols", "MSFT", "--speed", "max", "--timeframe", "5Min")
    assert {decode(x).timeframe for x in r2.stdout.splitlines()} == {"5Min"}


# ---- bad input -------------------------------------------------------------------------------

def test_bad_rows_stop_with_one_line_or_are_skipped_and_counted(tmp_path):
    csv = tmp_path / "ibm.csv"
    csv.write_text("date,open,high,low,close,volume\n"
                   "2012-01-03,10,11,9,10.5,100\n"
                   "2012-01-04,10,9,11,10.5,100\n"  # high < low: line 3
                   "2012-01-05,10,11,9,10.2,100\n")
    r = barwatch("replay", str(csv), "--symbols", "IBM", "--speed", "max")
    assert r.returncode == 2 and r.stdout == b""
    msg = one_line(r.stderr)
    assert str(csv) in msg and "line 3" in msg and "high" in msg
    r = barwatch("replay", str(csv), "--symbols", "IBM", "--speed", "max", "--skip-bad")
    assert r.returncode == 0
    m = SUMMARY.match(one_line(r.stderr))
    assert m and m.group(2) == "2" and m.group(4) == "1"


def test_a_bad_row_mid_file_stops_there_after_the_bars_before_it(tmp_path):
    """Rows are checked as they stream: every event of the bars before the bad row is written
    (those read in the same chunk too), then one line naming the row, exit 2."""
    import polars as pl

    rows = pl.concat([b.to_polars() for b in Reader([default_data()])])
    k = 9_876  # 0-based: the bad row is row k + 1 of the file
    assert rows.height > k + 100
    bad = rows.with_columns(pl.when(pl.int_range(pl.len()) == k).then(pl.col("low") / 2)
                            .otherwise(pl.col("high")).alias("high"))  # high < low at row k + 1
    path = tmp_path / "bars.parquet"
    bad.write_parquet(path, row_group_size=1000)
    good = tmp_path / "head.parquet"
    rows.head(k).write_parquet(good)
    r = barwatch("replay", str(path), "--speed", "max", "--events", "-")
    assert r.returncode == 2
    msg = one_line(r.stderr)
    assert str(path) in msg and f"row {k + 1}" in msg and "high < low" in msg
    assert r.stdout and r.stdout == expected(good)


@pytest.mark.parametrize("args, words", [
    (["--start", "yesterday"], ["--start", "yesterday"]),
    (["--speed", "fast"], ["--speed", "fast"]),
    (["/nonexistent/bars.parquet"], ["/nonexistent/bars.parquet", "no such file"]),
    (["--start", "2012-02-01", "--end", "2012-01-01"], ["--start", "--end"]),
    (["--serve", "0.0.0.0:0"], ["0.0.0.0", "--serve-public"]),
    (["--serve", "nonsense"], ["HOST:PORT"]),
    (["--hold"], ["--serve"]),
])
def test_bad_arguments_are_one_line_and_exit_2(args, words):
    r = barwatch("replay", *args)
    assert r.returncode == 2
    msg = one_line(r.stderr)
    for w in words:
        assert w in msg


def test_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[engine]\ntimeframe = \"2Day\"\n")
    r = barwatch("replay", "--config", str(cfg), "--speed", "max")
    assert r.returncode == 2 and "timeframe" in one_line(r.stderr) and str(cfg) in r.stderr.decode()


# ---- pipes, signals, terminals ---------------------------------------------------------------

def test_closed_pipe_ends_quietly(tmp_path, bundled):
    status = tmp_path / "status"
    script = f"'{BARWATCH}' replay --speed max | head -3; echo ${{PIPESTATUS[0]}} > '{status}'"
    r = subprocess.run(["bash", "-c", script], capture_output=True, timeout=180, env=env())
    assert r.stdout == b"".join(bundled.splitlines(keepends=True)[:3])
    assert r.stderr == b""
    assert status.read_text().strip() == "0"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_flushes_and_summarises(tmp_path, bundled, sig):
    out = tmp_path / "ev.jsonl"
    p = subprocess.Popen([BARWATCH, "replay", "--speed", str(20 * 86400), "--events", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    deadline = time.monotonic() + 120
    while (not out.exists() or out.read_bytes().count(b"\n") < 5) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0 and stdout == b""
    m = SUMMARY.match(one_line(stderr))
    assert m and m.group(1) == f"stopped by {sig.name}"
    data = out.read_bytes()
    assert data.endswith(b"\n") and len(data.splitlines()) == int(m.group(3)) >= 5
    assert bundled.startswith(data)  # every line whole, in order, nothing lost
    assert 0 < int(m.group(2)) < 12154
    for x in data.splitlines():
        decode(x)


def test_table_draws_under_a_pseudo_terminal():
    """stdout a terminal and no --events: the table on stdout, no event lines anywhere."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen([BARWATCH, "replay", "--speed", "max", "--start", "2012-06-01", "--end", "2012-09-01"],
                         stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env(TERM="xterm-256color"))
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    assert p.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    assert "barwatch · 1Day" in text and "sma10" in text and "rsi14" in text
    for sym in ("AAPL", "FB", "GOOG", "IBM", "MSFT"):
        assert sym in text
    assert '"seq"' not in text
    assert re.search(r"replay done: \d+ bars, \d+ events", text)


# ---- fan-out -----------------------------------------------------------------------------------

def start(*args: str, **kw) -> tuple[subprocess.Popen, str]:
    """Start a serving replay; its ws:// address from the "serving" line on stderr."""
    p = subprocess.Popen([BARWATCH, "replay", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=kw.get("env", env()))
    line = p.stderr.readline().decode()
    m = re.match(r"serving (ws://127\.0\.0\.1:\d+)", line)
    assert m, line + p.stderr.read().decode()
    return p, m.group(1)


async def read_until(p: subprocess.Popen, text: str) -> list[str]:
    seen = []
    while True:
        line = (await asyncio.to_thread(p.stderr.readline)).decode()
        assert line, "\n".join(seen) + f" (exit {p.wait()})"
        seen.append(line.rstrip("\n"))
        if text in line:
            return seen


async def collect(url: str, n: int | None = None, **kw) -> tuple[list[str], int | None, str | None]:
    got: list[str] = []
    async with connect(url, **kw) as ws:
        try:
            while n is None or len(got) < n:
                got.append(await ws.recv())
        except ConnectionClosed:
            pass
    return got, ws.close_code, ws.close_reason


def test_fanout_filters_and_cuts_off_a_client_that_never_reads(tmp_path, bundled):
    """Two clients, the replay starting when both are in: a filtered one that reads gets exactly
    its events; one that never reads (queue 5) is closed with 1013 while the replay finishes and
    the events file gets every line."""
    cfg = write_config(tmp_path, queue=5)
    out = tmp_path / "ev.jsonl"
    p, url = start("--serve", "127.0.0.1:0", "--wait-clients", "2", "--speed", "max", "--config", str(cfg),
                   "--events", str(out))

    async def main():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        async with connect(url, sock=sock, max_queue=1) as slow:
            reader = asyncio.create_task(collect(url + "/?symbols=IBM,AAPL&rules=ma_cross"))
            seen = await read_until(p, "fan-out: closed")
            got = 0
            try:
                while True:
                    await slow.recv()
                    got += 1
            except ConnectionClosed:
                pass
            return seen, got, slow.close_code, slow.close_reason, await reader

    seen, got, code, reason, (some, code2, reason2) = asyncio.run(main())
    rest = p.communicate(timeout=60)[1].decode().splitlines()
    assert p.returncode == 0
    assert code == 1013 and "too slow" in reason and got < len(bundled.splitlines()), (code, reason, got, seen,
                                                                                   rest)
    assert "1013" in seen[-1]
    want = [x.decode() for x in bundled.splitlines()
            if json.loads(x)["symbol"] in ("IBM", "AAPL") and json.loads(x)["rule"] == "ma_cross"]
    assert some == want and len(want) > 20 and (code2, reason2) == (1000, "replay finished")
    assert out.read_bytes() == bundled
    m = SUMMARY.match(rest[-1])
    assert m and m.group(1) == "done" and "fan-out: 2 clients, 1 cut off" in rest[-1]


def test_fanout_resume_token_and_hold(tmp_path, bundled):
    """--hold keeps serving after the replay: ?since=N resumes out of the kept history (410 once
    it is gone); with BARWATCH_TOKEN a client without it gets 401; SIGTERM then stops cleanly."""
    cfg = write_config(tmp_path, history=100)
    p, url = start("--serve", "127.0.0.1:0", "--hold", "--speed", "max", "--config", str(cfg),
                   env=env(BARWATCH_TOKEN="s3cret"))
    lines = [x.decode() for x in bundled.splitlines()]
    n = len(lines)

    async def main():
        await read_until(p, "still serving")
        codes = []
        for q in ("/?since=0", f"/?since={n - 10}&token=nope"):
            with pytest.raises(InvalidStatus) as e:
                await collect(url + q, 1)
            codes.append(e.value.response.status_code)
        with pytest.raises(InvalidStatus) as e:
            await collect(url + "/?since=0&token=s3cret", 1)
        codes.append(e.value.response.status_code)
        tail, _, _ = await collect(url + f"/?since={n - 10}&token=s3cret", 10)
        bearer, _, _ = await collect(url + f"/?since={n - 3}", 3, additional_headers={"Authorization": "Bearer s3cret"})
        return codes, tail, bearer

    codes, tail, bearer = asyncio.run(main())
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=60)[1].decode().splitlines()
    assert codes == [401, 401, 410]
    assert tail == lines[-10:] and bearer == lines[-3:]
    assert p.returncode == 0 and SUMMARY.match(rest[-1]).group(1) == "done"
