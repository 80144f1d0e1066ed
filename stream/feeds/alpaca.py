"""An asyncio client for Alpaca's market-data stream, on the websockets package.

Not alpaca-py's StockDataStream: its run() cannot share a running loop (alpaca-py #618), its
subscribe deadlocks inside the loop (#491), it retries a failed auth forever and it does not
notice a silent connection (#740). This client runs as one task that puts `Connected` and
`Frame` items on a queue: connect -> `connected` -> auth -> subscribe bars, updatedBars,
dailyBars -> `subscription`, then every frame decoded. Fatal errors (402 auth failed,
406 connection limit, 405, 408, 409, 410) end it with a `Fatal` item carrying a one-line
hint; other errors and dropped connections reconnect with exponential backoff and jitter
(`backoff_base` s doubling to `backoff_max` s) and resubscribe. A connection that brings
neither data nor a pong for `stall_seconds` is dropped and reconnected. Keys are sent in the
auth message only; they never appear in a log line or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import connect

from .protocol import FATAL, IGNORE, Counters, decode, encode, explain

DEFAULT_STREAM = "wss://stream.data.alpaca.markets"
CHANNELS = ("bars", "updatedBars", "dailyBars")


def stream_endpoint(base: str | None, feed: str) -> str:
    """The websocket URL of a feed: `base` + /v2/{feed}, or /v1beta3/crypto/us for crypto
    (a base that already names a version path is used as it is)."""
    base = (base or DEFAULT_STREAM).rstrip("/")
    if "/v2/" in base or "/v1beta" in base:
        return base
    return f"{base}/v1beta3/crypto/us" if feed == "crypto" else f"{base}/v2/{feed}"


@dataclass
class Connected:
    """Subscribed on a fresh connection; `attempt` 0 is the first connection of the run."""

    attempt: int


@dataclass
class Frame:
    """One server frame's messages and when it arrived (time.perf_counter_ns())."""

    msgs: list
    received: int


@dataclass
class Fatal:
    """The stream cannot go on (bad keys, plan limits): a one-line message for the user."""

    message: str
    code: int | None = None


class StreamFatal(Exception):
    """Raised by consumers on a Fatal item; str() is the one-line message."""


class _Reconnect(Exception):
    pass


class AlpacaStream:
    """One subscription to Alpaca's stream, kept alive across faults; see the module doc."""

    def __init__(self, url: str, key: str, secret: str, symbols: list[str], *,
                 binary: bool = True, stall_seconds: float = 30.0, backoff_base: float = 1.0,
                 backoff_max: float = 30.0, counters: Counters | None = None,
                 log: Callable[[str], None] | None = None, channels: tuple[str, ...] = CHANNELS) -> None:
        self.url = url
        self._key, self._secret = key, secret
        self.symbols = list(symbols)
        self.binary = binary
        self.stall_seconds = stall_seconds
        self.backoff_base = backoff_base
        self.backoff_max = max(backoff_max, backoff_base)
        self.counters = counters if counters is not None else Counters()
        self.log = log or (lambda line: None)
        self.channels = channels
        self._ws = None
        self._stopping = False
        self._got_data = False
        self._ghosts = 0
        self.ghost_retries = 5
        self.connections = 0

    def __repr__(self) -> str:  # never the keys
        return f"AlpacaStream({self.url!r}, {len(self.symbols)} symbols)"

    # ---- control from the consumer -------------------------------------------------------------
    def reconnect(self, why: str) -> None:
        """Drop the current connection (the run loop reconnects with backoff)."""
        self.log(f"reconnecting: {why}")
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    def error(self, code: int | None, msg: str | None) -> Fatal | None:
        """Handle an error message seen in a data frame: Fatal to stop, else None."""
        self.counters.errors[code] += 1
        action, text = explain(code, msg)
        if action == FATAL:
            return Fatal(text, code)
        if action == IGNORE:
            self.log(text)
            return None
        self.reconnect(text)
        return None

    async def close(self) -> None:
        self._stopping = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
            ws.transport.abort()

    # ---- the run loop --------------------------------------------------------------------------------
    def delay(self, attempt: int) -> float:
        """Backoff before reconnect number `attempt` (1, 2, ...): doubling, with jitter."""
        d = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return min(self.backoff_max, d * (0.75 + 0.5 * random.random()))

    async def run(self, queue: asyncio.Queue) -> None:
        """Connect, subscribe and put items on `queue` until closed or a fatal error."""
        failures = 0
        first = True
        while not self._stopping:
            if not first:
                failures += 1
                d = self.delay(failures)
                await asyncio.sleep(d)
                if self._stopping:
                    return
                self.counters.reconnects += 1
            first = False
            self._got_data = False
            try:
                async with connect(self.url, additional_headers=self._headers(), ping_interval=None,
                                   max_size=2**27, max_queue=None, compression=None, open_timeout=10,
                                   close_timeout=1, user_agent_header="barwatch") as ws:
                    self._ws = ws
                    fatal = await self._handshake(ws)
                    if fatal is not None and fatal.code == 406 and self.connections and \
                            self._ghosts < self.ghost_retries:
                        # right after our own reconnect, the server may still count the old
                        # connection (it reaps it soon): retry a few times before giving up
                        self._ghosts += 1
                        raise _Reconnect("connection limit exceeded: the previous connection is "
                                         "not closed at the server yet")
                    if fatal is not None:
                        await queue.put(fatal)
                        return
                    self._ghosts = 0
                    await queue.put(Connected(self.connections))
                    self.connections += 1
                    await self._receive(ws, queue)
            except _Reconnect as e:
                self.log(f"reconnecting: {e}")
            except (OSError, websockets.WebSocketException, TimeoutError) as e:
                if not self._stopping:
                    self.log(f"stream connection lost ({_why(e)}); reconnecting")
            finally:
                self._ws = None
            if self._got_data:  # the connection worked: the next fault starts the backoff afresh
                failures = 0

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/msgpack" if self.binary else "application/json"}

    async def _expect(self, ws, want: str, timeout: float = 10.0) -> Fatal | None:
        """Read control frames until a message of type `want`; errors decide."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Reconnect(f"no {want!r} from the server within {timeout:.0f} s")
            raw = await asyncio.wait_for(ws.recv(), left)
            msgs = decode(raw, self.counters) or []
            for m in msgs:
                typ = m.get("T") if isinstance(m, dict) else getattr(m, "T", None)
                if typ == "error":
                    code = m.get("code") if isinstance(m, dict) else m.code
                    text = m.get("msg") if isinstance(m, dict) else m.msg
                    self.counters.errors[code] += 1
                    action, line = explain(code, text)
                    if action == FATAL:
                        return Fatal(line, code)
                    if action != IGNORE:
                        raise _Reconnect(line)
                    self.log(line)
                elif want == "subscription" and typ == "subscription":
                    return None
                elif typ == "success":
                    msg = m.get("msg") if isinstance(m, dict) else m.msg
                    if msg == want:
                        return None

    async def _handshake(self, ws) -> Fatal | None:
        fatal = await self._expect(ws, "connected")
        if fatal is not None:
            return fatal
        await ws.send(encode({"action": "auth", "key": self._key, "secret": self._secret}, self.binary))
        fatal = await self._expect(ws, "authenticated")
        if fatal is not None:
            return fatal
        sub = {"action": "subscribe"}
        for ch in self.channels:
            sub[ch] = self.symbols
        await ws.send(encode(sub, self.binary))
        return await self._expect(ws, "subscription")

    async def _receive(self, ws, queue: asyncio.Queue) -> None:
        """Frames to the queue until the connection ends or stalls."""
        loop = asyncio.get_running_loop()
        last = [loop.time()]  # last frame or pong
        pinger = asyncio.create_task(self._ping(ws, last))
        try:
            while True:
                left = self.stall_seconds - (loop.time() - last[0])
                if left <= 0:
                    self.counters.stalls += 1
                    raise _Reconnect(f"no data and no pong for {self.stall_seconds:g} s")
                try:
                    raw = await asyncio.wait_for(ws.recv(), left)
                except TimeoutError:
                    continue
                now = time.perf_counter_ns()
                last[0] = loop.time()
                msgs = decode(raw, self.counters)
                if msgs:
                    self._got_data = True
                    queue.put_nowait(Frame(msgs, now))
        finally:
            pinger.cancel()
            with contextlib.suppress(BaseException):
                await pinger

    async def _ping(self, ws, last: list) -> None:
        """Ping a few times per stall period; each pong counts as a sign of life."""
        loop = asyncio.get_running_loop()
        every = max(self.stall_seconds / 4, 0.01)
        while True:
            await asyncio.sleep(every)
            try:
                waiter = await ws.ping()
            except Exception:
                return
            t0 = loop.time()
            try:
                await asyncio.wait_for(waiter, self.stall_seconds)
                last[0] = max(last[0], loop.time())
            except (TimeoutError, Exception):
                if loop.time() - t0 >= self.stall_seconds:
                    return


def _why(e: BaseException) -> str:
    """A short reason for a connection failure (never includes keys: they are not in URLs)."""
    if isinstance(e, websockets.InvalidStatus):
        return f"HTTP {e.response.status_code}"
    text = str(e) or type(e).__name__
    return text.splitlines()[0][:200]
