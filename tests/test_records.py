"""EventBlock: the engine's events as columns, equal to the Event objects in every view."""

from __future__ import annotations

import pytest

from stream.bars import BarBatch
from stream.engine import Engine
from stream.outputs.jsonl import encode_lines
from stream.records import EventBlock, Latest


@pytest.fixture(scope="module")
def blocks(daily):
    batch = BarBatch.from_polars(daily)
    engine = Engine()
    return [engine.step(batch.rows(i, i + 2500)) for i in range(0, len(batch), 2500)]


def test_block_views_agree(daily, blocks):
    reference = Engine().process(BarBatch.from_polars(daily))
    events = [e for b in blocks for e in b]
    assert events == reference
    assert sum(len(b) for b in blocks) == len(reference)
    seq = 0
    for b in blocks:
        assert isinstance(b, EventBlock) and b.seq0 == seq
        seq = b.last_seq
        if len(b):
            fresh = EventBlock(b.engine, b.seq0, b.rec, b.vals, b.late)  # nothing built yet
            assert fresh[-1] == b.events()[-1] and fresh[0] == b.events()[0]
            assert fresh[1:3] == b.events()[1:3]
            with pytest.raises(IndexError):
                fresh[len(b)]
        assert b.lines() == encode_lines(b.events())
        assert b.symbol_names() == [e.symbol for e in b] and b.rule_names() == [e.rule for e in b]


def test_latest_keeps_each_symbols_last_event(blocks):
    latest = Latest()
    seen = {}
    for b in blocks:
        latest.add(b)
        seen.update((e.symbol, e) for e in b)
        for sym, ev in seen.items():
            assert latest.get(sym) == ev
    assert latest.get("NOPE") is None
    assert Latest().get("AAPL") is None


def test_latest_takes_blocks_and_plain_lists_in_order(blocks):
    """A plain list after a block wins for its symbols, a block after a plain list for its own."""
    full = [b for b in blocks if len(b) > 1]
    first, second = full[0], full[1]
    plain = first.events()[:1]
    sym = plain[0].symbol
    latest = Latest()
    latest.add(second)
    latest.add(plain)  # newer than the block, though its event is older
    assert latest.get(sym) == plain[0]
    later = next(b for b in full[2:] if sym in b.symbol_names())
    latest.add(later)
    assert latest.get(sym) == [e for e in later if e.symbol == sym][-1]
