"""A fake Alpaca market-data service on 127.0.0.1, speaking the real protocols over real sockets.

- Stream (the websockets package): /v2/{iex,sip,delayed_sip,test} and /v1beta3/crypto/us.
  `[{"T":"success","msg":"connected"}]` on connect, auth by message, subscribe/unsubscribe to
  bars, updatedBars, dailyBars (symbols or "*"), batched arrays of messages. JSON, or msgpack
  when the upgrade request says `Content-Type: application/msgpack` (as Alpaca decides), with
  bar times as msgpack Timestamps. Errors as Alpaca sends them: 400, 401, 402 (and close),
  404 auth timeout, 406 connection limit (per key), 409 feed not in the plan, 500 on demand.
- REST (http.server in a thread): GET /v2/stocks/bars and /v1beta3/crypto/us/bars with
  symbols, timeframe (1Min, nMin, nHour, 1Day), start, end (inclusive, RFC 3339 or a date),
  limit (default 1000, at most 10000), page_token / next_page_token, sort, feed, adjustment;
  key headers checked. It serves only what the stream has published (the fake's clock), as the
  real one cannot serve the future.

The bars are real (the bundled MSFT minutes); the test drives time with `publish`, and makes
faults happen: `drop` (abrupt close), `stall` (silent: no data, no pongs), `outage` (refuse
upgrades), `send` (any messages or raw bytes: malformed frames, NaN prices, unknown types),
`update` (a `u` bar; REST then serves the revised bar). The source data has no trade count or
VWAP, so `n` and `vw` are sent as null (Alpaca sends numbers there).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import functools
import gzip
import json
import math
import threading
from collections import defaultdict
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import msgpack
import polars as pl
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

MINUTE = 60_000_000_000
NY = ZoneInfo("America/New_York")
DATA = Path(__file__).resolve().parent.parent / "stream" / "data"
MSFT = DATA / "MSFT_1min_2022-05-18_2022-06-15.csv.gz"
STOCK_FEEDS = ("iex", "sip", "delayed_sip", "test")
CHANNELS = ("bars", "updatedBars", "dailyBars")


def msft_minutes(symbol: str = "MSFT") -> pl.DataFrame:
    """The bundled real MSFT 1-minute bars: symbol, t (ns UTC), open, high, low, close, volume."""
    with gzip.open(MSFT, "rb") as f:
        df = pl.read_csv(f.read())
    return df.select(
        pl.lit(symbol).alias("symbol"),
        pl.col("date").str.to_datetime(time_zone="UTC").dt.epoch("ns").alias("t"),
        "open", "high", "low", "close", pl.col("volume").cast(pl.Float64),
    )


def rfc3339(ns: int) -> str:
    s, frac = divmod(int(ns), 1_000_000_000)
    base = datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return base + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def parse_time(s: str) -> int:
    """RFC 3339 or YYYY-MM-DD (midnight New York, as Alpaca reads dates) -> ns."""
    if len(s) == 10:
        d = datetime.fromisoformat(s).replace(tzinfo=NY)
        return int(d.timestamp()) * 1_000_000_000
    d = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return int(d.timestamp() * 1_000_000) * 1000


@functools.lru_cache(maxsize=1 << 16)
def _day_label(t: int) -> int:
    """Midnight New York of the day holding t (Alpaca's daily bar time)."""
    d = datetime.fromtimestamp(t / 1e9, NY).date()
    return int(datetime(d.year, d.month, d.day, tzinfo=NY).timestamp()) * 1_000_000_000


@functools.lru_cache(maxsize=1 << 16)
def _in_session(t: int) -> bool:
    d = datetime.fromtimestamp(t / 1e9, NY)
    m = d.hour * 60 + d.minute
    return 570 <= m < 960


class _Conn:
    def __init__(self, ws: ServerConnection, binary: bool, feed: str) -> None:
        self.ws = ws
        self.binary = binary
        self.feed = feed
        self.key: str | None = None
        self.subs: dict[str, set[str]] = {c: set() for c in CHANNELS}

    def wants(self, channel: str, symbol: str) -> bool:
        s = self.subs[channel]
        return symbol in s or "*" in s


class FakeAlpaca:
    """Stream + REST on loopback; `async with FakeAlpaca(bars) as fake:` starts both."""

    def __init__(self, bars: pl.DataFrame | None = None, key: str = "fake-key-id",
                 secret: str = "fake-secret-key", max_connections: int = 1,
                 feeds: tuple[str, ...] = ("iex", "test", "delayed_sip", "crypto"),
                 auth_timeout: float = 10.0) -> None:
        bars = msft_minutes() if bars is None else bars
        self.key, self.secret = key, secret
        self.max_connections = max_connections
        self.feeds = set(feeds)
        self.auth_timeout = auth_timeout
        self.rows: dict[tuple[str, int], dict] = {}
        self.times: dict[str, list[int]] = defaultdict(list)
        for r in bars.sort(["t", "symbol"]).iter_rows(named=True):
            t = int(r["t"]) if not isinstance(r["t"], datetime) else int(r["t"].timestamp() * 1e9)
            self.rows[(r["symbol"], t)] = {
                "S": r["symbol"], "o": r["open"], "h": r["high"], "l": r["low"],
                "c": r["close"], "v": r["volume"], "t": t,
                "n": _num(r.get("trade_count")), "vw": _num(r.get("vwap")),
            }
            self.times[r["symbol"]].append(t)
        self.minutes = sorted({t for (_, t) in self.rows})
        self.by_minute: dict[int, list[str]] = defaultdict(list)
        for (s, t) in self.rows:
            self.by_minute[t].append(s)
        self._days: dict[str, dict] = {}  # running daily bars
        self.pos = 0  # next minute to publish
        self.clock = self.minutes[0] if self.minutes else 0  # REST serves bars ending <= clock
        self.conns: list[_Conn] = []
        self.refusing = False
        self.stalled: set[_Conn] = set()
        self.connections = 0  # upgrades accepted, ever
        self.auth_ok = 0
        self.subscribed = 0  # subscription acks sent, ever
        self.requests: list[dict] = []  # REST queries seen
        self.client_messages: list[dict] = []
        self.content_types: list[str] = []  # of each upgrade request (msgpack or JSON)
        self.fail_after_auth: list[int] = []  # error codes to send after the next auths
        self.page_cap = 10000  # most bars per REST page (Alpaca may send fewer than limit)
        self._sub_event = asyncio.Event()
        self._ws_server = None
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------
    async def __aenter__(self) -> FakeAlpaca:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def start(self) -> None:
        self._ws_server = await serve(self._handler, "127.0.0.1", 0,
                                      process_request=self._process_request, ping_interval=None,
                                      max_size=None)
        port = self._ws_server.sockets[0].getsockname()[1]
        self.stream_url = f"ws://127.0.0.1:{port}"
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._rest_handler())
        self._http.daemon_threads = True
        self.data_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        for c in list(self.conns):
            c.ws.transport.abort()
        if self._ws_server is not None:
            self._ws_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 2)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    # ---- the stream ---------------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request):
        path = urlparse(request.path).path.rstrip("/")
        parts = path.split("/")
        ok = (len(parts) == 3 and parts[1] == "v2" and parts[2] in STOCK_FEEDS) or path == "/v1beta3/crypto/us"
        if not ok:
            return Response(404, "Not Found", Headers([("Content-Length", "0")]), b"")
        if self.refusing:
            return Response(503, "Service Unavailable", Headers([("Content-Length", "0")]), b"")
        return None

    async def _send(self, c: _Conn, msgs: list[dict] | bytes | str) -> None:
        if isinstance(msgs, (bytes, str)):
            data = msgs
        elif c.binary:
            data = msgpack.packb([self._pack(m) for m in msgs], datetime=False)
        else:
            data = json.dumps([self._json(m) for m in msgs])
        await c.ws.send(data)

    @staticmethod
    def _json(m: dict) -> dict:
        if "t" in m and isinstance(m["t"], int):
            m = dict(m, t=rfc3339(m["t"]))
        return m

    @staticmethod
    def _pack(m: dict) -> dict:
        if "t" in m and isinstance(m["t"], int):
            m = dict(m, t=msgpack.Timestamp.from_unix_nano(m["t"]))
        return m

    def _subscription(self, c: _Conn) -> dict:
        msg = {"T": "subscription", "trades": [], "quotes": []}
        for ch in CHANNELS:
            msg[ch] = sorted(c.subs[ch])
        if c.feed != "crypto":
            msg.update(statuses=[], lulds=[], corrections=[], cancelErrors=[])
        return msg

    async def _handler(self, ws: ServerConnection) -> None:
        ctype = ws.request.headers.get("Content-Type", "")
        path = urlparse(ws.request.path).path.rstrip("/")
        feed = "crypto" if "crypto" in path else path.split("/")[2]
        c = _Conn(ws, ctype.split(";")[0].strip() == "application/msgpack", feed)
        self.content_types.append(ctype)
        self.connections += 1
        self.conns.append(c)
        try:
            await self._send(c, [{"T": "success", "msg": "connected"}])
            await self._session(c)
        except Exception:  # the client went away: nothing to do
            pass
        finally:
            if c in self.conns:
                self.conns.remove(c)
            self.stalled.discard(c)

    async def _session(self, c: _Conn) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.auth_timeout
        while True:
            try:
                timeout = None if c.key is not None else max(0.0, deadline - loop.time())
                raw = await asyncio.wait_for(c.ws.recv(), timeout)
            except TimeoutError:
                await self._send(c, [{"T": "error", "code": 404, "msg": "auth timeout"}])
                await c.ws.close()
                return
            try:
                msg = msgpack.unpackb(raw) if isinstance(raw, bytes) else json.loads(raw)
                action = msg.get("action")
            except Exception:
                await self._send(c, [{"T": "error", "code": 400, "msg": "invalid syntax"}])
                continue
            self.client_messages.append({k: v for k, v in msg.items() if k not in ("key", "secret")})
            if action == "auth":
                if c.key is not None:
                    await self._send(c, [{"T": "error", "code": 403, "msg": "already authenticated"}])
                    continue
                if msg.get("key") != self.key or msg.get("secret") != self.secret:
                    await self._send(c, [{"T": "error", "code": 402, "msg": "auth failed"}])
                    await c.ws.close()
                    return
                active = sum(1 for o in self.conns if o.key == self.key and o is not c)
                if active >= self.max_connections:
                    await self._send(c, [{"T": "error", "code": 406, "msg": "connection limit exceeded"}])
                    await c.ws.close()
                    return
                if c.feed not in self.feeds:
                    await self._send(c, [{"T": "error", "code": 409, "msg": "insufficient subscription"}])
                    await c.ws.close()
                    return
                c.key = msg["key"]
                self.auth_ok += 1
                await self._send(c, [{"T": "success", "msg": "authenticated"}])
                if self.fail_after_auth:
                    code = self.fail_after_auth.pop(0)
                    await self._send(c, [{"T": "error", "code": code, "msg": "internal error"}])
                    await c.ws.close()
                    return
            elif action in ("subscribe", "unsubscribe"):
                if c.key is None:
                    await self._send(c, [{"T": "error", "code": 401, "msg": "not authenticated"}])
                    continue
                for ch in CHANNELS:
                    for s in msg.get(ch) or []:
                        (c.subs[ch].add if action == "subscribe" else c.subs[ch].discard)(s)
                await self._send(c, [self._subscription(c)])
                if action == "subscribe":
                    self.subscribed += 1
                    self._sub_event.set()
            else:
                await self._send(c, [{"T": "error", "code": 400, "msg": "invalid syntax"}])

    def _live(self) -> list[_Conn]:
        return [c for c in self.conns if c.key is not None and c not in self.stalled]

    async def wait_subscribed(self, count: int = 1, timeout: float = 300.0) -> None:
        """Until `count` subscriptions have been acknowledged since the start."""
        async def wait():
            while self.subscribed < count:
                self._sub_event.clear()
                await self._sub_event.wait()
        await asyncio.wait_for(wait(), timeout)

    # ---- driving time -------------------------------------------------------------------------
    def bar(self, symbol: str, t: int) -> dict:
        return self.rows[(symbol, t)]

    async def publish(self, minutes: int = 1) -> int:
        """Send the next minutes' bars (one frame per minute, as Alpaca batches) to every
        subscribed client; the REST side then serves them. Returns how many were sent."""
        sent = 0
        for _ in range(minutes):
            if self.pos >= len(self.minutes):
                break
            t = self.minutes[self.pos]
            self.pos += 1
            self.clock = t + MINUTE
            symbols = sorted(self.by_minute[t])
            daily = {}
            for c in self._live():  # the minute's bars in one frame, then the daily bars so far
                msgs = [dict(self.rows[(s, t)], T="b") for s in symbols if c.wants("bars", s)]
                days = [dict(daily.get(s) or daily.setdefault(s, self._daily(s, t)), T="d")
                        for s in symbols if c.wants("dailyBars", s)]
                for frame in (msgs, days):
                    if frame:
                        with contextlib.suppress(Exception):
                            await self._send(c, frame)
            sent += 1
        return sent

    async def publish_all(self) -> int:
        return await self.publish(len(self.minutes))

    @property
    def remaining(self) -> int:
        return len(self.minutes) - self.pos

    async def send(self, msgs: list[dict] | bytes | str) -> None:
        """Any messages (encoded per client) or a raw frame, to every subscribed client."""
        for c in self._live():
            with contextlib.suppress(Exception):
                await self._send(c, msgs)

    async def update(self, symbol: str, t: int, **changes) -> dict:
        """A `u` updated bar: the stored bar changes (REST serves it) and is streamed."""
        row = self.rows[(symbol, t)]
        row.update(changes)
        for c in self._live():
            if c.wants("updatedBars", symbol):
                with contextlib.suppress(Exception):
                    await self._send(c, [dict(row, T="u")])
        return row

    async def drop(self) -> None:
        """Close every connection abruptly (no close frame), as a network fault does."""
        for c in list(self.conns):
            c.ws.transport.abort()
        self.conns.clear()
        await asyncio.sleep(0)

    def stall(self, reap_after: float = 0.5) -> None:
        """Go silent on every current connection: no data, and no pongs (reading paused).
        Like a real server, it notices the dead connection only later: `reap_after` s, until
        which the connection still counts against the connection limit (406)."""
        loop = asyncio.get_running_loop()
        for c in list(self.conns):
            self.stalled.add(c)
            c.ws.transport.pause_reading()
            loop.call_later(reap_after, self._reap, c)

    def _reap(self, c: _Conn) -> None:
        c.ws.transport.abort()
        if c in self.conns:
            self.conns.remove(c)
        self.stalled.discard(c)

    def outage(self, on: bool = True) -> None:
        """Refuse websocket upgrades (HTTP 503) while on."""
        self.refusing = on

    def _daily(self, symbol: str, t: int) -> dict:
        """The day's bar so far (regular session) for dailyBars subscribers."""
        day = _day_label(t)
        r = self.rows[(symbol, t)]
        d = self._days.get(symbol)
        if d is None or d["t"] != day:
            d = self._days[symbol] = {"S": symbol, "o": r["o"], "h": r["h"], "l": r["l"], "c": r["c"],
                                      "v": 0.0, "t": day, "n": None, "vw": None}
        if _in_session(t):
            d.update(h=max(d["h"], r["h"]), l=min(d["l"], r["l"]), c=r["c"], v=d["v"] + r["v"])
        return dict(d)

    # ---- REST -----------------------------------------------------------------------------------
    def _bars(self, symbol: str, timeframe: str, start: int, end: int) -> list[dict]:
        times = self.times.get(symbol, [])
        lo = bisect.bisect_left(times, start)
        rows = [self.rows[(symbol, t)] for t in times[lo:] if t <= end and t + MINUTE <= self.clock]
        if timeframe in ("1Min", "1T"):
            return rows
        if timeframe in ("1Day", "1D"):
            groups: dict[int, list[dict]] = defaultdict(list)
            for r in rows:
                if _in_session(r["t"]):
                    groups[_day_label(r["t"])].append(r)
        else:
            unit = timeframe.rstrip("0123456789")
            num = int(timeframe[: len(timeframe) - len(timeframe.lstrip("0123456789"))] or 1)
            width = num * (60 if unit in ("Hour", "H") else 1) * MINUTE
            groups = defaultdict(list)
            for r in rows:
                groups[r["t"] - r["t"] % width].append(r)
        out = []
        for t0 in sorted(groups):
            g = groups[t0]
            out.append({"S": symbol, "t": t0, "o": g[0]["o"], "h": max(r["h"] for r in g),
                        "l": min(r["l"] for r in g), "c": g[-1]["c"], "v": sum(r["v"] for r in g),
                        "n": None, "vw": None})
        return out

    def rest_bars(self, query: dict[str, str]) -> tuple[int, dict]:
        """The bars endpoint: (status, body)."""
        symbols = [s for s in query.get("symbols", "").split(",") if s]
        timeframe = query.get("timeframe", "")
        if not symbols or not timeframe:
            return 400, {"message": "symbols and timeframe are required"}
        try:
            end = parse_time(query["end"]) if query.get("end") else self.clock
            start = parse_time(query["start"]) if query.get("start") else _day_label(self.clock)
            limit = int(query.get("limit") or 1000)
            offset = int(base64.b64decode(query["page_token"]).decode()) if query.get("page_token") else 0
        except (ValueError, KeyError):
            return 400, {"message": "invalid query"}
        if not 1 <= limit <= 10000:
            return 422, {"message": "invalid limit: must be between 1 and 10000"}
        rows = []
        for s in sorted(set(symbols)):
            got = self._bars(s, timeframe, start, end)
            if query.get("sort") == "desc":
                got = got[::-1]
            rows += got
        limit = min(limit, self.page_cap)
        page = rows[offset: offset + limit]
        bars: dict[str, list] = defaultdict(list)
        for r in page:
            bars[r["S"]].append({k: (rfc3339(v) if k == "t" else v) for k, v in r.items() if k != "S"})
        nxt = offset + limit
        token = base64.b64encode(str(nxt).encode()).decode() if nxt < len(rows) else None
        return 200, {"bars": dict(bars), "next_page_token": token}

    def _rest_handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                u = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(u.query).items()}
                fake.requests.append(dict(query, path=u.path))
                if (self.headers.get("APCA-API-KEY-ID") != fake.key
                        or self.headers.get("APCA-API-SECRET-KEY") != fake.secret):
                    status, body = 403, {"message": "forbidden"}
                elif u.path in ("/v2/stocks/bars", "/v1beta3/crypto/us/bars"):
                    status, body = fake.rest_bars(query)
                else:
                    status, body = 404, {"message": "not found"}
                data = json.dumps(body, allow_nan=False).encode()
                self.send_response(status, HTTPStatus(status).phrase)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _num(x):
    """NaN or missing -> None (sent as null)."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
