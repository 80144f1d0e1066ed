"""The websocket fan-out, in process: a real server on 127.0.0.1 and real websockets clients,
fed the engine's events over the bundled daily bars."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from stream.bars import BarBatch
from stream.engine import Engine
from stream.events import Event, encode
from stream.outputs.fanout import FanOut, ServeError, parse_address, parse_query
from stream.outputs.jsonl import encode_lines


@pytest.fixture(scope="module")
def events(daily) -> list[Event]:
    return Engine().process(BarBatch.from_polars(daily))


async def collect(url: str, **kw) -> tuple[list[str], int | None, str | None]:
    """Every message until the server closes; the close code and reason."""
    got: list[str] = []
    async with connect(url, **kw) as ws:
        try:
            while True:
                got.append(await ws.recv())
        except ConnectionClosed:
            pass
    return got, ws.close_code, ws.close_reason


async def feed(fan: FanOut, events: list[Event], size: int = 100) -> None:
    """What the runner does: batches of events, yielding to the loop between them."""
    for i in range(0, len(events), size):
        part = events[i:i + size]
        fan.write(part, encode_lines(part))
        await asyncio.sleep(0)


def line(e: Event) -> str:
    return encode(e)[:-1].decode()


def test_address_parsing_and_loopback_only():
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    assert parse_address(":8765") == ("127.0.0.1", 8765)
    assert parse_address("[::1]:9") == ("::1", 9)
    assert parse_address("localhost:1") == ("localhost", 1)
    for bad in ("0.0.0.0:8765", "192.168.1.4:1", "example.com:80"):
        with pytest.raises(ServeError, match="--serve-public"):
            parse_address(bad)
        assert parse_address(bad, public=True)[1] in (8765, 1, 80)
    for bad in ("8765", "host:", "127.0.0.1:x", "127.0.0.1:70000"):
        with pytest.raises(ServeError, match="HOST:PORT"):
            parse_address(bad)


def test_query_parsing():
    q = parse_query("/?symbols=IWM,SPY&rules=ma_cross&since=12")
    assert q.symbols == {"IWM", "SPY"} and q.rules == {"ma_cross"} and q.since == 12
    assert q.wants("SPY", "ma_cross") and not q.wants("SPY", "rsi_bands") and not q.wants("QQQ", "ma_cross")
    assert parse_query("/").wants("ANY", "thing")
    for bad in ("/?since=x", "/?since=-1", "/?symbol=IWM"):
        with pytest.raises(ValueError):
            parse_query(bad)


def test_every_event_in_order_and_filters(events):
    async def main():
        fan = FanOut("127.0.0.1", 0, queue=len(events) + 1)
        url = await fan.start()
        everything = asyncio.create_task(collect(url))
        some = asyncio.create_task(collect(url + "/?symbols=IBM,MSFT&rules=ma_cross,rsi_bands"))
        await fan.wait_clients(2)
        await feed(fan, events)
        await fan.stop()
        return await everything, await some, fan

    (got, code, reason), (some, code2, _), fan = asyncio.run(main())
    assert got == [line(e) for e in events]
    assert (code, reason, code2) == (1000, "replay finished", 1000)
    want = [line(e) for e in events if e.symbol in ("IBM", "MSFT") and e.rule in ("ma_cross", "rsi_bands")]
    assert some == want and len(want) > 50
    assert fan.cutoffs == 0 and fan.served == 2


def test_since_resumes_from_the_kept_history(events):
    async def main():
        fan = FanOut("127.0.0.1", 0, history=50)
        url = await fan.start()
        await feed(fan, events[:100])  # seq 1..100; seq 51..100 kept
        with pytest.raises(InvalidStatus) as gone:
            await collect(url + "/?since=49")
        resumed = asyncio.create_task(collect(url + "/?since=50"))
        later = asyncio.create_task(collect(url + "/?since=90&rules=rsi_bands"))
        await fan.wait_clients(2)
        await feed(fan, events[100:200])
        await fan.stop()
        return gone.value.response, await resumed, await later

    resp, (resumed, _, _), (later, _, _) = asyncio.run(main())
    assert resp.status_code == 410 and b"starts at seq 51" in resp.body
    assert [json.loads(m)["seq"] for m in resumed] == list(range(51, 201))
    assert resumed == [line(e) for e in events[50:200]]
    assert later == [line(e) for e in events[90:200] if e.rule == "rsi_bands"]


def test_a_client_that_never_reads_is_cut_off_with_1013(events):
    """A client that stops reading fills its socket and then its queue (5 events): closed with
    1013 and a reason, while a filtered client that reads gets all its events, and every write
    returns at once."""

    async def main():
        fan = FanOut("127.0.0.1", 0, queue=5)
        cut: list[str] = []
        fan.on_cut = cut.append
        url = await fan.start()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", fan.port))
        async with connect(url, sock=sock, max_queue=1) as slow:
            reader = asyncio.create_task(collect(url + "/?symbols=IBM&rules=ma_cross"))
            await fan.wait_clients(2)
            await feed(fan, events, size=5)  # 5 events a batch: the reading client never holds more
            assert fan.cutoffs == 1 and fan.clients == 1
            got = 0
            try:
                while True:
                    await slow.recv()
                    got += 1
            except ConnectionClosed:
                pass
            await fan.stop()
            return cut, got, (slow.close_code, slow.close_reason), await reader

    cut, got, (code, reason), (some, code2, _) = asyncio.run(main())
    assert code == 1013 and "too slow" in reason and "5 events" in reason
    assert 0 < got < len(events)
    assert len(cut) == 1 and "1013" in cut[0]
    assert some == [line(e) for e in events if e.symbol == "IBM" and e.rule == "ma_cross"] and code2 == 1000


def test_token(events, monkeypatch):
    monkeypatch.setenv("BARWATCH_TOKEN", "s3cret")

    async def main():
        fan = FanOut("127.0.0.1", 0)
        url = await fan.start()
        refused = []
        for kw in ({}, {"additional_headers": {"Authorization": "Bearer nope"}}):
            with pytest.raises(InvalidStatus) as e:
                await collect(url, **kw)
            refused.append(e.value.response.status_code)
        with pytest.raises(InvalidStatus) as e:
            await collect(url + "/?token=wrong")
        refused.append(e.value.response.status_code)
        a = asyncio.create_task(collect(url + "/?token=s3cret"))
        b = asyncio.create_task(collect(url, additional_headers={"Authorization": "Bearer s3cret"}))
        await fan.wait_clients(2)
        await feed(fan, events[:30])
        await fan.stop()
        return refused, await a, await b

    refused, (a, _, _), (b, _, _) = asyncio.run(main())
    assert refused == [401, 401, 401]
    assert a == b == [line(e) for e in events[:30]]


def test_bad_query_is_400():
    async def main():
        fan = FanOut("127.0.0.1", 0)
        url = await fan.start()
        try:
            with pytest.raises(InvalidStatus) as e:
                await collect(url + "/?colour=red")
        finally:
            await fan.stop()
        return e.value.response

    resp = asyncio.run(main())
    assert resp.status_code == 400 and b"colour" in resp.body
