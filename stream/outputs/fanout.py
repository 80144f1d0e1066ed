"""Local websocket fan-out: every event line as a text frame to each connected client.

Query parameters: `symbols=IWM,SPY` and `rules=ma_cross` filter; `since=N` first sends the kept
events with seq > N (N = the last seq the client saw; 0 = all kept), HTTP 410 if some of them
are no longer kept; `token=` (or `Authorization: Bearer`) when BARWATCH_TOKEN is set, else 401.
The engine only appends to per-client queues; a client more than `queue` events behind is
closed with code 1013 and a reason, so a slow client never slows the engine.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..events import Event
from ..records import columns
from .jsonl import split_lines

TRY_AGAIN_LATER = 1013  # the close code for a client that fell too far behind
PARAMS = ("symbols", "rules", "since", "token")
SNDBUF = 128 * 1024  # the kernel's share of a client's backlog: bounded, so the queue bound holds


class ServeError(Exception):
    """A bad --serve address (one line for the user)."""


def parse_address(text: str, public: bool = False) -> tuple[str, int]:
    """'HOST:PORT' (or '[v6]:PORT', or ':PORT' for loopback) -> (host, port); a host that is
    not loopback is refused unless `public`."""
    host, sep, port_s = text.rpartition(":")
    if not sep or not port_s.isdigit() or int(port_s) > 65535:
        raise ServeError(f"--serve {text}: expected HOST:PORT, e.g. 127.0.0.1:8765")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    host = host or "127.0.0.1"
    if not public and not is_loopback(host):
        raise ServeError(f"--serve {text}: {host} is not a loopback address; add --serve-public to "
                         "serve other machines")
    return host, int(port_s)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Filter:
    """What one client asked for."""

    symbols: frozenset[str] | None = None
    rules: frozenset[str] | None = None
    since: int | None = None
    token: str | None = None

    def wants(self, symbol: str, rule: str) -> bool:
        return (self.symbols is None or symbol in self.symbols) and (self.rules is None or rule in self.rules)


def parse_query(path: str) -> Filter:
    """The request path's query -> Filter; ValueError (one line) on an unknown or bad parameter."""
    q = parse_qs(urlsplit(path).query, keep_blank_values=True)
    for key in q:
        if key not in PARAMS:
            raise ValueError(f"unknown parameter {key!r}: expected {', '.join(PARAMS)}")

    def names(key: str) -> frozenset[str] | None:
        if key not in q:
            return None
        return frozenset(s.strip() for v in q[key] for s in v.split(",") if s.strip())

    since = None
    if "since" in q:
        try:
            since = int(q["since"][-1])
        except ValueError:
            raise ValueError(f"since={q['since'][-1]!r}: expected an event seq number") from None
        if since < 0:
            raise ValueError("since must be >= 0")
    return Filter(names("symbols"), names("rules"), since, q["token"][-1] if "token" in q else None)


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    want: Filter
    backlog: list[bytes]
    queue: collections.deque = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cut: bool = False
    done: bool = False
    closing: asyncio.Task | None = None  # the 1013 close of a client cut off


class FanOut:
    """The websocket server; `write` is called by the runner with each batch's events."""

    def __init__(self, host: str, port: int, *, queue: int = 1000, history: int = 10000,
                 token: str | None = None, close_timeout: float = 10.0) -> None:
        self.host, self.port = host, port
        self.limit = queue
        self.token = token if token is not None else (os.environ.get("BARWATCH_TOKEN") or None)
        self.close_timeout = close_timeout
        self.history: collections.deque[tuple[int, str, str, bytes]] = collections.deque(maxlen=history)
        self.seq = 0  # the last seq written
        self.cutoffs = 0  # clients closed for being too slow
        self.served = 0  # connections accepted
        self._clients: set[_Client] = set()
        self._closing: set[asyncio.Task] = set()
        self._joined = asyncio.Condition()
        self._server: Server | None = None
        self.on_cut = None  # optional callback(message) when a client is cut off

    # ---- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> str:
        """Bind and listen; the ws:// address actually bound (port 0 picks a free one)."""
        self._server = await serve(self._handle, self.host, self.port, process_request=self._check,
                                   close_timeout=self.close_timeout)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.port = port
        return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def wait_clients(self, n: int) -> None:
        """Return once at least n clients are connected."""
        async with self._joined:
            await self._joined.wait_for(lambda: len(self._clients) >= n)

    async def stop(self, drain: float = 5.0) -> None:
        """Let clients receive what is queued (up to `drain` seconds), then close them (1000)."""
        if self._server is None:
            return
        for c in list(self._clients):
            c.done = True
            c.wake.set()
        try:
            async with asyncio.timeout(drain):
                while self._clients:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        self._server.close()
        try:
            async with asyncio.timeout(self.close_timeout + 1):
                await self._server.wait_closed()
        except TimeoutError:
            pass
        self._server = None

    # ---- the engine side ----------------------------------------------------------------------
    def write(self, events: Sequence[Event], blob: bytes) -> None:
        """Keep the batch's lines in the history and enqueue them for the clients that want them."""
        if not len(events):
            return
        lines = split_lines(blob)
        hist = self.history
        clients = self._clients
        # with no client, only the lines the history keeps matter
        start = 0 if clients else max(0, len(lines) - (hist.maxlen or 0))
        symbols, rules, seq = columns(events, start)
        for sym, rule, line in zip(symbols, rules, lines[start:], strict=True):
            seq += 1
            hist.append((seq, sym, rule, line))
            for c in clients:
                if c.want.wants(sym, rule):
                    c.queue.append(line)
        self.seq = seq
        for c in list(clients):
            if len(c.queue) > self.limit:
                self._cut(c)
            elif c.queue:
                c.wake.set()

    def flush(self) -> None:
        pass

    def max_rows(self) -> int | None:
        """While clients are connected, ask the runner for slices small enough that one slice's
        events fit in a queue, so a client that keeps up is not cut off by one big batch."""
        return max(1, self.limit // 8) if self._clients else None

    def _cut(self, c: _Client) -> None:
        behind = len(c.queue)
        c.cut = True
        c.queue.clear()
        c.wake.set()
        self._clients.discard(c)
        self.cutoffs += 1
        reason = f"too slow: more than {self.limit} events behind"
        task = c.closing = asyncio.get_running_loop().create_task(c.ws.close(TRY_AGAIN_LATER, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        if self.on_cut is not None:
            addr = c.ws.remote_address
            who = f"{addr[0]}:{addr[1]}" if addr else "a client"
            self.on_cut(f"fan-out: closed {who} (1013): {behind} events behind, queue {self.limit}")

    # ---- the client side ----------------------------------------------------------------------
    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse bad queries (400), a missing or wrong token (401), a resume point no longer kept (410)."""
        try:
            want = parse_query(request.path)
        except ValueError as e:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"{e}\n")
        if self.token is not None:
            given = want.token
            auth = request.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                resp = connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong token\n")
                resp.headers["WWW-Authenticate"] = "Bearer"
                return resp
        if want.since is not None and self.history:
            oldest = self.history[0][0]
            if want.since < oldest - 1:
                return connection.respond(
                    HTTPStatus.GONE, f"since={want.since}: the kept history starts at seq {oldest}\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        want = parse_query(ws.request.path)
        backlog: list[bytes] = []
        if want.since is not None:  # taken in the same step as joining: no gap, no repeat
            backlog = [line for seq, sym, rule, line in self.history
                       if seq > want.since and want.wants(sym, rule)]
        c = _Client(ws, want, backlog)
        self._clients.add(c)
        self.served += 1
        async with self._joined:
            self._joined.notify_all()
        try:
            for line in backlog:
                if c.cut:
                    return
                await ws.send(line, text=True)
            c.backlog = []
            while not c.cut:
                while c.queue and not c.cut:
                    await ws.send(c.queue.popleft(), text=True)
                if c.done or c.cut:
                    break
                c.wake.clear()
                await c.wake.wait()
            if not c.cut:
                await ws.close(1000, "replay finished")
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(c)
            if c.closing is not None:  # cut off: its 1013 goes out before the 1000 the server
                await asyncio.shield(c.closing)  # sends when a handler returns
