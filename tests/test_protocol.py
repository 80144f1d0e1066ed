"""Alpaca stream frames -> minute columns: typed and loose decoding, every refusal counted by
reason, times in both encodings, error codes explained."""

from __future__ import annotations

import json

import msgpack
import pytest

from stream.feeds.protocol import ERRORS, FATAL, RECONNECT, Counters, decode, explain, rfc3339_ns, split
from stream.timeframes import Aggregator

T0 = 1_654_090_200_000_000_000  # 2022-06-01T13:30:00Z


def bar(sym="SPY", t=T0, typ="b", **kw):
    m = {"T": typ, "S": sym, "o": 10.0, "h": 11.0, "l": 9.0, "c": 10.5, "v": 100, "t": t, "n": 3, "vw": 10.2}
    m.update(kw)
    return m


def pack(msgs):
    return msgpack.packb([{k: (msgpack.Timestamp.from_unix_nano(v) if k == "t" and isinstance(v, int) else v)
                           for k, v in m.items()} for m in msgs], datetime=False)


def text(msgs):
    from fake_alpaca import rfc3339

    return json.dumps([{k: (rfc3339(v) if k == "t" and isinstance(v, int) else v) for k, v in m.items()}
                       for m in msgs])


@pytest.mark.parametrize("enc", [pack, text], ids=["msgpack", "json"])
def test_a_good_frame(enc):
    c, agg = Counters(), Aggregator("1Min")
    frame = enc([bar("SPY"), bar("IWM", c=12.0, h=12.5), bar("SPY", typ="u", c=10.7),
                 {"T": "subscription", "bars": ["SPY"]}, bar(typ="d"), {"T": "t", "S": "SPY"}])
    m, control = split(decode(frame, c), agg, c)
    assert m.t.tolist() == [T0] * 3 and m.kind.tolist() == [0, 0, 1]
    assert [agg.symbols[i] for i in m.ids] == ["SPY", "IWM", "SPY"]
    assert m.c.tolist() == [10.5, 12.0, 10.7] and m.vw.tolist() == [10.2] * 3 and m.n.tolist() == [3] * 3
    assert [x.T if not isinstance(x, dict) else x["T"] for x in control] == ["subscription"]
    assert (c.bars, c.updated, c.daily, dict(c.unknown), c.malformed, sum(c.bad.values())) == (2, 1, 1, {"t": 1}, 0, 0)


@pytest.mark.parametrize("enc", [pack, text], ids=["msgpack", "json"])
def test_bad_values_cost_one_bar_each(enc):
    c, agg = Counters(), Aggregator("1Min")
    bad = [bar(c=float("nan")), bar(o=-1.0), bar(h=8.0), bar(v=-5), bar(S=""), bar(c="x"),
           {k: v for k, v in bar().items() if k != "l"}, bar(t="yesterday"), bar(c=None)]
    m, _ = split(decode(enc([bar("OK1"), *bad, bar("OK2")]), c), agg, c)
    assert [agg.symbols[i] for i in m.ids] == ["OK1", "OK2"]
    assert c.bad == {"NaN c": 1, "non-positive o": 1, "high < low": 1, "bad v": 1, "missing S": 1,
                     "non-numeric c": 1, "missing l": 1, "bad t": 1, "missing c": 1}
    assert "9 bad bar(s)" in c.problems()


def test_malformed_frames():
    c = Counters()
    assert decode(b"\xc1\xc1", c) is None and decode("[{oops", c) is None and decode("42", c) is None
    assert c.malformed == 3 and c.frames == 3
    assert decode(json.dumps({"T": "success", "msg": "connected"}), c)  # a bare object: one message


def test_times():
    assert rfc3339_ns("2022-06-01T13:30:00Z") == T0
    assert rfc3339_ns("2022-06-01T09:30:00-04:00") == T0
    assert rfc3339_ns("2022-06-01T13:30:00.123456789Z") == T0 + 123_456_789
    assert rfc3339_ns("2022-06-01T13:30:00.5+00:00") == T0 + 500_000_000
    c, agg = Counters(), Aggregator("1Min")
    m, _ = split(decode(pack([bar(t=T0 + 1_000)]), c), agg, c)  # msgpack Timestamps keep microseconds
    assert m.t.tolist() == [T0 + 1_000]


def test_error_codes():
    assert explain(402, "auth failed")[0] == FATAL and "APCA_API_SECRET_KEY" in explain(402, "")[1]
    assert explain(406, "")[0] == FATAL and explain(409, "")[0] == FATAL and explain(405, "")[0] == FATAL
    assert explain(410, "")[0] == FATAL
    assert explain(401, "")[0] == RECONNECT and explain(500, "")[0] == RECONNECT
    assert explain(999, "weird")[0] == RECONNECT and "weird" in explain(999, "weird")[1]
    assert all(line.strip() and "\n" not in line for _, line in ERRORS.values())
