"""Engine semantics: batch-size invariance, revisions and retractions, forming bars and
provisional signals, rejected old bars, rule symbol filters, the event schema."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import polars as pl
import pytest

from stream.bars import FINAL, FORMING, Bar, BarBatch
from stream.config import parse_config
from stream.engine import Engine
from stream.events import JSON_SCHEMA, decode, encode

DAY = 86_400 * 10**9


def lines(events) -> list[bytes]:
    return [encode(e) for e in events]


def test_batch_size_does_not_matter(daily):
    whole = lines(Engine().process(BarBatch.from_polars(daily)))
    engine = Engine()
    pieces = []
    for chunk in daily.iter_slices(777):
        pieces += engine.process(BarBatch.from_polars(chunk))
    assert lines(pieces) == whole
    one = Engine()
    part = daily.head(2000)
    single = [e for row in part.iter_slices(1) for e in one.process(BarBatch.from_polars(row))]
    assert lines(single) == lines(Engine().process(BarBatch.from_polars(part)))


def test_many_new_symbols_at_once_say_what_they_say_one_by_one(daily):
    """32 symbols new in one batch (state rows set up together, capacity 0 -> 32 at once), one
    name twice in its symbol list, against the same bars stepped a row at a time."""
    part = daily.sort("t", "symbol").head(4000)
    copies = pl.concat([part.with_columns(pl.col("symbol") + f"_{k}") for k in range(8)]).sort("t", "symbol")
    batch = BarBatch.from_polars(copies)
    twice = BarBatch([*batch.symbols, batch.symbols[0]], batch.sym, batch.t, batch.open, batch.high,
                     batch.low, batch.close, batch.volume)
    one = Engine()
    single = [e for row in copies.iter_slices(1) for e in one.process(BarBatch.from_polars(row))]
    again = Engine()
    assert lines(Engine().process(batch)) == lines(single) == lines(again.process(twice))
    assert len(again.symbols) == copies["symbol"].n_unique() == 32 and sorted(again.symbols) == sorted(one.symbols)


def test_a_batch_listing_the_engines_own_symbols_says_what_any_listing_says(daily):
    """A batch whose symbol list is the engine's own, in its order (a replay's chunks, mostly), is
    stepped by its ids as they are; the same bars listed in another order go by name: the same
    events either way."""
    part = daily.filter(pl.col("symbol").is_in(["AAPL", "IBM", "MSFT"])).sort("t", "symbol").head(6000)
    own_engine, other_engine = Engine(), Engine()
    for engine in (own_engine, other_engine):
        engine.process(BarBatch.from_polars(part.head(1000)))
    batch = BarBatch.from_polars(part.tail(5000))

    def listed(names: list[str]) -> BarBatch:
        lut = np.array([names.index(s) for s in batch.symbols])
        return BarBatch(list(names), lut[batch.sym], batch.t, batch.open, batch.high, batch.low,
                        batch.close, batch.volume)

    own, other = listed(own_engine.symbols), listed(own_engine.symbols[::-1])
    assert own.symbols == own_engine.symbols != other.symbols and len(own.symbols) > 1
    said = lines(own_engine.process(own))
    assert said == lines(other_engine.process(other)) and len(said) > 10


def test_event_cap_refill_gives_the_same_events(daily):
    """A tiny event buffer makes the kernel stop and resume; nothing is lost or doubled."""
    small = Engine(event_capacity=1)
    assert lines(small.process(BarBatch.from_polars(daily))) == lines(
        Engine().process(BarBatch.from_polars(daily))
    )


def test_events_match_the_json_schema(daily):
    events = Engine().process(BarBatch.from_polars(daily))
    kinds = set()
    for e in events:
        line = encode(e)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        doc = json.loads(line)
        jsonschema.validate(doc, JSON_SCHEMA)
        assert list(doc)[:10] == ["v", "seq", "id", "symbol", "time", "timeframe", "rule", "kind", "state", "values"]
        assert decode(line) == e
        kinds.add(e.kind)
    assert kinds >= {"cross_up", "cross_down", "enter", "exit", "break_below", "break_above",
                     "bearish_divergence", "bullish_divergence", "cross_pending"}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def state_rows(engine: Engine) -> np.ndarray:
    """The symbols' state rows: what must match exactly after a revision."""
    return engine.S[: len(engine.symbols)]


def bars_of(df: pl.DataFrame) -> list[Bar]:
    return BarBatch.from_polars(df).bars()


def find_cross(aapl):
    events = Engine().process(BarBatch.from_polars(aapl))
    return next(e for e in events if e.rule == "ma_cross" and e.kind == "cross_up")


def index_of(bars: list[Bar], time_: str) -> int:
    t = int(np.datetime64(time_.rstrip("Z"), "ns").astype(np.int64))
    return next(k for k, b in enumerate(bars) if b.start == t)


def test_revision_retracts_and_ends_as_if_first(aapl):
    cross = find_cross(aapl)
    bars = bars_of(aapl)
    i = index_of(bars, cross.time)
    revised = Bar(**{**{f: getattr(bars[i], f) for f in bars[i].__struct_fields__}, "close": bars[i].close * 0.8,
                     "low": bars[i].low * 0.8})
    engine = Engine()
    engine.process(BarBatch.from_bars(bars[:i]))
    fired = engine.process(BarBatch.from_bars([bars[i]]))
    assert any(e.id == cross.id and e.state == "confirmed" for e in fired)
    after = engine.process(BarBatch.from_bars([revised]))
    retracted = [e for e in after if e.state == "retracted"]
    assert [e.id for e in retracted if e.rule == "ma_cross"] == [cross.id]
    assert engine.revised == 1
    # state is exactly that of a run where the revised bar came first
    twin = Engine()
    twin.process(BarBatch.from_bars(bars[:i] + [revised]))
    np.testing.assert_array_equal(state_rows(engine), state_rows(twin))
    # revising back restores the cross, announced once more as confirmed
    again = engine.process(BarBatch.from_bars([bars[i]]))
    assert [e.id for e in again if e.rule == "ma_cross" and e.state == "confirmed"] == [cross.id]
    # an unchanged revision says nothing new
    assert [e for e in engine.process(BarBatch.from_bars([bars[i]])) if e.rule == "ma_cross"] == []


def test_older_bars_are_rejected_and_counted(aapl):
    bars = bars_of(aapl.head(100))
    engine = Engine()
    engine.process(BarBatch.from_bars(bars))
    before = state_rows(engine).copy()
    engine.process(BarBatch.from_bars([bars[10], bars[50]]))
    assert engine.rejected == 2
    np.testing.assert_array_equal(state_rows(engine), before)


def test_forming_bar_is_provisional_then_confirmed_or_retracted(aapl):
    cross = find_cross(aapl)
    bars = bars_of(aapl)
    i = index_of(bars, cross.time)
    fields = {f: getattr(bars[i], f) for f in bars[i].__struct_fields__}
    forming = Bar(**{**fields, "forming": True})
    engine = Engine()
    engine.process(BarBatch.from_bars(bars[:i]))
    before = state_rows(engine).copy()
    prov = engine.process(BarBatch.from_bars([forming]))
    assert [(e.id, e.state) for e in prov if e.rule == "ma_cross"] == [(cross.id, "provisional")]
    np.testing.assert_array_equal(state_rows(engine), before)  # peek: state untouched
    # the same forming bar again says nothing new
    assert [e for e in engine.process(BarBatch.from_bars([forming])) if e.rule == "ma_cross"] == []
    final = engine.process(BarBatch.from_bars([bars[i]]))
    assert [(e.id, e.state) for e in final if e.rule == "ma_cross"] == [(cross.id, "confirmed")]

    # a forming bar whose close later falls back: provisional, then retracted at the close
    engine = Engine()
    engine.process(BarBatch.from_bars(bars[:i]))
    engine.process(BarBatch.from_bars([forming]))
    weak = Bar(**{**fields, "close": fields["close"] * 0.8, "low": fields["low"] * 0.8})
    out = engine.process(BarBatch.from_bars([weak]))
    states = [(e.id, e.state) for e in out if e.rule == "ma_cross"]
    assert (cross.id, "retracted") in states and (cross.id, "confirmed") not in states


def test_revision_after_a_retracted_provisional_still_fires(aapl):
    """forming bar fires, its final bar does not (provisional retracted), then a revision of
    that final bar fires after all: the cross is said, confirmed (a retraction is not a firing)."""
    cross = find_cross(aapl)
    bars = bars_of(aapl)
    i = index_of(bars, cross.time)
    fields = {f: getattr(bars[i], f) for f in bars[i].__struct_fields__}
    weak = Bar(**{**fields, "close": fields["close"] * 0.8, "low": fields["low"] * 0.8})
    engine = Engine()
    engine.process(BarBatch.from_bars(bars[:i]))
    engine.process(BarBatch.from_bars([Bar(**{**fields, "forming": True})]))
    out = engine.process(BarBatch.from_bars([weak]))
    assert [(e.id, e.state) for e in out if e.rule == "ma_cross"] == [(cross.id, "retracted")]
    out = engine.process(BarBatch.from_bars([bars[i]]))  # the revision
    assert [(e.id, e.state) for e in out if e.rule == "ma_cross"] == [(cross.id, "confirmed")]


def test_snapshot_shows_a_newer_forming_bar(aapl):
    bars = bars_of(aapl.head(60))
    engine = Engine()
    engine.process(BarBatch.from_bars(bars[:59]))
    final = engine.snapshot("AAPL")
    assert final["forming"] is False
    fields = {f: getattr(bars[59], f) for f in bars[59].__struct_fields__}
    engine.process(BarBatch.from_bars([Bar(**{**fields, "forming": True})]))
    snap = engine.snapshot("AAPL")
    closes = [b.close for b in bars]
    assert snap["forming"] is True and snap["t"] == bars[59].start and snap["close"] == closes[59]
    assert snap["indicators"]["sma10"] == pytest.approx(np.mean(closes[50:60]), abs=1e-9)
    assert snap["previous"]["sma10"] == final["indicators"]["sma10"]
    assert snap["change_pct"] == pytest.approx(100 * (closes[59] / closes[58] - 1))
    engine.process(BarBatch.from_bars([bars[59]]))  # the bar closes: the final state again
    closed = engine.snapshot("AAPL")
    assert closed["forming"] is False and closed["indicators"] == snap["indicators"]


def test_rule_symbol_filter():
    cfg = parse_config("""
[indicators.rsi14]
type = "rsi"
period = 14
[rules.only_ibm]
type = "level"
series = "close"
level = 100
symbols = ["IBM"]
""")
    engine = Engine(cfg)
    bars = [Bar(s, k * DAY, p, p, p, p) for k, p in enumerate([90.0, 110.0, 90.0]) for s in ("IBM", "MSFT")]
    events = engine.process(BarBatch.from_bars(bars))
    assert {(e.symbol, e.kind) for e in events} == {("IBM", "break_above"), ("IBM", "break_below")}


def test_generated_kernel_takes_any_float_from_config():
    """Config numbers become literals in the generated kernel: inf and tiny levels too."""
    cfg = parse_config("""
[rules.never]
type = "level"
series = "close"
level = inf
[rules.tiny]
type = "level"
series = "close"
level = 1e-300
""")
    engine = Engine(cfg)
    bars = [Bar("X", k * DAY, p, p, p, p) for k, p in enumerate([1e-301, 1.0, 1e-301])]
    events = engine.process(BarBatch.from_bars(bars))
    assert [(e.rule, e.kind) for e in events] == [("tiny", "break_above"), ("tiny", "break_below")]


def test_snapshot(daily):
    engine = Engine()
    engine.process(BarBatch.from_polars(daily))
    snap = engine.snapshot("AAPL")
    last = daily.filter(pl.col("symbol") == "AAPL").tail(1)
    assert snap["close"] == last["close"][0] and snap["bars"] == 3270
    assert snap["indicators"]["sma10"] == pytest.approx(
        daily.filter(pl.col("symbol") == "AAPL")["close"].tail(10).mean(), abs=1e-9)
    assert snap["previous"]["sma10"] == pytest.approx(
        daily.filter(pl.col("symbol") == "AAPL")["close"].tail(11).head(10).mean(), abs=1e-9)
    assert snap["slopes"]["sma10"] == np.sign(snap["indicators"]["sma10"] - snap["previous"]["sma10"])
    assert snap["zones"]["rsi_bands"] in ("oversold", "lower_half", "upper_half", "overbought")
    assert engine.snapshot("NOPE") is None


def test_warm_and_late_flags_in_kind(daily):
    """A recorded session replays as the live run stepped it: WARM rows change state and say
    nothing, LATE rows' events carry late: true."""
    from stream.bars import LATE, WARM

    batch = BarBatch.from_polars(daily)
    plain = Engine().process(batch)
    half = int(np.searchsorted(batch.t, batch.t[len(batch) // 2], side="right"))  # a time boundary
    batch.kind = batch.kind.copy()
    batch.kind[:half] |= WARM
    batch.kind[half:] |= LATE
    flagged = Engine().process(batch)
    first_late = min(e.seq for e in plain if e.time >= rfc_time(batch.t[half]))
    tail = [e for e in plain if e.seq >= first_late]
    assert len(flagged) == len(tail) > 100
    assert all(e.late for e in flagged)
    assert [encode(e).replace(b',"late":true', b"").split(b'"id"')[1] for e in flagged] == [
        encode(e).split(b'"id"')[1] for e in tail
    ]


def test_one_bar_calls_say_what_a_batch_says(daily):
    """The live case (a bar a call) builds its events straight from the kernel's records:
    `process`, and `step` with its lines, give the batch's events byte for byte, late flags
    (from a bar's kind or from the whole batch) included."""
    from stream.bars import LATE

    part = BarBatch.from_polars(daily.head(3000))
    part.kind = part.kind.copy()
    part.kind[1500:] |= LATE
    whole = Engine().process(part)
    assert any(e.late for e in whole) and not all(e.late for e in whole)
    by_process, by_step, by_late = Engine(), Engine(), Engine()
    got, blob, flagged = [], b"", []
    for i in range(len(part)):
        one = part.rows(i, i + 1)
        got += by_process.process(one)
        blob += by_step.step(one).lines()
        one.late = True
        flagged += by_late.process(one)
    assert lines(got) == lines(whole)
    assert blob == b"".join(lines(whole))
    assert len(flagged) == len(whole) and all(e.late for e in flagged)
    assert [e.id for e in flagged] == [e.id for e in whole]


def rfc_time(t) -> str:
    from stream.events import rfc3339

    return rfc3339(int(t))


def test_warm_up_says_once_when_a_batch_can_be_stepped():
    """warm_up's `stepping` callback: called once, in the warming thread, after the batch kernel
    has loaded (an engine steps a batch right away) and before warm_up returns."""
    import threading

    from stream.config import load_config
    from stream.engine import warm_up

    calls: list[int] = []
    warm_up(load_config(None), stepping=lambda: calls.append(threading.get_ident()))
    assert calls == [threading.get_ident()]
    batch = BarBatch(["X", "Y"], np.arange(4) % 2, np.arange(4) // 2, *np.ones((5, 4)))
    assert len(Engine().step(batch)) == 0


def test_the_kernels_have_one_signature_whatever_the_columns_flags():
    """numba compiles per argument type, and a read-only array is another type: columns from
    polars (read-only), built in memory or copied by a filter (writable) all run the kernels
    warmed once, with no second copy loaded (or, on a cold cache, compiled) at the first bar."""
    def batch(read_only: bool, n: int) -> BarBatch:
        b = BarBatch(["X", "Y"], np.arange(n) % 2, np.arange(n, dtype=np.int64) // 2 * 60_000_000_000,
                     *np.full((5, n), 100.0))
        for col in (b.t, b.open, b.high, b.low, b.close, b.volume, b.kind):
            col.flags.writeable = not read_only
        return b

    engine = Engine()
    engine.step(batch(True, 4))
    engine.step(batch(True, 1))
    kernels = (engine.kernel.run, engine.kernel.run_one)
    loaded = [len(k.overloads) for k in kernels]
    for read_only in (False, True):
        engine.step(batch(read_only, 6))
        engine.step(batch(read_only, 1))
        mixed = batch(read_only, 6)
        mixed.kind.flags.writeable = read_only  # the reader's kind: zeros made in memory
        engine.step(mixed)
        engine.step(mixed.rows(5, 6))
    assert [len(k.overloads) for k in kernels] == loaded


def test_a_bar_steps_alike_whatever_its_columns_flags(aapl):
    """A one-bar step passes writable columns as they are and copies others first: both ways the
    same lines, forming bars and revisions included."""
    x = BarBatch.from_polars(aapl.head(400))
    rows = []  # (t, open, high, low, close, volume, kind): a forming snapshot before every 3rd bar,
    for k in range(len(x.t)):  # a revision of every 5th
        row = [x.t[k], x.open[k], x.high[k], x.low[k], x.close[k], x.volume[k], FINAL]
        if k % 3 == 0:
            rows.append(row[:4] + [(row[2] + row[3]) / 2, row[5] / 2, FORMING])
        rows.append(row)
        if k % 5 == 0:
            rows.append(row[:4] + [row[3], row[5], FINAL])

    def lines(flags: str) -> list[bytes]:
        engine, out = Engine(), []
        for row in rows:
            bar = BarBatch(["AAA"], np.zeros(1, np.int64), *(np.array([v]) for v in row[:6]),
                           kind=np.array([row[6]], np.int8))
            cols = (bar.t, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.kind)
            for col, f in zip(cols, flags, strict=True):
                col.flags.writeable = f == "w"
            out.append(engine.step(bar).lines())
        return out

    every = lines("wwwwwww")
    assert b'"state":"provisional"' in b"".join(every) and b'"retracted"' in b"".join(every)
    assert lines("rrrrrrr") == every
    assert lines("rrrrrrw") == every
