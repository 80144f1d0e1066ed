"""Event records -> JSON lines in bulk: byte for byte what the Event path writes, without an Event.

The per-event path builds an `Event` (and its `values` dict) for every record and lets msgspec
encode it. `LineEncoder.encode` takes the same records as arrays and writes the same lines with
polars string expressions: every string that can need JSON escaping (a symbol, a rule, a zone,
a key, a constant) is escaped once by msgspec itself, numbers are formatted by polars (its float
text is msgspec's shortest round-trip text, but for the exponent's sign: "1e+22" -> "1e22"),
times are formatted once per distinct value. Python loops run over rules and fields, not
events: the result is assembled from polars' own string buffers.

Values out of the vectorised path's range (an integer beyond int64, a zone index counted from
the end, a year before 1000) are rare and handed to the Event path's own formatters, so where
that path raises (a NaN zone or time, an infinite count) this one raises the same error. Blocks
under `LineEncoder.SMALL` records take the per-event path: there it is the faster one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from .events import SCHEMA_VERSION, STATES, Event, event_id, rfc3339
from .fields import CONST, DIRECTION, INT, NUM, PCT, SIGN, TIME, ZONE, Field, _format, decoder
from .outputs.jsonl import encode_lines
from .signals.common import KINDS

_I64 = 2.0**63  # floats below this in magnitude convert to int64 exactly (after truncation)
_BIG = 1e16  # from here on a float is written with an exponent ("1e16")
_YEAR_1000 = -30_610_224_000  # 1000-01-01 in seconds: numpy and strftime agree from here ...
_YEAR_10000 = 253_402_300_800  # ... to the end of 9999
_CHUNK = 100_000  # fewest rows worth a thread of their own
_FEW = 64  # this few distinct times are formatted by `rfc3339` itself


def _json(x: Any) -> str:
    """The JSON text of one value, exactly as msgspec writes it inside an event."""
    return msgspec.json.encode(x).decode()


def _inner(s: str) -> str:
    """A string's JSON escaping without the quotes (escaping is per character, so it concatenates)."""
    return _json(s)[1:-1]


def _runs(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, index into them) with a == values[index]: runs of equal neighbours when they are
    few (event times mostly are), else the distinct values."""
    change = a[1:] != a[:-1]
    nruns = int(change.sum()) + 1
    if nruns * 4 <= len(a):
        starts = np.flatnonzero(np.concatenate(([True], change)))
        index = np.cumsum(np.concatenate(([0], change)), dtype=np.int64)
        return a[starts], index
    return np.unique(a, return_inverse=True)


def stamps(t: np.ndarray) -> list[str]:
    """`rfc3339` of each time (ns), vectorised: one text per run of equal times."""
    if len(t) <= _FEW:
        return [rfc3339(x) for x in t.tolist()]
    times, index = _runs(np.asarray(t, dtype=np.int64))
    texts = _stamps(times // 1_000_000_000, times % 1_000_000_000).to_list()
    return [texts[i] for i in index.tolist()]


def _stamps(sec: np.ndarray, frac: np.ndarray) -> pl.Series:
    """RFC 3339 texts of (seconds, nanoseconds), as `rfc3339` writes them."""
    if len(sec) <= _FEW:
        pairs = zip(sec.tolist(), frac.tolist(), strict=True)
        return pl.Series([rfc3339(s * 1_000_000_000 + f) for s, f in pairs], dtype=pl.String)
    base = np.datetime_as_string(sec.astype("datetime64[s]"), unit="s")
    out = pl.DataFrame({"b": base, "f": frac}).select(
        pl.concat_str(
            pl.col("b"),
            pl.when(pl.col("f") != 0)
            .then(pl.lit(".") + pl.col("f").cast(pl.String).str.zfill(9).str.strip_chars_end("0"))
            .otherwise(pl.lit("")),
            pl.lit("Z"),
        )
    ).to_series()
    odd = np.flatnonzero((sec < _YEAR_1000) | (sec >= _YEAR_10000))  # strftime does not pad the year
    if len(odd):
        out = out.scatter(odd, [rfc3339(int(sec[k]) * 1_000_000_000 + int(frac[k])) for k in odd.tolist()])
    return out


class LineEncoder:
    """Encodes blocks of event records for one engine (its timeframe and rules) as JSON lines."""

    # Blocks of fewer records than this take the per-event path (an Event each, msgspec): the
    # bulk path's fixed cost (a few milliseconds of query planning) is more than theirs below it.
    SMALL = 2000

    def __init__(self, timeframe: str, rule_names: list[str], rule_fields: list[tuple[Field, ...]]) -> None:
        if len(rule_names) != len(rule_fields):
            raise ValueError(f"{len(rule_names)} rule names but {len(rule_fields)} field layouts")
        self.timeframe = timeframe
        self.rule_names = list(rule_names)
        self.rule_fields = [tuple(fs) for fs in rule_fields]
        self._decoders = [decoder(fs) for fs in self.rule_fields]
        # the symbol cache: escaped names, extended as the engine's symbol list grows
        self._symbols: list[str] = []
        self._sym_inner: list[str] = []
        self._sym_series = pl.Series("s", [], dtype=pl.String)
        # per rule: the line's text after the time in the id (by kind) and after the time field
        # (by kind, state), and each field of `values` with its key's text
        kinds = [_inner(k) for k in KINDS]
        kinds_json = [_json(k) for k in KINDS]
        states = [_json(s) for s in STATES]
        tf = _json(timeframe)
        after_id: list[str] = []
        after_time: list[str] = []
        self._fields: list[list[tuple[str, Field]]] = []
        for name, fields in zip(self.rule_names, self.rule_fields, strict=True):
            rule_json = _json(name)
            after_id += [f'|{rule_json[1:-1]}|{k}","symbol":"' for k in kinds]
            after_time += [f'","timeframe":{tf},"rule":{rule_json},"kind":{k},"state":{s},"values":{{'
                           for k in kinds_json for s in states]
            last: dict[str, Field] = {}
            for f in fields:  # a dict display: a repeated key keeps its place, takes the last field
                last[f.key] = f
            self._fields.append([(_json(k) + ":", f) for k, f in last.items()])
        self._after_id = pl.Series(after_id, dtype=pl.String)
        self._after_time = pl.Series(after_time, dtype=pl.String)
        self._head = '{"v":' + _json(SCHEMA_VERSION) + ',"seq":'
        self._tails = pl.Series(["}}\n", '},"late":true}\n'])
        self._direction = pl.Series(['"down"', '"up"'])

    # ---- caches --------------------------------------------------------------------------------
    def _symbol_texts(self, symbols: Sequence[str]) -> pl.Series:
        have = len(self._symbols)
        if len(symbols) < have or (have and symbols[have - 1] != self._symbols[-1]):
            self._symbols, self._sym_inner = [], []  # not the list we cached: start over
            have = 0
        if len(symbols) > have:
            new = list(symbols[have:])
            self._symbols += new
            self._sym_inner += [_inner(s) for s in new]
            self._sym_series = pl.Series("s", self._sym_inner, dtype=pl.String)
        return self._sym_series

    # ---- values ----------------------------------------------------------------------------------
    def _value_expr(self, f: Field, x: np.ndarray, cols: dict[str, Any], name: str) -> pl.Expr:
        """The text of field f's value for every row (x: its column), adding the inputs to cols."""
        fmt = f.fmt
        if fmt == PCT:
            with np.errstate(over="ignore"):
                x = 100.0 * x  # as Python multiplies: an overflow is inf (written null)
        if fmt in (NUM, PCT):
            cols[name] = x
            expr = pl.col(name).cast(pl.String)
            if np.any(np.abs(x) >= _BIG):
                expr = expr.str.replace("e+", "e", literal=True)
            if not np.isfinite(x).all():  # msgspec writes NaN and infinities as null
                expr = pl.when(pl.col(name).is_finite()).then(expr).otherwise(pl.lit("null"))
            return expr
        if fmt == DIRECTION:
            cols[name] = (x > 0).astype(np.uint32)
            return pl.lit(self._direction).gather(pl.col(name))

        ok = np.abs(x) < _I64  # NaN and inf: False
        whole = bool(ok.all())
        if fmt == ZONE:
            count = len(f.names)
            i = (x if whole else np.where(ok, x, 0.0)).astype(np.int64)  # truncates, as int() does
            inside = (i >= -count) & (i < count)
            if not inside.all():
                ok &= inside
            cols[name] = (i % max(count, 1)).astype(np.uint32)  # a negative index counts from the end
            expr = pl.lit(pl.Series([_json(z) for z in f.names], dtype=pl.String)).gather(pl.col(name))
        elif fmt in (SIGN, INT):
            if whole:
                cols[name] = x.astype(np.int64)
                expr = pl.col(name).cast(pl.String)
            else:
                nan = np.isnan(x)
                ok |= nan
                cols[name] = np.where(ok & ~nan, x, 0.0).astype(np.int64)
                cols[name + "n"] = nan
                expr = pl.col(name).cast(pl.String)
                expr = pl.when(pl.col(name + "n")).then(pl.lit("null")).otherwise(expr)
        elif fmt == TIME:
            us = (x if whole else np.where(ok, x, 0.0)).astype(np.int64)
            u, index = _runs(us) if len(us) else (us, us)
            texts = _stamps(u // 1_000_000, (u % 1_000_000) * 1000)
            cols[name] = index.astype(np.uint32)
            expr = pl.lit('"') + pl.lit(texts).gather(pl.col(name)) + pl.lit('"')
        else:
            raise ValueError(f"field {f.key!r}: unknown format {fmt}")
        bad = np.flatnonzero(~ok)
        if len(bad):  # out of the fast path's range: the Event path's own formatter (or its error)
            fix = [_json(_format(f, v)) for v in x[bad].tolist()]
            cols[name + "x"] = pl.repeat(None, len(x), dtype=pl.String, eager=True).scatter(bad, fix)
            expr = pl.coalesce(pl.col(name + "x"), expr)
        return expr

    # ---- encoding --------------------------------------------------------------------------------
    def encode(self, symbols: list[str], seq0: int, sym, t, rule, kind, state, late, values) -> bytes:
        """JSON lines of n event records (record q is event seq0 + 1 + q), newline-terminated:
        `b"".join(map(stream.events.encode, events))` of the Events the records describe."""
        sym = np.asarray(sym, dtype=np.int64)
        n = len(sym)
        if n == 0:
            return b""
        t = np.asarray(t, dtype=np.int64)
        rule = np.asarray(rule, dtype=np.int64)
        kind = np.asarray(kind, dtype=np.int64)
        state = np.asarray(state, dtype=np.int64)
        late = np.asarray(late, dtype=bool)
        values = np.asarray(values, dtype=np.float64)
        if not (len(t) == len(rule) == len(kind) == len(state) == len(late) == len(values) == n):
            raise ValueError("record arrays differ in length")
        for what, a, hi in (("symbol", sym, len(symbols)), ("rule", rule, len(self.rule_names)),
                            ("kind", kind, len(KINDS)), ("state", state, len(STATES))):
            if a.min() < 0 or a.max() >= hi:
                raise ValueError(f"{what} index out of range 0..{hi - 1}")
        if n < self.SMALL:
            return self._per_event(symbols, seq0, sym, t, rule, kind, state, late, values)
        chunk = max(-(-n // max(pl.thread_pool_size(), 1)), _CHUNK)

        # 1. per rule, in parallel: the text inside `values`
        one = rule.min() == rule.max()
        groups = [np.arange(n)] if one else [np.flatnonzero(rule == j) for j in range(len(self.rule_names))]
        frames: list[pl.LazyFrame] = []
        for rows in groups:
            if len(rows):
                frames += self._values(int(rule[rows[0]]), None if one else rows, values, chunk)
        inside = pl.concat([d.to_series() for d in pl.collect_all(frames)]).rechunk()
        if not one:  # from rule groups back to record order (a gather of views: no text copied)
            where = np.empty(n, dtype=np.uint32)
            where[np.concatenate([g for g in groups if len(g)])] = np.arange(n, dtype=np.uint32)
            inside = inside.gather(where)

        # 2. in record order, in parallel: whole lines
        sym_texts = self._symbol_texts(symbols)
        times, t_index = _runs(t)
        time_texts = _stamps(times // 1_000_000_000, times % 1_000_000_000)
        rk = rule * len(KINDS) + kind
        df = pl.DataFrame({
            "q": np.arange(seq0 + 1, seq0 + 1 + n, dtype=np.int64),
            "s": sym.astype(np.uint32),
            "t": t_index.astype(np.uint32),
            "k": rk.astype(np.uint32),
            "ks": (rk * len(STATES) + state).astype(np.uint32),
            "l": late.astype(np.uint32),
            "v": inside,
        })
        name = pl.lit(sym_texts).gather(pl.col("s"))
        stamp = pl.lit(time_texts).gather(pl.col("t"))
        line = pl.concat_str(
            pl.lit(self._head), pl.col("q").cast(pl.String), pl.lit(',"id":"'), name, pl.lit("|"), stamp,
            pl.lit(self._after_id).gather(pl.col("k")), name, pl.lit('","time":"'), stamp,
            pl.lit(self._after_time).gather(pl.col("ks")), pl.col("v"),
            pl.lit(self._tails).gather(pl.col("l")),
        )
        done = pl.collect_all([df.slice(lo, chunk).lazy().select(line) for lo in range(0, n, chunk)])
        return b"".join(seg for d in done for seg in _segments(d.to_series()))

    def _per_event(self, symbols, seq0: int, sym, t, rule, kind, state, late, values) -> bytes:
        """The same lines the per-event way, as `Engine._records` makes them (for small blocks)."""
        stamps: dict[int, str] = {}
        events = []
        tf, names, decoders = self.timeframe, self.rule_names, self._decoders
        rows = zip(sym.tolist(), t.tolist(), rule.tolist(), kind.tolist(), state.tolist(), late.tolist(),
                   values.tolist(), strict=True)
        for q, (s, tt, j, k, st, lt, vals) in enumerate(rows, seq0 + 1):
            time_ = stamps.get(tt)
            if time_ is None:
                time_ = stamps[tt] = rfc3339(tt)
            symbol, name, kind_ = symbols[s], names[j], KINDS[k]
            events.append(Event(SCHEMA_VERSION, q, event_id(symbol, time_, name, kind_), symbol, time_, tf,
                                name, kind_, STATES[st], decoders[j](vals), lt))
        return encode_lines(events)

    def _values(self, j: int, rows: np.ndarray | None, values: np.ndarray, chunk: int) -> list[pl.LazyFrame]:
        """Queries for the text inside `values` of rule j's records (`rows`; None: all)."""
        cols: dict[str, Any] = {}
        pieces: list[str | pl.Expr] = []  # texts and expressions; neighbouring texts merged
        for i, (key, f) in enumerate(self._fields[j]):
            text = ("," if i else "") + key
            if f.fmt == CONST:
                value: str | pl.Expr = _json(f.const)
            else:
                x = values[:, f.col] if rows is None else values[rows, f.col]
                value = self._value_expr(f, np.ascontiguousarray(x), cols, f"v{i}")
            for piece in (text, value):
                if isinstance(piece, str) and pieces and isinstance(pieces[-1], str):
                    pieces[-1] += piece
                else:
                    pieces.append(piece)
        size = len(values) if rows is None else len(rows)
        if not cols:  # nothing read from the records: one text for every row
            return [pl.LazyFrame({"v": pl.repeat("".join(pieces), size, dtype=pl.String, eager=True)})]
        line = pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in pieces]).alias("v")
        df = pl.DataFrame(cols)
        return [df.slice(lo, chunk).lazy().select(line) for lo in range(0, size, chunk)]


def _segments(lines: pl.Series) -> list[memoryview]:
    """The bytes of a Series of strings, in order, as a few slices of its own buffers (polars
    stores long strings one after another; else they are copied into one buffer)."""
    out: list[memoryview] = []
    for arr in pa.chunked_array(lines).chunks:
        if len(arr) == 0:
            continue
        if arr.null_count:
            raise ValueError("a line is null")
        if str(arr.type) == "string_view":
            bufs = arr.buffers()
            views = np.frombuffer(bufs[1], dtype=np.int32).reshape(-1, 4)[arr.offset : arr.offset + len(arr)]
            size, buf, off = views[:, 0], views[:, 2], views[:, 3]
            end = off + size
            same = buf[1:] == buf[:-1]
            if (size > 12).all() and (off[1:] == end[:-1])[same].all():  # > 12 bytes: not inline
                first = np.flatnonzero(np.concatenate(([True], ~same)))
                last = np.concatenate((first[1:] - 1, [len(arr) - 1]))
                runs = zip(buf[first].tolist(), off[first].tolist(), end[last].tolist(), strict=True)
                out += [memoryview(bufs[2 + b])[lo:hi] for b, lo, hi in runs]
                continue
        if arr.type != pa.large_string():
            arr = arr.cast(pa.large_string())
        bufs = arr.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64)
        out.append(memoryview(bufs[2])[int(offsets[arr.offset]) : int(offsets[arr.offset + len(arr)])])
    return out
