"""The bulk JSON-lines encoder (stream.lines) writes exactly the per-event path's bytes: generated
records of every rule type, state and value format (NaN, -0.0, extreme floats, sub-second and
pre-1970 times, awkward strings), the engine's own events, an empty block, a growing symbol list."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config import RuleSpec, parse_config
from stream.events import STATES, Event, encode, event_id, rfc3339
from stream.fields import CONST, DIRECTION, INT, NUM, PCT, SIGN, TIME, ZONE, Field, decoder, value_fields
from stream.lines import LineEncoder
from stream.outputs.jsonl import encode_lines
from stream.signals.common import KINDS

NS = 1_000_000_000
T0 = 1_714_570_200 * NS  # 2024-05-01T13:30:00Z

SYMBOLS = ["AAPL", 'BRK"B', "a\\b", "ü€😀", "tab\tnl\n", "\x00\x1f\x7f", "</script>", "\u2028x", "MSFT"]
ZONES = ["low", 'mi"d', "hé\\gh"]

# one rule of each type, some with names and keys that need escaping; the cross of `close`
# names the key "close" twice (it keeps its first place and takes the later column)
RULES = [
    (RuleSpec("ma_cross", "cross", {"a": "sma10", "b": "sma50"}), "sma10", "sma50"),
    (RuleSpec("close\"x", "cross", {"a": "close", "b": "sma10"}), "close", "sma10"),
    (RuleSpec("lvl/ü", "level", {"series": "rsi14", "level": 40}), "rsi14", None),
    (RuleSpec("pend", "pending", {"a": "sma10", "b": "sma50", "within": 0.01}), "sma10", "sma50"),
    (RuleSpec("rsi_bands", "bands", {"series": "rsi\\14", "levels": [30, 70], "zones": ZONES}), "rsi\\14", None),
    (RuleSpec("brk\n", "channel", {"period": 20, "low": "low", "high": "high"}), "brk.lowest", "brk.highest"),
    (RuleSpec("div", "divergence", {"price": "close", "oscillator": "rsi14"}), "close", "rsi14"),
]
NAMES = [r.name for r, _, _ in RULES]
FIELDS = [value_fields(r, a, b) for r, a, b in RULES]

# awkward values by format
NUMS = [0.0, -0.0, 1.0, -1.0, 3.0, 1e15, 1e16, 9999999999999998.0, 1e22, -1e22, 1.7976931348623157e308,
        1e-300, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-5, 1e-7, 0.1, 111.87, 72.82455334930933,
        123456789.123, float("nan"), float("inf"), float("-inf")]
SIGNS = [-1.0, 0.0, 1.0, -0.0, float("nan"), 2.7, -2.7, 1e18, 9.3e18, -1e19, 1e300]
INTS = [0.0, 1.0, 7.0, 12345.0, 3.9, float("nan"), -0.0, 2.0**63, 1e20]
DIRECTIONS = [1.0, -1.0, 0.0, -0.0, float("nan"), 1e-300]
TIMES_US = [1_714_570_200e6, 1_714_570_200e6 + 1, 1_714_570_200e6 + 500_000, 1_714_570_200e6 + 123_456.7,
            0.0, -1.0, -1e15 + 3, -4e16, -4e16 + 250_000, 3e17, 1e-3, -0.9]
TIMES_NS = [T0, T0 + 1, T0 + NS // 2, T0 + 123_456_789, T0 + 60 * NS, 0, -1, -NS, -86_400 * NS + 10,
            -2**63, 2**63 - 1]


@pytest.fixture(autouse=True)
def bulk_only(monkeypatch):
    """Every block takes the bulk path (small ones would take the per-event path)."""
    monkeypatch.setattr(LineEncoder, "SMALL", 0)


def column(rng, fmt: int, field: Field, n: int) -> np.ndarray:
    """n values for a field: ordinary ones mixed with the awkward ones of its format."""
    if fmt in (NUM, PCT):
        x = np.round(rng.uniform(1, 500, n), 2)
        x[::3] = rng.normal(50, 20, n)[::3]
        pool = NUMS
    elif fmt == SIGN:
        x = rng.integers(-1, 2, n).astype(float)
        pool = SIGNS
    elif fmt == INT:
        x = rng.integers(0, 60, n).astype(float)
        pool = INTS
    elif fmt == ZONE:
        count = len(field.names)
        x = rng.integers(0, count, n).astype(float)
        pool = [-1.0, -float(count), count - 1 + 0.9, 0.5]
    elif fmt == TIME:
        x = (T0 // 1000 - rng.integers(0, 1000, n) * 60_000_000).astype(float)
        pool = TIMES_US
    elif fmt == DIRECTION:
        x = np.where(rng.random(n) < 0.5, 1.0, -1.0)
        pool = DIRECTIONS
    else:
        return rng.normal(size=n)  # CONST: the column is not read
    odd = rng.random(n) < 0.25
    x[odd] = rng.choice(np.array(pool), odd.sum())
    return x


def block(rng, n: int, nsym: int = len(SYMBOLS), fields=FIELDS) -> dict:
    """n generated records over all rules, time-ordered like the engine's, every state and kind."""
    rule = rng.integers(0, len(fields), n)
    values = rng.normal(size=(n, 10))
    for j, fs in enumerate(fields):
        m = rule == j
        for f in fs:
            if f.fmt != CONST:
                values[m, f.col] = column(rng, f.fmt, f, int(m.sum()))
    t = np.sort(T0 + rng.integers(0, 50, n) * 60 * NS)
    odd = rng.random(n) < 0.1
    t[odd] = rng.choice(np.array(TIMES_NS, dtype=np.int64), odd.sum())
    return {
        "sym": rng.integers(0, nsym, n),
        "t": t,
        "rule": rule,
        "kind": rng.integers(0, len(KINDS), n),
        "state": rng.integers(0, 3, n),
        "late": rng.random(n) < 0.3,
        "values": values,
    }


def reference(timeframe, names, fields, symbols, seq0, sym, t, rule, kind, state, late, values) -> bytes:
    """The per-event path, as the engine takes it: an Event per record, each encoded."""
    out = []
    for q in range(len(sym)):
        symbol, time_, name, k = symbols[sym[q]], rfc3339(int(t[q])), names[rule[q]], KINDS[kind[q]]
        out.append(encode(Event(1, seq0 + 1 + q, event_id(symbol, time_, name, k), symbol, time_, timeframe, name,
                                k, STATES[state[q]], decoder(fields[rule[q]])(values[q].tolist()), bool(late[q]))))
    return b"".join(out)


def both(enc: LineEncoder, symbols, seq0: int, rec: dict) -> tuple[bytes, bytes]:
    got = enc.encode(symbols, seq0, **rec)
    want = reference(enc.timeframe, enc.rule_names, enc.rule_fields, symbols, seq0, **rec)
    return got, want


def assert_same(got: bytes, want: bytes) -> None:
    if got != want:  # name the first differing line, not two megabytes
        for k, (a, b) in enumerate(zip(got.split(b"\n"), want.split(b"\n"), strict=False)):
            assert a == b, f"line {k} differs"
        assert got == want


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_generated_records_match_the_event_path(seed):
    rng = np.random.default_rng(seed)
    enc = LineEncoder("1Min", NAMES, FIELDS)
    rec = block(rng, 3000)
    got, want = both(enc, SYMBOLS, 10**9 + seed, rec)
    assert_same(got, want)
    assert got.count(b"\n") == 3000
    # the awkward cases were really there
    for part in (b":1e22,", b":-0.0,", b":5e-324", b":null", b'"close\\"x"', b'"BRK\\"B"', "ü€😀".encode(),
                 b"1969-12-31T23:59:59.999999999Z", b'"late":true', b'"retracted"', b'"provisional"',
                 b'"mi\\"d"', b'"period":20', b'"direction":"down"', b"9300000000000000000", b'"kind":""'):
        assert part in got, part


def test_one_rule_and_large_blocks_match():
    """A block of a single rule takes the no-regrouping path; a large block is split over threads."""
    rng = np.random.default_rng(7)
    enc = LineEncoder("1Day", NAMES, FIELDS)
    for j in range(len(NAMES)):
        rec = block(rng, 500)
        rec["rule"][:] = j
        for f in FIELDS[j]:
            if f.fmt != CONST:
                rec["values"][:, f.col] = column(rng, f.fmt, f, 500)
        assert_same(*both(enc, SYMBOLS, 0, rec))
    assert_same(*both(enc, SYMBOLS, 5, block(rng, 250_000)))


def test_a_known_line():
    """One record written out by hand: independent of both encoders."""
    fields = (Field("close", 0, NUM), Field("x", 1, PCT), Field("zone", 2, ZONE, ("a", "b\"")),
              Field("n", 3, INT), Field("s", 4, SIGN), Field("at", 5, TIME), Field("dir", 6, DIRECTION),
              Field("period", -1, CONST, const=20))
    enc = LineEncoder("1Min", ["r\\1"], [fields])
    rec = np.array([[1e22, 0.0123, 1.0, 4.0, float("nan"), 1_714_570_200_500_000.0, -1.0, 0, 0, 0]])
    got = enc.encode(['A"B'], 41, np.array([0]), np.array([T0 + NS // 2]), np.array([0]), np.array([3]),
                     np.array([1]), np.array([True]), rec)
    assert got == (
        b'{"v":1,"seq":42,"id":"A\\"B|2024-05-01T13:30:00.5Z|r\\\\1|enter","symbol":"A\\"B",'
        b'"time":"2024-05-01T13:30:00.5Z","timeframe":"1Min","rule":"r\\\\1","kind":"enter",'
        b'"state":"provisional","values":{"close":1e22,"x":1.23,"zone":"b\\"","n":4,"s":null,'
        b'"at":"2024-05-01T13:30:00.5Z","dir":"down","period":20},"late":true}\n'
    )
    assert json.loads(got)["values"]["x"] == 100.0 * 0.0123


def test_small_blocks_take_the_per_event_path_with_the_same_bytes(monkeypatch):
    monkeypatch.setattr(LineEncoder, "SMALL", 100)
    rng = np.random.default_rng(12)
    enc = LineEncoder("1Hour", NAMES, FIELDS)
    for n in (1, 2, 99, 100, 101, 500):
        assert_same(*both(enc, SYMBOLS, n, block(rng, n)))


def test_rules_with_no_values_or_only_constants():
    layouts = [(), (Field("period", -1, CONST, const=20), Field("label", -1, CONST, const="a\\\"b")), FIELDS[4]]
    enc = LineEncoder("1Day", ["none", "const", NAMES[4]], layouts)
    rec = block(np.random.default_rng(13), 3000, fields=layouts)
    assert_same(*both(enc, SYMBOLS, 0, rec))
    got = enc.encode(SYMBOLS, 0, **rec)
    assert b'"values":{}' in got and b'"values":{"period":20,"label":"a\\\\\\"b"}' in got


def test_empty_block():
    enc = LineEncoder("1Day", NAMES, FIELDS)
    empty = np.zeros(0, dtype=np.int64)
    assert enc.encode([], 0, empty, empty, empty, empty, empty, np.zeros(0, bool), np.zeros((0, 10))) == b""
    assert enc.encode(SYMBOLS, 5, [], [], [], [], [], [], np.zeros((0, 10))) == b""


def test_symbols_growing_between_calls():
    rng = np.random.default_rng(11)
    enc = LineEncoder("5Min", NAMES, FIELDS)
    symbols: list[str] = []
    seq = 0
    for k in range(len(SYMBOLS)):
        symbols.append(SYMBOLS[k])  # the engine's list, appended to in place
        rec = block(rng, 40, nsym=len(symbols))
        rec["sym"][-1] = k  # the new symbol is used at once
        assert_same(*both(enc, symbols, seq, rec))
        seq += 40
    grown = [*symbols, "NEW\"1", "NEW2"]  # a new list with the same start
    rec = block(rng, 200, nsym=len(grown))
    assert_same(*both(enc, grown, seq, rec))
    other = ["Z1", "Z2"]  # not the list cached: starts over
    assert_same(*both(enc, other, 0, block(rng, 50, nsym=2)))


def test_errors_are_the_event_paths():
    """Values the Event path cannot format raise here too, with the same exception type."""
    enc = LineEncoder("1Day", NAMES, FIELDS)
    j = NAMES.index("rsi_bands")
    zone = next(f for f in FIELDS[j] if f.key == "zone")
    for bad, error in ((float("nan"), ValueError), (7.0, IndexError), (float("inf"), OverflowError)):
        rec = block(np.random.default_rng(3), 20)
        rec["rule"][:] = j
        rec["values"][:, zone.col] = 1.0
        rec["values"][5, zone.col] = bad
        for fn in (lambda r=rec: enc.encode(SYMBOLS, 0, **r),
                   lambda r=rec: reference("1Day", NAMES, FIELDS, SYMBOLS, 0, **r)):
            with pytest.raises(error):
                fn()
    rec = block(np.random.default_rng(4), 20)
    with pytest.raises(ValueError, match="symbol index"):
        enc.encode(SYMBOLS[:2], 0, **rec)


@pytest.mark.parametrize("n", [20, 500])  # the per-event path and the bulk one (its compiled checks)
@pytest.mark.parametrize("col,what,hi", [("sym", "symbol", len(SYMBOLS)), ("rule", "rule", len(NAMES)),
                                         ("kind", "kind", len(KINDS)), ("state", "state", len(STATES))])
def test_indices_out_of_range_name_their_column(n, col, what, hi):
    enc = LineEncoder("1Day", NAMES, FIELDS)
    for bad in (-1, hi):
        rec = block(np.random.default_rng(5), n)
        rec[col][n // 2] = bad
        with pytest.raises(ValueError, match=f"^{what} index out of range 0..{hi - 1}$"):
            enc.encode(SYMBOLS, 0, **rec)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40),
       st.lists(st.integers(-2**70, 2**70).map(float) | st.floats(-1e20, 1e20), min_size=1, max_size=40))
def test_any_float_is_written_as_msgspec_writes_it(nums, ints):
    fields = (Field("a", 0, NUM), Field("p", 1, PCT), Field("i", 2, INT), Field("s", 3, SIGN))
    n = max(len(nums), len(ints))
    values = np.zeros((n, 10))
    values[:, 0] = (nums * n)[:n]
    values[:, 1] = values[::-1, 0]
    values[:, 2] = (ints * n)[:n]
    values[:, 3] = values[::-1, 2]
    rec = {"sym": np.zeros(n, np.int64), "t": np.full(n, T0), "rule": np.zeros(n, np.int64),
           "kind": np.full(n, 3), "state": np.zeros(n, np.int64), "late": np.zeros(n, bool), "values": values}
    enc = LineEncoder("1Day", ["r"], [fields])
    assert_same(*both(enc, ["S"], 0, rec))


@pytest.mark.parametrize("distinct", [1, 3, 9, 40])
def test_floats_met_again_are_written_as_the_first_time(distinct, monkeypatch):
    """The one pass copies a float it wrote a moment ago (`linekernel.run`'s memo): values that
    repeat within a line and across lines, x beside -x and 100 * x in a percentage, more distinct
    values than the memo has rows (evictions, collisions), and one left to polars midway (the
    block falls back to two passes): the Event path's bytes every time."""
    import stream.lines as lines

    rng = np.random.default_rng(distinct)
    pool = rng.choice([1.0, 3.5, 109.56, 45.006970611700204, 1e-4, 0.1, 7e12, 123456.789, 2.0 / 3.0], distinct)
    pool = np.concatenate([pool, rng.normal(50, 20, 40)])[: max(distinct, 1)]
    fields = (Field("a", 0, NUM), Field("b", 1, NUM), Field("p", 2, PCT), Field("c", 3, NUM))
    n = 500
    values = np.zeros((n, 10))
    for c in range(4):
        values[:, c] = rng.choice(pool, n) * rng.choice([1.0, -1.0], n)
    values[::7, 1] = values[::7, 0]  # the same value twice in a line
    values[1::5, 3] = -values[1::5, 0]
    rec = {"sym": np.zeros(n, np.int64), "t": np.full(n, T0), "rule": np.zeros(n, np.int64),
           "kind": np.full(n, 3), "state": np.zeros(n, np.int64), "late": np.zeros(n, bool), "values": values}
    enc = LineEncoder("1Day", ["r"], [fields])
    modes: list[bool] = []
    run = lines.lk.run
    monkeypatch.setattr(lines.lk, "run", lambda buf, dry, one, *a: modes.append(one) or run(buf, dry, one, *a))
    assert_same(*both(enc, ["S"], 0, rec))
    assert modes == [True]
    rec["values"][n // 2, 0] = 1.2345678901234567e-4  # 17 digits below 1e-3: polars' text, two passes
    modes.clear()
    assert_same(*both(enc, ["S"], 0, rec))
    assert modes == [True, False, False]


def events_to_records(events: list[Event], symbols: list[str], names: list[str], fields) -> dict:
    """Back from Events to the record arrays they were made from (the inverse of each format)."""
    sid = {s: i for i, s in enumerate(symbols)}

    def ns(text: str) -> int:
        return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))

    def pct(v: float) -> float:  # the x with 100.0 * x == v
        x = v / 100.0
        for _ in range(8):
            if 100.0 * x == v:
                return x
            x = np.nextafter(x, np.inf if 100.0 * x < v else -np.inf)
        raise AssertionError(v)

    rec = {k: [] for k in ("sym", "t", "rule", "kind", "state", "late")}
    values = np.zeros((len(events), 10))
    for q, e in enumerate(events):
        j = names.index(e.rule)
        for key, v in (("sym", sid[e.symbol]), ("t", ns(e.time)), ("rule", j), ("kind", KINDS.index(e.kind)),
                       ("state", STATES.index(e.state)), ("late", e.late)):
            rec[key].append(v)
        for f in fields[j]:
            v = e.values[f.key]
            if f.fmt == CONST:
                assert v == f.const
                continue
            if v is None:
                x = np.nan
            elif f.fmt == ZONE:
                x = f.names.index(v)
            elif f.fmt == TIME:
                x = ns(v) // 1000
            elif f.fmt == PCT:
                x = pct(v)
            elif f.fmt == DIRECTION:
                x = 1.0 if v == "up" else -1.0
            else:
                x = v
            values[q, f.col] = x
    out = {k: np.array(v, dtype=bool if k == "late" else np.int64) for k, v in rec.items()}
    out["values"] = values
    return out


def test_the_engines_own_events(daily):
    """The engine's events over the bundled real bars, turned back into records, encode to the
    engine's own bytes, in one block and in pieces."""
    from stream.bars import BarBatch
    from stream.engine import Engine

    engine = Engine()
    events = engine.process(BarBatch.from_polars(daily))
    assert len(events) > 1000
    names = [r.name for r in engine.program.rules]
    rec = events_to_records(events, engine.symbols, names, engine.fields)
    enc = LineEncoder(engine.timeframe, names, engine.fields)
    want = encode_lines(events)
    assert_same(enc.encode(engine.symbols, 0, **rec), want)
    cut = len(events) // 3
    head = enc.encode(engine.symbols, 0, **{k: v[:cut] for k, v in rec.items()})
    tail = enc.encode(engine.symbols, cut, **{k: v[cut:] for k, v in rec.items()})
    assert_same(head + tail, want)


def test_one_pass_and_the_two_it_falls_back_to(daily, monkeypatch):
    """The engine's events over real bars take one pass (every value written by the kernel,
    divergences' pivot times too, with microseconds or before 1970); a value it leaves to others (a float of 1e22, a time in year
    20000) sends the block to the two passes; both give the Event path's bytes, and so does the
    buffer that is copied where a bytes object cannot be cut in place."""
    import stream.lines as lines
    from stream.bars import BarBatch
    from stream.engine import Engine

    engine = Engine()
    events = engine.process(BarBatch.from_polars(daily))
    names = [r.name for r in engine.program.rules]
    rec = events_to_records(events, engine.symbols, names, engine.fields)
    enc = LineEncoder(engine.timeframe, names, engine.fields)
    modes: list[str] = []
    run = lines.lk.run

    def spy(buf, dry, one, *args):
        modes.append("one" if one else "dry" if dry else "wet")
        return run(buf, dry, one, *args)

    monkeypatch.setattr(lines.lk, "run", spy)
    assert any(f.fmt == TIME for fs in engine.fields for f in fs) and "rsi_divergence" in {e.rule for e in events}
    assert_same(enc.encode(engine.symbols, 0, **rec), encode_lines(events))
    assert modes == ["one"]
    div = names.index("rsi_divergence")
    q = int(np.flatnonzero(rec["rule"] == div)[0])
    time_col = next(f.col for f in engine.fields[div] if f.fmt == TIME)
    num_col = next(f.col for f in engine.fields[div] if f.fmt == NUM)
    for col, value, passes in ((time_col, 1_714_570_200_123_456.0, ["one"]), (time_col, -3e15, ["one"]),
                               (num_col, 1e22, ["one", "dry", "wet"]),
                               (time_col, 253_402_300_800e6 * 2, ["one", "dry", "wet"])):
        spoilt = {k: v.copy() for k, v in rec.items()}
        spoilt["values"][q, col] = value
        modes.clear()
        got = enc.encode(engine.symbols, 0, **spoilt)
        assert modes == passes
        assert_same(got, reference(engine.timeframe, names, engine.fields, engine.symbols, 0, **spoilt))
    monkeypatch.setattr(lines, "_new_blob", lines._CopiedBlob)
    modes.clear()
    assert_same(enc.encode(engine.symbols, 0, **rec), encode_lines(events))
    assert modes == ["one"]


def test_layouts_compiled_from_a_config():
    """The fields as the engine builds them from a config (compile_program's rule inputs): a cross
    of close, a level, bands with the default zones, a channel, a divergence, a pending cross
    of a constant."""
    from stream.program import compile_program

    settings_ = parse_config(
        "[indicators.sma10]\ntype = \"sma\"\nperiod = 10\n[indicators.rsi14]\ntype = \"rsi\"\nperiod = 14\n"
        "[rules.c]\ntype = \"cross\"\na = \"close\"\nb = \"sma10\"\n"
        "[rules.l]\ntype = \"level\"\nseries = \"rsi14\"\nlevel = 40\n"
        "[rules.b]\ntype = \"bands\"\nseries = \"rsi14\"\nlevels = [30, 50, 70]\n"
        "[rules.ch]\ntype = \"channel\"\nperiod = 5\n"
        "[rules.d]\ntype = \"divergence\"\noscillator = \"rsi14\"\n"
        "[rules.p]\ntype = \"pending\"\na = \"sma10\"\nb = 100.5\n"
    )
    program = compile_program(settings_)
    fields = [value_fields(r, *program.rule_inputs[j]) for j, r in enumerate(program.rules)]
    enc = LineEncoder(settings_.timeframe, [r.name for r in program.rules], fields)
    assert_same(*both(enc, SYMBOLS, 0, block(np.random.default_rng(5), 2000, fields=fields)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-10**16, 10**16), st.integers(-3, 22)), min_size=1, max_size=40))
def test_decimal_floats_are_written_as_msgspec_writes_them(pairs):
    """Floats of few digits (prices, rounded values) are formatted by the numba kernel itself,
    the others by polars: both the same text as msgspec, at every scale and on either side of
    the kernel's range [1e-4, 1e15)."""
    xs = [float(f"{k}e{-p}") for k, p in pairs]
    xs += [np.nextafter(x, np.inf) for x in xs]
    n = len(xs)
    values = np.zeros((n, 10))
    values[:, 0] = xs
    values[:, 1] = values[:, 0] / 100.0
    fields = (Field("a", 0, NUM), Field("p", 1, PCT))
    rec = {"sym": np.zeros(n, np.int64), "t": np.full(n, T0), "rule": np.zeros(n, np.int64),
           "kind": np.full(n, 3), "state": np.zeros(n, np.int64), "late": np.zeros(n, bool), "values": values}
    enc = LineEncoder("1Day", ["r"], [fields])
    assert_same(*both(enc, ["S"], 0, rec))


def test_sixteen_and_seventeen_digit_floats_are_written_as_msgspec_writes_them():
    """Most indicator values need 16 or 17 digits: the kernel finds them exactly (128-bit
    integers), nearest first and ties to even, as msgspec does; over 100,000 doubles of every kind
    (any bits in range, averages, neighbours of short decimals, near powers of ten and two)."""
    from stream.linekernel import short

    rng = np.random.default_rng(31)
    prices = np.round(rng.uniform(1, 2000, 20_000), 2)
    short15 = np.array([float(f"{x:.15g}") for x in 10 ** rng.uniform(-3, 15, 2_000)])
    twos = np.ldexp(1.0, rng.integers(-9, 49, 500))
    xs = np.concatenate([
        10 ** rng.uniform(-4, 15, 20_000),
        rng.integers(0x3F1A36E2EB1C432D, 0x430C6BF526340000, 20_000).view(np.float64),  # 1e-4 .. 1e15
        np.convolve(prices, np.ones(10) / 10, "valid"),
        np.nextafter(prices, np.inf), np.nextafter(prices, -np.inf),
        np.nextafter(10.0 ** rng.integers(-3, 15, 2_000), np.inf),
        short15, np.nextafter(short15, np.inf), np.nextafter(short15, -np.inf),  # at the bounds of
        twos, np.nextafter(twos, np.inf), np.nextafter(twos, -np.inf),  # the 15-digit check
    ])

    def text(k: int, p: int) -> str:
        if p == 0:
            return f"{k}.0"
        digits = str(k).rjust(p + 1, "0")
        return digits[:-p] + "." + digits[-p:]

    long = left = 0
    for x in xs.tolist():
        k, p = short(x)
        if k < 0:  # left to polars: below 1e-3 or a power of two
            assert x < 1e-3 or (np.frexp(x)[0] == 0.5), x
            left += 1
            continue
        long += len(str(k)) >= 16
        assert text(k, p) == msgspec.json.encode(x).decode(), x
    assert long > 50_000 and left < 5_000


def test_strided_columns_and_the_copying_writer(monkeypatch):
    """Columns of one record matrix (as EventBlock passes them) and the writer that fills a
    bytearray and copies it (where a bytes object cannot be filled and cut in place): the same
    bytes."""
    import stream.lines as lines

    rng = np.random.default_rng(21)
    rec = block(rng, 3000)
    enc = LineEncoder("1Min", NAMES, FIELDS)
    want = reference("1Min", NAMES, FIELDS, SYMBOLS, 7, **rec)
    matrix = np.stack([rec["sym"], rec["t"], rec["rule"], rec["kind"], rec["state"]], axis=1)
    cols = {k: matrix[:, i] for i, k in enumerate(("sym", "t", "rule", "kind", "state"))}
    wide = np.concatenate([rec["values"], np.zeros((3000, 3))], axis=1)[:, :10]
    got = enc.encode(SYMBOLS, 7, late=rec["late"], values=wide, **cols)
    assert type(got) is bytes
    assert_same(got, want)

    monkeypatch.setattr(lines, "_new_blob", lines._CopiedBlob)
    got = enc.encode(SYMBOLS, 7, **rec)
    assert type(got) is bytes
    assert_same(got, want)


def test_negative_and_large_seq():
    rng = np.random.default_rng(22)
    enc = LineEncoder("1Min", NAMES, FIELDS)
    for seq0 in (-5000, 2**62):
        assert_same(*both(enc, SYMBOLS, seq0, block(rng, 300)))


def test_time_tables_are_rfc3339():
    """The kernel's time texts (and rfc3339's own for years outside 1000..9999) at any time:
    (seconds, nanoseconds) as event times (ns) and time fields (us) give them."""
    from stream.lines import _time_table

    rng = np.random.default_rng(23)
    edges = [-30_610_224_000, 253_402_300_800]  # 1000-01-01, 10000-01-01
    sec = np.concatenate([rng.integers(-2**63 // 10**6, 2**63 // 10**6, 20_000),
                          rng.integers(-10**11, 3 * 10**11, 20_000), np.array(edges), np.array(edges) - 1,
                          np.array([0, -1, 1, 86_399, 86_400, 951_782_400, 951_868_800])])  # 2000-02-29, 03-01
    frac = rng.integers(0, NS, len(sec))
    frac[::3] = 0
    frac[1::3] = rng.integers(0, 1000, len(frac[1::3])) * 10**6
    for keep in (np.ones(len(sec), bool), (sec >= edges[0]) & (sec < edges[1])):
        s, f = sec[keep], frac[keep]
        data, off = _time_table(s, f)
        text = data.tobytes()
        got = [text[a:b].decode() for a, b in zip(off[:-1].tolist(), off[1:].tolist(), strict=True)]
        assert got == [rfc3339(x * NS + y) for x, y in zip(s.tolist(), f.tolist(), strict=True)]
