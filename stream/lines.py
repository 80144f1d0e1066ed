"""Event records -> JSON lines in bulk: byte for byte what the Event path writes, without an Event.

The per-event path builds an `Event` (and its `values` dict) for every record and lets msgspec
encode it. `LineEncoder.encode` takes the same records as arrays and has a numba kernel
(`stream.linekernel`, nogil, one thread) write the lines straight into the bytes object it
returns. Every string that can need JSON escaping (a symbol, a rule, a zone, a key, a constant)
is escaped once by msgspec itself and kept as a literal; integers, times (one text per distinct
value) and floats in [1e-4, 1e15) (but for a few below 1e-3: see `linekernel.short`) are
formatted by the kernel; other floats by polars (its text is msgspec's shortest round-trip text,
but for the exponent's sign: "1e+22" -> "1e22"), or by msgspec when they are few. The kernel
writes a block in one pass, into a bytes object sized for its longest possible lines and cut to
size after; a block with a value it leaves to others takes two passes: dry, to find those values
and the size of the output, then wet, to write it.

Values out of the kernel's range (an integer beyond int64, a zone index out of range, a NaN or
infinite zone or time) are rare and handed to the Event path's own formatters, in record order,
so where that path raises this one raises the same error. Blocks under `LineEncoder.SMALL`
records take the per-event path: there it is the faster one.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa

from . import linekernel as lk
from .events import SCHEMA_VERSION, STATES, from_columns, rfc3339
from .fields import CONST, DIRECTION, INT, NUM, PCT, SIGN, TIME, ZONE, Field, decoder, format_value
from .outputs.jsonl import encode_lines
from .signals.common import E_KIND, E_RULE, E_STATE, E_SYM, E_T, E_WIDTH, KINDS

_FEW = 64  # this few times are formatted by `rfc3339` itself
NUMBER = 25  # most bytes of a number the kernel writes: "-0.000" and 17 digits, or "-1234567890123.45678"
_FEW_FLOATS = 2000  # this few floats are formatted by msgspec (in one list), more by polars (a fixed cost)


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
    data, off = _time_table(times // 1_000_000_000, times % 1_000_000_000)
    whole = data.tobytes()
    texts = [whole[lo:hi].decode() for lo, hi in zip(off[:-1].tolist(), off[1:].tolist(), strict=True)]
    return [texts[i] for i in index.tolist()]


class LineEncoder:
    """Encodes blocks of event records for one engine (its timeframe and rules) as JSON lines."""

    # Blocks of fewer records than this take the per-event path (an Event each, msgspec): the
    # bulk path's fixed cost (two kernel calls, the text tables, a few numpy calls: ~60 us) is
    # more than theirs below it.
    SMALL = 64

    def __init__(self, timeframe: str, rule_names: list[str], rule_fields: list[tuple[Field, ...]]) -> None:
        if len(rule_names) != len(rule_fields):
            raise ValueError(f"{len(rule_names)} rule names but {len(rule_fields)} field layouts")
        self.timeframe = timeframe
        self.rule_names = list(rule_names)
        self.rule_fields = [tuple(fs) for fs in rule_fields]
        self._decoders = [decoder(fs) for fs in self.rule_fields]
        # the symbol cache: escaped names (UTF-8, one after another), extended as the engine's list grows
        self._symbols: list[str] = []
        self._sym_data = np.zeros(0, dtype=np.uint8)
        self._sym_off = np.zeros(1, dtype=np.int64)
        # the literal table: the line's fixed pieces (lk.HEAD ...), then per rule and kind the text
        # after the time in the id, per rule, kind and state the text after the time field, then
        # the pieces of each rule's values program (keys, constants, zone names)
        lits = ['{"v":' + _json(SCHEMA_VERSION) + ',"seq":', ',"id":"', "|", '","time":"', "null", '"up"',
                '"down"', "}}\n", '},"late":true}\n', "0.0", "-0.0"]
        assert len(lits) == lk.FIXED
        kinds = [_inner(k) for k in KINDS]
        kinds_json = [_json(k) for k in KINDS]
        states = [_json(s) for s in STATES]
        tf = _json(timeframe)
        self._after_id = len(lits)
        for name in self.rule_names:
            lits += [f'|{_inner(name)}|{k}","symbol":"' for k in kinds]
        self._after_time = len(lits)
        for name in self.rule_names:
            lits += [f'","timeframe":{tf},"rule":{_json(name)},"kind":{k},"state":{s},"values":{{'
                     for k in kinds_json for s in states]
        prog: list[tuple[int, int, int, int, int]] = []
        lo = [0]
        self._op_field: list[Field | None] = []  # the field of each op (None: a literal)
        ops = {NUM: lk.NUM, PCT: lk.PCT, SIGN: lk.SIGN, INT: lk.INT, TIME: lk.TIME, DIRECTION: lk.DIRECTION}
        for fields in self.rule_fields:
            last: dict[str, Field] = {}
            for f in fields:  # a dict display: a repeated key keeps its place, takes the last field
                last[f.key] = f
            text = ""  # literal text not yet in the program
            for i, (key, f) in enumerate(last.items()):
                text += ("," if i else "") + _json(key) + ":"
                if f.fmt == CONST:
                    text += _json(f.const)
                    continue
                if f.fmt not in ops and f.fmt != ZONE:
                    raise ValueError(f"field {f.key!r}: unknown format {f.fmt}")
                before = len(lits)
                lits.append(text)
                if f.fmt == ZONE:  # each name with its key before it: one piece a line, not two
                    prog.append((lk.ZONE, f.col, len(lits), len(f.names), before))
                    lits += [text + _json(z) for z in f.names]
                else:
                    prog.append((ops[f.fmt], f.col, 0, 0, before))
                text = ""
                self._op_field.append(f)
            if text:
                prog.append((lk.LIT, 0, 0, 0, len(lits)))
                self._op_field.append(None)
                lits.append(text)
            lo.append(len(prog))
        nks = len(kinds) * len(states)
        for j in range(len(self.rule_names)):  # a rule's first key joins the text before it
            if lo[j] < lo[j + 1] and prog[lo[j]][0] != lk.ZONE:
                op, col, names, count, before = prog[lo[j]]
                after = self._after_time + j * nks
                lits[after : after + nks] = [x + lits[before] for x in lits[after : after + nks]]
                prog[lo[j]] = (op, col, names, count, -1)
        self._lit, self._lit_off = _pack(lits)
        self._prog = np.array(prog, dtype=np.int64).reshape(-1, 5)
        self._prog_lo = np.array(lo, dtype=np.int64)
        codes = self._prog[:, 0]
        # per rule: how many values of each kind its records can send out of the numba pass
        count = np.zeros((3, len(self.rule_names)), dtype=np.int64)
        for j in range(len(self.rule_names)):
            c = codes[lo[j] : lo[j + 1]]
            count[0, j] = np.isin(c, (lk.NUM, lk.PCT)).sum()
            count[1, j] = (c == lk.TIME).sum()
            count[2, j] = np.isin(c, (lk.SIGN, lk.INT, lk.ZONE, lk.TIME)).sum()
        self._counts = count
        self._max_col = max((f.col for f in self._op_field if f is not None), default=-1)
        self._most = self._most_bytes(lits)

    def _most_bytes(self, lits: list[str]) -> np.ndarray:
        """Per rule: the most bytes a line of it can take but for its symbol and time (each twice)."""
        size = np.array([len(x.encode()) for x in lits], dtype=np.int64)
        nk, ns = len(KINDS), len(STATES)
        widest = {lk.NUM: NUMBER, lk.PCT: NUMBER, lk.SIGN: 20, lk.INT: 20, lk.TIME: 2 + lk.STAMP,
                  lk.DIRECTION: int(max(size[lk.UP], size[lk.DOWN])), lk.LIT: 0}
        most = np.zeros(len(self.rule_names), dtype=np.int64)
        for j in range(len(self.rule_names)):
            ids = size[self._after_id + j * nk : self._after_id + (j + 1) * nk]
            times = size[self._after_time + j * nk * ns : self._after_time + (j + 1) * nk * ns]
            most[j] = (int(size[[lk.HEAD, lk.ID, lk.BAR, lk.TIMEKEY]].sum()) + 20 + int(ids.max())
                       + int(times.max()) + int(max(size[lk.TAIL], size[lk.TAIL_LATE])))
            for op, _, names, count, before in self._prog[self._prog_lo[j] : self._prog_lo[j + 1]].tolist():
                value = int(size[names : names + count].max()) if op == lk.ZONE else widest[op]
                most[j] += (int(size[before]) if before >= 0 else 0) + max(value, int(size[lk.NULL]))
        return most

    # ---- caches --------------------------------------------------------------------------------
    def _symbol_table(self, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        have = len(self._symbols)
        if len(symbols) < have or (have and symbols[have - 1] != self._symbols[-1]):
            self._symbols = []  # not the list we cached: start over
            have = 0
        if len(symbols) > have:
            self._symbols += list(symbols[have:])
            self._sym_data, self._sym_off = _pack([_inner(s) for s in self._symbols])
        return self._sym_data, self._sym_off

    # ---- encoding --------------------------------------------------------------------------------
    def encode(self, symbols: list[str], seq0: int, sym, t, rule, kind, state, late, values) -> bytes:
        """JSON lines of n event records (record q is event seq0 + 1 + q), newline-terminated:
        `b"".join(map(stream.events.encode, events))` of the Events the records describe."""
        n = len(sym)
        cols = [np.asarray(a) for a in (sym, t, rule, kind, state)]
        if not all(a.ndim == 1 and len(a) == n for a in cols):
            raise ValueError("record arrays differ in length")
        rec = np.zeros((n, E_WIDTH), dtype=np.int64)
        for c, a in zip((E_SYM, E_T, E_RULE, E_KIND, E_STATE), cols, strict=True):
            rec[:, c] = a
        return self.encode_records(symbols, seq0, rec, late, values)

    def encode_records(self, symbols: list[str], seq0: int, rec: np.ndarray, late, values) -> bytes:
        """`encode` of the engine's records as they are (int64 [n, E_WIDTH]: each record's fields
        in one row, read in place)."""
        n = len(rec)
        if n == 0:
            return b""
        if n < self.SMALL:
            return self._per_event(symbols, seq0, rec[:, E_SYM], rec[:, E_T], rec[:, E_RULE], rec[:, E_KIND],
                                   rec[:, E_STATE], late, values)
        rec = np.ascontiguousarray(rec, dtype=np.int64)
        late = np.ascontiguousarray(late, dtype=bool)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if rec.ndim != 2 or rec.shape[1] != E_WIDTH or not len(late) == len(values) == n:
            raise ValueError("record arrays differ in length")
        sym, t = rec[:, E_SYM], rec[:, E_T]
        sym_data, sym_off = self._symbol_table(symbols)
        per_rule = np.empty(len(self.rule_names), dtype=np.int64)
        t_ix = np.empty(n, dtype=np.int64)
        starts = np.empty(n + 1, dtype=np.int64)
        ok, nruns, most = lk.prepare(rec, len(symbols), len(self.rule_names), len(KINDS), len(STATES),
                                     self._most, sym_off, per_rule, t_ix, starts)
        if not ok:
            self._check(symbols, (sym, rec[:, E_RULE], rec[:, E_KIND], rec[:, E_STATE]))
            raise ValueError("record index out of range")  # not reached: _check names the column
        if values.ndim != 2 or values.shape[1] <= self._max_col:
            raise ValueError("value records too short for the rules' fields")
        seq0 = int(seq0)
        if not -(2**63) < seq0 < 2**63 - n:
            raise ValueError("seq out of range")

        if nruns * 4 <= n:  # event times come in runs (a batch's bars share a few times)
            times, uses = t[starts[:nruns]], np.diff(starts[: nruns + 1])
        else:  # many runs: `_runs` gives the distinct times
            times, t_ix = _runs(t)
            t_ix = t_ix.astype(np.int64)
            uses = np.bincount(t_ix, minlength=len(times))
        tm_data, tm_off = _time_table(*np.divmod(times, 1_000_000_000))
        most += 2 * int(np.dot(np.diff(tm_off), uses))  # each time's text twice a line
        bound = self._counts @ per_rule
        flt = np.empty(bound[0], dtype=np.float64)
        tim = np.empty(bound[1], dtype=np.int64)
        bad = np.empty((bound[2], 2), dtype=np.int64)
        counts = np.zeros(3, dtype=np.int64)
        head = (seq0, rec, t_ix, late, values, self._lit, self._lit_off,
                sym_data, sym_off, tm_data, tm_off, self._prog, self._prog_lo, len(KINDS), len(STATES),
                self._after_id, self._after_time, np.empty(bound[0], dtype=np.int64), flt)
        memo = np.empty((lk.MEMO, 2), dtype=np.int64)
        rest = (_EMPTY, _OFF0, 0, tim, _INDEX0, _EMPTY, _OFF0, bad, _EMPTY, _OFF0, counts, memo)

        # 1. one pass, into a buffer the lines cannot overflow (cut to size after), when the kernel
        # can write every value itself (the common case)
        blob = _new_blob(most)
        done = lk.run(blob.buf, False, True, *head, *rest)
        if done >= 0:
            return blob.bytes(done)
        del blob

        # 2. dry: what the numba pass cannot write itself (floats, times, odd values), in its order
        known = lk.run(_NOWHERE, True, False, *head, *rest)
        nf, nt, nb = counts.tolist()

        # 3. their texts: floats by polars, times by the kernel, odd values by the Event path's own
        # formatter (or its error)
        if nf > _FEW_FLOATS:
            flt_data, flt_off = _table(pl.Series(flt[:nf]).cast(pl.String))
            sep = 0
        else:  # fewer: msgspec's own texts, from one list "[a,b,...]", each ending in a separator
            flt_data, flt_off = _list_texts(flt[:nf])
            sep = 1
        if nt:
            u, tim_ix = _runs(tim[:nt])
            tv_data, tv_off = _time_table(u // 1_000_000, (u % 1_000_000) * 1000)
            tim_ix = tim_ix.astype(np.int64)
        else:
            tim_ix, tv_data, tv_off = _INDEX0, _EMPTY, _OFF0
        fields = self._op_field
        bad_data, bad_off = _pack([_json(format_value(fields[o], float(values[q, fields[o].col])))
                                   for q, o in bad[:nb].tolist()])

        # 4. wet: the lines, written into the bytes object returned
        big = flt_data[flt_off[0] : flt_off[-1]]
        size = (known + int(flt_off[-1] - flt_off[0]) - sep * nf - int(np.count_nonzero(big == 43))
                + int(np.diff(tv_off)[tim_ix].sum()) + int(bad_off[-1]))
        blob = _new_blob(size)
        done = lk.run(blob.buf, False, False, *head, flt_data, flt_off, sep, tim, tim_ix, tv_data, tv_off,
                      bad, bad_data, bad_off, counts, memo)
        if done != size:
            raise RuntimeError(f"JSON lines of {done} bytes, {size} expected")
        return blob.bytes(done)

    def _check(self, symbols, cols) -> None:
        """Raises for the first column (symbol, rule, kind, state) with an index out of range."""
        for what, a, hi in zip(("symbol", "rule", "kind", "state"), cols,
                               (len(symbols), len(self.rule_names), len(KINDS), len(STATES)), strict=True):
            lo, top = (a.min(), a.max()) if isinstance(a, np.ndarray) else (min(a), max(a))
            if lo < 0 or top >= hi:
                raise ValueError(f"{what} index out of range 0..{hi - 1}")

    def _per_event(self, symbols, seq0: int, sym, t, rule, kind, state, late, values) -> bytes:
        """The same lines the per-event way, for small blocks (a live bar's): Event objects,
        msgspec. The records are made lists first and checked as lists: on a few items each numpy
        call (a min, a max) costs more than the whole list."""
        ints = [np.asarray(a, dtype=np.int64).tolist() for a in (sym, t, rule, kind, state)]
        late = np.asarray(late, dtype=bool).tolist()
        values = np.asarray(values, dtype=np.float64)
        if not all(len(a) == len(sym) for a in (*ints, late, values)):
            raise ValueError("record arrays differ in length")
        if values.ndim != 2 or values.shape[1] <= self._max_col:
            raise ValueError("value records too short for the rules' fields")
        sym, t, rule, kind, state = ints
        self._check(symbols, (sym, rule, kind, state))
        times = [rfc3339(x) for x in t]
        events = from_columns(self.timeframe, symbols, self.rule_names, self._decoders, seq0, sym, times,
                              rule, kind, state, late, values.tolist())
        return encode_lines(events)


def _frozen(a: np.ndarray) -> np.ndarray:
    """a, read-only: every table the kernel reads has one numba type, so it is compiled once."""
    a.setflags(write=False)
    return a


_NOWHERE = np.zeros(0, dtype=np.uint8)  # the buffer of a dry run
_EMPTY = _frozen(np.zeros(lk.PAD, dtype=np.uint8))  # an empty table's text ...
_OFF0 = _frozen(np.zeros(1, dtype=np.int64))  # ... and its offsets
_INDEX0 = np.zeros(0, dtype=np.int64)


def _list_texts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """msgspec's texts of finite floats, as `run` reads them with sep=1: text i is
    data[off[i]:off[i + 1] - 1] (each is followed by a "," or the closing "]")."""
    data = np.frombuffer(msgspec.json.encode(x.tolist()) + bytes(lk.PAD), dtype=np.uint8)
    off = np.empty(len(x) + 1, dtype=np.int64)
    off[0] = 1
    off[1:-1] = np.flatnonzero(data == 44) + 1  # no "," inside a number
    off[-1] = len(data) - lk.PAD
    return data, _frozen(off)


def _time_table(sec: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`rfc3339` of each (seconds, nanoseconds) as a text table: by the numba kernel, but for
    years outside 1000..9999 (strftime's own forms), left to `rfc3339`."""
    sec = np.ascontiguousarray(sec, dtype=np.int64)
    frac = np.ascontiguousarray(frac, dtype=np.int64)
    data = np.empty(len(sec) * lk.STAMP + lk.PAD, dtype=np.uint8)
    off = np.empty(len(sec) + 1, dtype=np.int64)
    if lk.stamps(sec, frac, data, off):
        whole = data.tobytes()
        pairs = zip(sec.tolist(), frac.tolist(), off[:-1].tolist(), off[1:].tolist(), strict=True)
        return _pack([whole[lo:hi].decode() if hi > lo else rfc3339(s * 1_000_000_000 + f)
                      for s, f, lo, hi in pairs])
    return _frozen(data), _frozen(off)


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts as one UTF-8 buffer and their offsets (texts[i] is data[off[i]:off[i + 1]]); the
    buffer ends in lk.PAD spare bytes."""
    encoded = [x.encode() for x in texts]
    off = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in encoded], out=off[1:])
    return np.frombuffer(b"".join(encoded) + bytes(lk.PAD), dtype=np.uint8), _frozen(off)


def _table(texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """A Series of strings (no nulls) as its UTF-8 bytes and offsets, read from its arrow buffers
    (copied only if they lack lk.PAD spare bytes at the end)."""
    arr = texts.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type != pa.large_string():
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        raise ValueError("a text is null")
    _, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    if data is None or len(arr) == 0:
        return _EMPTY, _frozen(np.zeros(len(arr) + 1, dtype=np.int64))
    data = np.frombuffer(data, dtype=np.uint8)
    if len(data) < off[-1] + lk.PAD:
        data = _frozen(np.concatenate((data[: off[-1]], np.zeros(lk.PAD, dtype=np.uint8))))
    return data, off


class _Memory:
    """size bytes at an address, as numpy sees them (no ctypes array type made for each size)."""

    def __init__(self, address: int, size: int) -> None:
        self.__array_interface__ = {"data": (address, False), "shape": (size,), "typestr": "|u1",
                                    "version": 3}


class _CutBlob:
    """size bytes to fill (`buf`), then `bytes(n)`: the first n as a bytes object. CPython lets a
    new bytes object be filled in place before anyone sees it (as C code does), which saves
    copying the output once, and cut to n with `_PyBytes_Resize` (a realloc that shrinks where
    it is: no copy either). Until then it is a bare pointer holding the only reference (no Python
    object refers to it), as `_PyBytes_Resize` requires."""

    api: Any = None  # (PyBytes_FromStringAndSize, _PyBytes_Resize, Py_DecRef), set by _blob_maker

    def __init__(self, size: int) -> None:
        new, _, _ = self.api
        self._ptr: ctypes.c_void_p | None = ctypes.c_void_p(new(None, max(size, 1)))
        if not self._ptr.value:
            raise MemoryError(f"cannot allocate {size} bytes of lines")
        self.buf = np.asarray(_Memory(self._ptr.value + bytes.__basicsize__ - 1, size))

    def bytes(self, n: int) -> bytes:
        _, resize, decref = self.api
        self.buf = _NOWHERE
        ptr, self._ptr = self._ptr, None
        if resize(ctypes.byref(ptr), n) != 0:  # it freed the object
            raise MemoryError("cannot cut a bytes object to size")
        out = ctypes.cast(ptr, ctypes.py_object).value  # a second reference ...
        decref(ptr)  # ... and the only one now
        return out

    def __del__(self) -> None:  # never cut (an error between): release it
        if self._ptr is not None and self._ptr.value:
            self.api[2](self._ptr)


class _CopiedBlob:
    """`_CutBlob` where a bytes object cannot be filled and cut: a bytearray, copied."""

    def __init__(self, size: int) -> None:
        self._out = bytearray(size)
        self.buf = np.frombuffer(self._out, dtype=np.uint8)

    def bytes(self, n: int) -> bytes:
        self.buf = _NOWHERE
        return bytes(memoryview(self._out)[:n])


def _blob_maker() -> type[_CutBlob] | type[_CopiedBlob]:
    """_CutBlob if this Python allows it (checked once, references counted), else _CopiedBlob."""
    try:
        api = ctypes.pythonapi
        new = api["PyBytes_FromStringAndSize"]  # its own function object: restype c_void_p
        new.restype, new.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_ssize_t]
        resize = api["_PyBytes_Resize"]
        resize.restype, resize.argtypes = ctypes.c_int, [ctypes.POINTER(ctypes.c_void_p), ctypes.c_ssize_t]
        decref = api["Py_DecRef"]
        decref.restype, decref.argtypes = None, [ctypes.c_void_p]
        _CutBlob.api = (new, resize, decref)
        probe = _CutBlob(1 << 20)
        probe.buf[:5] = np.frombuffer(b"probe", dtype=np.uint8)
        out = probe.bytes(5)
        if out == b"probe" and type(out) is bytes and sys.getrefcount(out) == 2:
            return _CutBlob
    except (AttributeError, TypeError, ValueError, OSError, MemoryError):
        pass
    return _CopiedBlob


_new_blob = _blob_maker()
