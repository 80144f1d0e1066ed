"""The fake is faithful: Alpaca's official Python SDK (alpaca-py) works against it unchanged,
only pointed at it with url_override, and it answers faults as Alpaca documents."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from fake_alpaca import FakeAlpaca, msft_minutes
from live_helpers import until
from websockets.asyncio.client import connect


def test_alpaca_py_stream_receives_bars_and_updates():
    async def go():
        async with FakeAlpaca() as fake:
            bars, updates = [], []
            stream = StockDataStream(fake.key, fake.secret, url_override=fake.stream_url + "/v2/iex")

            async def on_bar(b):
                bars.append(b)

            async def on_update(b):
                updates.append(b)

            stream.subscribe_bars(on_bar, "MSFT")
            stream.subscribe_updated_bars(on_update, "MSFT")
            task = asyncio.create_task(stream._run_forever())  # run() would need its own loop (#618)
            await fake.wait_subscribed()
            await fake.publish(5)
            t = fake.minutes[4]
            await fake.update("MSFT", t, c=fake.bar("MSFT", t)["c"] + 0.5)
            await until(lambda: len(bars) == 5 and len(updates) == 1)
            await stream.stop_ws()
            await asyncio.wait_for(task, 10)
            return bars, updates, fake

    bars, updates, fake = asyncio.run(go())
    src = msft_minutes().head(5)
    assert [b.symbol for b in bars] == ["MSFT"] * 5
    assert [int(b.timestamp.timestamp() * 1e9) for b in bars] == src["t"].to_list()
    assert [b.close for b in bars] == src["close"].to_list()
    assert [b.volume for b in bars] == src["volume"].to_list()
    assert updates[0].timestamp == bars[-1].timestamp and updates[0].close == bars[-1].close + 0.5
    assert fake.content_types == ["application/msgpack"]  # alpaca-py asks for msgpack


def test_alpaca_py_rest_pages_through_published_bars():
    async def go():
        async with FakeAlpaca() as fake:
            await fake.publish(2500)
            fake.page_cap = 1000  # the server sends at most 1000 a page: alpaca-py must page
            client = StockHistoricalDataClient(fake.key, fake.secret, url_override=fake.data_url)
            req = StockBarsRequest(symbol_or_symbols=["MSFT"], timeframe=TimeFrame.Minute,
                                   start=datetime(2022, 5, 1, tzinfo=UTC))
            got = await asyncio.to_thread(client.get_stock_bars, req)
            day = await asyncio.to_thread(client.get_stock_bars, StockBarsRequest(
                symbol_or_symbols="MSFT", timeframe=TimeFrame.Day, start=datetime(2022, 5, 1, tzinfo=UTC)))
            bad = StockHistoricalDataClient(fake.key, "wrong", url_override=fake.data_url)
            with pytest.raises(APIError) as e:
                await asyncio.to_thread(bad.get_stock_bars, req)
            return got, day, fake, e.value.status_code

    got, day, fake, status = asyncio.run(go())
    bars = got.data["MSFT"]
    src = msft_minutes().head(2500)  # only what the stream has published
    assert len(bars) == 2500
    assert [b.close for b in bars] == src["close"].to_list()
    assert len([r for r in fake.requests if r.get("page_token")]) == 2  # three pages
    assert status == 403
    # daily bars: the regular session's, labelled at midnight New York (as Alpaca's)
    first = day.data["MSFT"][0]
    assert first.timestamp.isoformat() == "2022-05-18T04:00:00+00:00"
    d0 = src.filter(src["t"] < 1652932800 * 10**9)
    assert (first.open, first.close, first.volume) == (d0["open"][0], d0["close"][-1], d0["volume"].sum())


@pytest.mark.parametrize("case", ["bad_key", "second_connection", "sip_not_in_plan", "subscribe_first"])
def test_errors_as_alpaca_sends_them(case):
    async def go():
        async with FakeAlpaca() as fake:
            feed = "sip" if case == "sip_not_in_plan" else "iex"
            holder = None
            if case == "second_connection":
                holder = await connect(fake.stream_url + "/v2/iex")
                await holder.recv()
                await holder.send(json.dumps({"action": "auth", "key": fake.key, "secret": fake.secret}))
                await holder.recv()
            async with connect(fake.stream_url + f"/v2/{feed}") as ws:
                hello = json.loads(await ws.recv())
                if case == "subscribe_first":
                    await ws.send(json.dumps({"action": "subscribe", "bars": ["MSFT"]}))
                    return hello, json.loads(await ws.recv())
                secret = "nope" if case == "bad_key" else fake.secret
                await ws.send(json.dumps({"action": "auth", "key": fake.key, "secret": secret}))
                reply = json.loads(await ws.recv())
                await ws.wait_closed()  # the server hangs up after a fatal error
            if holder is not None:
                await holder.close()
            return hello, reply

    hello, reply = asyncio.run(go())
    assert hello == [{"T": "success", "msg": "connected"}]
    code, msg = {"bad_key": (402, "auth failed"), "second_connection": (406, "connection limit exceeded"),
                 "sip_not_in_plan": (409, "insufficient subscription"),
                 "subscribe_first": (401, "not authenticated")}[case]
    assert reply == [{"T": "error", "code": code, "msg": msg}]


def test_json_frames_have_rfc3339_times_and_subscription_lists():
    async def go():
        async with FakeAlpaca() as fake:
            async with connect(fake.stream_url + "/v2/iex") as ws:
                await ws.recv()
                await ws.send(json.dumps({"action": "auth", "key": fake.key, "secret": fake.secret}))
                auth = json.loads(await ws.recv())
                await ws.send(json.dumps({"action": "subscribe", "bars": ["MSFT"], "dailyBars": ["MSFT"]}))
                sub = json.loads(await ws.recv())
                await fake.publish(1)
                frame = json.loads(await ws.recv()) + json.loads(await ws.recv())  # bars, then daily
            return auth, sub, frame

    auth, sub, frame = asyncio.run(go())
    assert auth == [{"T": "success", "msg": "authenticated"}]
    assert sub[0]["T"] == "subscription" and sub[0]["bars"] == ["MSFT"] and sub[0]["dailyBars"] == ["MSFT"]
    assert sub[0]["trades"] == [] and sub[0]["updatedBars"] == []
    b, d = frame
    assert b["T"] == "b" and b["S"] == "MSFT" and b["t"] == "2022-05-18T16:00:00Z"
    assert set(b) == {"T", "S", "o", "h", "l", "c", "v", "t", "n", "vw"}
    assert d["T"] == "d" and d["t"] == "2022-05-18T04:00:00Z"
