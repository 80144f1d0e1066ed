"""The Event record and its JSON-lines encoding (keys in a fixed order, UTF-8, one per line)."""

from __future__ import annotations

import functools
import time
from typing import Any

import msgspec

from .config import TIMEFRAMES
from .signals.common import KINDS

SCHEMA_VERSION = 1
STATES = ("confirmed", "provisional", "retracted")


class Event(msgspec.Struct, omit_defaults=True):
    """One signal. Field order is the JSON key order; `late` appears only when true."""

    v: int
    seq: int  # position in this run's event stream, from 1 (fan-out resumes by it)
    id: str  # stable across states and runs: symbol|time|rule|kind
    symbol: str
    time: str  # bar start, RFC 3339 UTC
    timeframe: str
    rule: str
    kind: str
    state: str
    values: dict[str, Any]
    late: bool = False  # from bars backfilled after a reconnect


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode(event: Event) -> bytes:
    """The event as one JSON line, newline included."""
    return _encoder.encode(event) + b"\n"


def decode(line: bytes | str) -> Event:
    """Parse one JSON line back into an Event (validates the schema)."""
    return _decoder.decode(line)


def event_id(symbol: str, time_: str, rule: str, kind: str) -> str:
    return f"{symbol}|{time_}|{rule}|{kind}"


def from_columns(timeframe: str, symbols: list[str], rule_names: list[str], decoders: list,
                 seq0: int, sym, times, rule, kind, state, late, values) -> list[Event]:
    """The Event objects of records given as lists (times as RFC 3339 texts, values as each
    rule's value record for its decoder), numbered from seq0 + 1: the one place Events are
    built from the kernel's records."""
    out = []
    rows = zip(sym, times, rule, kind, state, late, values, strict=True)
    for seq, (s, time_, j, k, st, lt, vals) in enumerate(rows, seq0 + 1):
        symbol, name, kind_ = symbols[s], rule_names[j], KINDS[k]
        out.append(Event(SCHEMA_VERSION, seq, event_id(symbol, time_, name, kind_), symbol, time_, timeframe,
                         name, kind_, STATES[st], decoders[j](vals), bool(lt)))
    return out


@functools.lru_cache(maxsize=4096)
def rfc3339(ns: int) -> str:
    """Nanoseconds since the epoch -> '2024-05-01T13:30:00Z' (fraction only when present).
    Cached (~1 us a text): a bar's events, their retractions and the table ask for the same times."""
    s, frac = divmod(int(ns), 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


# The JSON Schema of one event line, documented in the README and checked by the tests.
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "barwatch event",
    "type": "object",
    "required": ["v", "seq", "id", "symbol", "time", "timeframe", "rule", "kind", "state", "values"],
    "additionalProperties": False,
    "properties": {
        "v": {"const": SCHEMA_VERSION},
        "seq": {"type": "integer", "minimum": 1},
        "id": {"type": "string"},
        "symbol": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "timeframe": {"enum": list(TIMEFRAMES)},
        "rule": {"type": "string"},
        "kind": {"enum": list(KINDS[1:])},
        "state": {"enum": list(STATES)},
        "values": {"type": "object", "required": ["close"]},
        "late": {"const": True},
    },
}
