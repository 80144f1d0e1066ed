"""Alpaca market-data stream messages (JSON or msgpack) -> minute-bar columns and control messages.

Every server frame is an array of messages tagged by "T": control ones (success, error,
subscription) and data ones; bars are "b" (minute bar), "u" (an updated minute bar, same
start, late trades included) and "d" (the daily bar so far). A frame is decoded in one typed
pass; a frame that fails it is decoded loosely and checked message by message, so one bad
value costs one bar, not the frame. Nothing is skipped silently: unknown types, malformed
frames and bad bars (missing field, NaN or non-positive price, bad time) are counted by
reason in `Counters`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import msgpack
import msgspec
import numpy as np

from ..timeframes import NEW, UPDATE

assert (NEW, UPDATE) == (0, 1)  # a `u` message is kind 1 below (True as int8)

CONTROL = ("success", "error", "subscription")
BAR_FIELDS = ("o", "h", "l", "c", "v", "t")

# Error codes of the stream: (what happens, a one-line explanation)
FATAL, RECONNECT, IGNORE = "fatal", "reconnect", "ignore"
ERRORS: dict[int, tuple[str, str]] = {
    400: (IGNORE, "invalid syntax: the server could not read a message barwatch sent"),
    401: (RECONNECT, "not authenticated: a request came before authentication"),
    402: (FATAL, "auth failed: check APCA_API_KEY_ID and APCA_API_SECRET_KEY "
                 "(paper and live keys differ; a key pair works only for its own account)"),
    403: (IGNORE, "already authenticated"),
    404: (RECONNECT, "auth timeout: authentication took longer than 10 s"),
    405: (FATAL, "symbol limit exceeded: your data plan allows fewer symbols; "
                 "pass fewer with --symbols"),
    406: (FATAL, "connection limit exceeded: another program (or barwatch) is already "
                 "connected with these keys; stop it first (most plans allow 1 connection)"),
    407: (RECONNECT, "slow client: the server dropped messages because barwatch read too slowly"),
    408: (FATAL, "v2 not enabled for this account: enable the market data API v2"),
    409: (FATAL, "insufficient subscription: your data plan does not include this feed; "
                 "use --feed iex (free) or delayed_sip"),
    410: (FATAL, "invalid subscribe action for this feed: the feed does not offer bars, "
                 "updatedBars or dailyBars (choose another --feed)"),
    500: (RECONNECT, "internal error at Alpaca"),
}


def explain(code: int | None, msg: str | None) -> tuple[str, str]:
    """(action, one-line text) for a stream error message."""
    action, text = ERRORS.get(code or 0, (RECONNECT, f"unexpected error {msg!r}"))
    return action, f"Alpaca stream error {code}: {text}"


class JsonMsg(msgspec.Struct, gc=False):
    """Any message of a JSON frame; fields a type does not use stay None."""

    T: str
    S: str | None = None
    o: float | None = None
    h: float | None = None
    l: float | None = None
    c: float | None = None
    v: float | None = None
    t: str | None = None
    n: float | None = None
    vw: float | None = None
    msg: str | None = None
    code: int | None = None
    bars: list[str] | None = None
    updatedBars: list[str] | None = None
    dailyBars: list[str] | None = None


class PackMsg(msgspec.Struct, gc=False):
    """Any message of a msgpack frame: times are msgpack Timestamps (datetime here)."""

    T: str
    S: str | None = None
    o: float | None = None
    h: float | None = None
    l: float | None = None
    c: float | None = None
    v: float | None = None
    t: datetime | None = None
    n: float | None = None
    vw: float | None = None
    msg: str | None = None
    code: int | None = None
    bars: list[str] | None = None
    updatedBars: list[str] | None = None
    dailyBars: list[str] | None = None


_json_frame = msgspec.json.Decoder(list[JsonMsg])
_pack_frame = msgspec.msgpack.Decoder(list[PackMsg])


@dataclass
class Counters:
    """What the stream delivered and what was refused, by reason (reported at exit)."""

    frames: int = 0
    messages: int = 0
    bars: int = 0  # b
    updated: int = 0  # u
    daily: int = 0  # d (counted; daily bars are built from minutes)
    unknown: Counter = field(default_factory=Counter)  # by T
    malformed: int = 0  # frames that could not be decoded at all
    bad: Counter = field(default_factory=Counter)  # bars refused, by reason
    errors: Counter = field(default_factory=Counter)  # error messages, by code
    reconnects: int = 0
    stalls: int = 0
    backfilled: int = 0  # minutes fetched after a reconnect
    warm: int = 0  # bars loaded before the first live bar

    def problems(self) -> str:
        """One line on what was refused (empty when nothing was)."""
        parts = []
        if self.malformed:
            parts.append(f"{self.malformed} malformed frame(s)")
        if self.bad:
            why = ", ".join(f"{k}: {v}" for k, v in sorted(self.bad.items()))
            parts.append(f"{sum(self.bad.values())} bad bar(s) ({why})")
        if self.unknown:
            why = ", ".join(f"{k!r}: {v}" for k, v in sorted(self.unknown.items()))
            parts.append(f"{sum(self.unknown.values())} message(s) of unknown type ({why})")
        return "; ".join(parts)


_TIMES: dict = {}


def rfc3339_ns(s: str) -> int:
    """'2021-02-22T15:51:00Z' (or with a fraction / offset) -> ns since the epoch."""
    body, tz = s, "+00:00"
    if s[-1:] in "Zz":
        body = s[:-1]
    elif len(s) > 6 and s[-6] in "+-" and s[-3] == ":":
        body, tz = s[:-6], s[-6:]
    frac = 0
    if "." in body:
        body, f = body.split(".", 1)
        if not f.isdigit():
            raise ValueError(s)
        frac = int((f + "000000000")[:9])
    dt = datetime.fromisoformat(body + tz)
    return int(dt.timestamp()) * 1_000_000_000 + frac


def time_ns(t) -> int:
    """A bar time as sent (RFC 3339 string or msgpack Timestamp/datetime) -> ns UTC."""
    v = _TIMES.get(t)
    if v is None:
        if isinstance(t, str):
            v = rfc3339_ns(t)
        elif isinstance(t, datetime):
            v = int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
        elif isinstance(t, msgpack.Timestamp):
            v = t.to_unix_nano()
        else:
            raise TypeError(type(t).__name__)
        if len(_TIMES) > 100_000:
            _TIMES.clear()
        _TIMES[t] = v
    return v


def decode(data: bytes | str, counters: Counters) -> list | None:
    """A frame -> its messages (typed structs, or dicts when the typed pass failed);
    None (counted) when it is not a JSON or msgpack array at all."""
    counters.frames += 1
    binary = isinstance(data, (bytes, bytearray, memoryview))
    try:
        return (_pack_frame if binary else _json_frame).decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:  # loose: one message's bad value must not cost the whole frame
        if binary:
            msgs = msgpack.unpackb(data, timestamp=0, strict_map_key=False)
        else:
            msgs = json.loads(data)
    except Exception:
        counters.malformed += 1
        return None
    if not isinstance(msgs, list):
        msgs = [msgs] if isinstance(msgs, dict) else None
    if msgs is None:
        counters.malformed += 1
    return msgs


def _get(m, k):
    return m.get(k) if isinstance(m, dict) else getattr(m, k)


@dataclass
class Minutes:
    """Minute bars of one frame, as columns in arrival order (rows of an Aggregator)."""

    ids: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    o: np.ndarray
    h: np.ndarray
    l: np.ndarray
    c: np.ndarray
    v: np.ndarray
    n: np.ndarray
    vw: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(ids, t, kind, o, h, l, c, v, n, vw) as the Aggregator takes them."""
        return self.ids, self.t, self.kind, self.o, self.h, self.l, self.c, self.v, self.n, self.vw


def _bad_reason(m) -> str | None:
    """Why a b/u message cannot be a bar (None if it can)."""
    for k in BAR_FIELDS:
        x = _get(m, k)
        if x is None:
            return f"missing {k}"
        if k != "t" and (isinstance(x, bool) or not isinstance(x, (int, float))):
            return f"non-numeric {k}"
    s = _get(m, "S")
    if not isinstance(s, str) or not s:
        return "missing S"
    for k in ("o", "h", "l", "c"):
        x = _get(m, k)
        if not math.isfinite(x):
            return f"NaN {k}" if x != x else f"infinite {k}"
        if x <= 0:
            return f"non-positive {k}"
    v = _get(m, "v")
    if not math.isfinite(v) or v < 0:
        return "bad v"
    if _get(m, "h") < _get(m, "l"):
        return "high < low"
    try:
        time_ns(_get(m, "t"))
    except (ValueError, TypeError, OverflowError):
        return "bad t"
    return None


def _floats(xs: list) -> np.ndarray:
    """A list of numbers, None for missing -> float64 with NaN."""
    if None in xs:
        return np.array([math.nan if x is None else x for x in xs], dtype=np.float64)
    return np.array(xs, dtype=np.float64)


def _times(ts: list) -> np.ndarray:
    """Bar times -> ns, each distinct time parsed once (a frame's bars mostly share one)."""
    cache = _TIMES
    out = [cache.get(x) for x in ts]
    if None in out:
        if len(cache) > 100_000:
            cache.clear()
        for x in set(ts):
            if x not in cache:
                cache[x] = time_ns(x)
        out = [cache[x] for x in ts]
    return np.array(out, dtype=np.int64)


def split(msgs: list, agg, counters: Counters) -> tuple[Minutes, list]:
    """Messages -> (minute bars as columns, control messages); `agg` gives symbol rows.

    The common frame (typed messages, all bars, all good) is converted column by column; only
    rows that fail the vectorised checks are looked at one by one, to count why."""
    counters.messages += len(msgs)
    typed = bool(msgs) and isinstance(msgs[0], (JsonMsg, PackMsg))
    types = [m.T if typed else _get_t(m) for m in msgs]
    nb = types.count("b")
    nu = types.count("u")
    control = []
    if nb + nu == len(msgs):
        bars = msgs
    else:
        bars = []
        for m, typ in zip(msgs, types, strict=True):
            if typ == "b" or typ == "u":
                bars.append(m)
            elif typ == "d":
                counters.daily += 1
            elif typ in CONTROL:
                control.append(m)
            else:
                counters.unknown[str(typ)] += 1
    if not bars:
        return _empty(), control
    if not typed:
        bars = [_as_struct(m) for m in bars]  # loose dicts: typed one by one (bad ones counted)
        good = []
        for m in bars:
            if isinstance(m, str):
                counters.bad[m] += 1
            else:
                good.append(m)
        bars = good
    S = [m.S for m in bars]
    try:
        o, h, l, c, v = (np.array(col, dtype=np.float64) for col in (
            [m.o for m in bars], [m.h for m in bars], [m.l for m in bars], [m.c for m in bars],
            [m.v for m in bars]))
        ok = ((l > 0) & (l <= h) & (h < np.inf) & (o > 0) & (o < np.inf) & (c > 0) & (c < np.inf)
              & (v >= 0) & (v < np.inf))
        ts = [m.t for m in bars]
        if None in ts or None in S or "" in S:
            raise TypeError
        t = _times(ts)
    except (TypeError, ValueError, OverflowError):  # a missing or odd value somewhere: row by row
        keep = []
        for m in bars:
            why = _bad_reason(m)
            if why is None:
                keep.append(m)
            else:
                counters.bad[why] += 1
        bars = keep
        return _columns(bars, agg, counters), control
    if not ok.all():
        keep = []
        for m, good in zip(bars, ok.tolist(), strict=True):
            if good:
                keep.append(m)
            else:
                counters.bad[_bad_reason(m) or "bad values"] += 1
        return _columns(keep, agg, counters), control
    kind = np.array([typ == "u" for typ in (m.T for m in bars)], dtype=np.int8) if nu else \
        np.zeros(len(bars), dtype=np.int8)
    counters.bars += len(bars) - int(kind.sum())
    counters.updated += int(kind.sum())
    index, sid = agg.index, agg.sid
    ids = [index.get(x) for x in S]
    if None in ids:
        ids = [sid(x) for x in S]
    return Minutes(np.array(ids, dtype=np.int64), t, kind, o, h, l, c, v,
                   _floats([m.n for m in bars]), _floats([m.vw for m in bars])), control


def _columns(bars: list, agg, counters: Counters) -> Minutes:
    """Checked typed bar messages -> Minutes (the slow path, after bad ones were removed)."""
    if not bars:
        return _empty()
    kind = np.array([m.T == "u" for m in bars], dtype=np.int8)
    counters.bars += len(bars) - int(kind.sum())
    counters.updated += int(kind.sum())
    f = np.float64
    return Minutes(np.array([agg.sid(m.S) for m in bars], dtype=np.int64),
                   np.array([time_ns(m.t) for m in bars], dtype=np.int64), kind,
                   np.array([m.o for m in bars], f), np.array([m.h for m in bars], f),
                   np.array([m.l for m in bars], f), np.array([m.c for m in bars], f),
                   np.array([m.v for m in bars], f), _floats([m.n for m in bars]),
                   _floats([m.vw for m in bars]))


def _empty() -> Minutes:
    z = np.zeros(0)
    return Minutes(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8), z, z, z, z, z, z, z)


def _get_t(m):
    if isinstance(m, dict):
        return m.get("T")
    return getattr(m, "T", None)


def _as_struct(m) -> PackMsg | str:
    """A loose message dict -> a typed message, or the reason it cannot be a bar."""
    why = _bad_reason(m)
    if why is not None:
        return why
    n, vw = m.get("n"), m.get("vw")
    num = (int, float)
    return PackMsg(T=m["T"], S=m["S"], o=float(m["o"]), h=float(m["h"]), l=float(m["l"]), c=float(m["c"]),
                   v=float(m["v"]), t=m["t"],
                   n=float(n) if isinstance(n, num) and not isinstance(n, bool) else None,
                   vw=float(vw) if isinstance(vw, num) and not isinstance(vw, bool) else None)


def encode(obj: dict, binary: bool) -> bytes | str:
    """A client message (auth, subscribe) in the connection's encoding."""
    return msgpack.packb(obj) if binary else json.dumps(obj, separators=(",", ":"))
