"""`barwatch fetch` against the fake Alpaca REST endpoint: paging through alpaca-py, Parquet in
the replay format with its metadata, one-line errors."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import polars as pl
import pytest
from fake_alpaca import FakeAlpaca, msft_minutes

from stream.bars import BarBatch
from stream.recorder import metadata

ROOT = Path(__file__).resolve().parent.parent


def _fetch(tmp_path: Path, *args: str, secret: str | None = None, keys: bool = True, page_cap: int = 10000):
    async def go():
        async with FakeAlpaca() as fake:
            await fake.publish_all()
            fake.page_cap = page_cap
            env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "BARWATCH_"))}
            if keys:
                env.update(APCA_API_KEY_ID=fake.key, APCA_API_SECRET_KEY=secret or fake.secret)
            env["BARWATCH_ALPACA_DATA_URL"] = fake.data_url
            p = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "stream.cli", "fetch", *args, cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(p.communicate(), 120)
            return p.returncode, err.decode(), fake.requests

    return asyncio.run(go())


def test_fetch_minutes_pages_and_writes_the_replay_format(tmp_path):
    code, err, requests = _fetch(tmp_path, "MSFT", "--start", "2022-05-18", "--end", "2022-06-15",
                                 "--out", "msft.parquet", page_cap=1000)
    assert code == 0, err
    assert "wrote 7,440 bars of 1 symbol(s) to msft.parquet" in err
    assert any(r.get("page_token") for r in requests)  # alpaca-py followed next_page_token
    assert all(r["feed"] == "iex" and r["adjustment"] == "raw" for r in requests)
    df = pl.read_parquet(tmp_path / "msft.parquet")
    src = msft_minutes()
    assert df["t"].dt.epoch("ns").to_list() == src["t"].to_list()
    assert df["close"].to_list() == src["close"].to_list() and df["volume"].to_list() == src["volume"].to_list()
    assert df.schema == BarBatch.from_polars(df).to_polars().schema
    assert metadata(tmp_path / "msft.parquet")["timeframe"] == "1Min"


def test_fetch_daily_with_default_name(tmp_path):
    code, err, _ = _fetch(tmp_path, "MSFT", "--start", "2022-06-01", "--end", "2022-06-03", "--timeframe", "1Day")
    assert code == 0, err
    (out,) = tmp_path.glob("*.parquet")
    assert out.name == "MSFT-1Day-2022-06-01-2022-06-03.parquet"
    df = pl.read_parquet(out)
    assert df["t"].dt.strftime("%Y-%m-%dT%H:%MZ").to_list() == [
        "2022-06-01T04:00Z", "2022-06-02T04:00Z", "2022-06-03T04:00Z"]  # --end date: through that day


@pytest.mark.parametrize("case", ["wrong_secret", "missing_keys", "bad_time"])
def test_fetch_errors_are_one_line(tmp_path, case):
    args = ["MSFT", "--start", "yesterday" if case == "bad_time" else "2022-06-01", "--end", "2022-06-02"]
    code, err, _ = _fetch(tmp_path, *args, secret="WRONG-SECRET-x" if case == "wrong_secret" else None,
                          keys=case != "missing_keys")
    assert code == {"wrong_secret": 3, "missing_keys": 2, "bad_time": 2}[case]
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in err and "WRONG-SECRET" not in err
    assert {"wrong_secret": "HTTP 403", "missing_keys": "APCA_API_KEY_ID and APCA_API_SECRET_KEY",
            "bad_time": "bad time 'yesterday'"}[case] in line
    assert not list(tmp_path.glob("*.parquet"))
