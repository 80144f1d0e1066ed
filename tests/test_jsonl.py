"""JSON-lines output: the encoding of a batch, the writer (flush per batch, append), closed pipes."""

from __future__ import annotations

import io
import os

import pytest

from stream.bars import BarBatch
from stream.engine import Engine
from stream.events import Event, decode, encode
from stream.outputs.jsonl import JsonLines, OutputClosed, encode_lines, split_lines


@pytest.fixture(scope="module")
def events(daily) -> list[Event]:
    """The engine's events over the bundled real daily bars."""
    return Engine().process(BarBatch.from_polars(daily))


def test_batch_encoding_is_the_per_event_encoding(events):
    assert len(events) > 1000
    assert encode_lines(events) == b"".join(encode(e) for e in events)
    assert encode_lines([]) == b""


def test_split_lines_gives_each_event_line_even_with_awkward_strings(events):
    odd = Event(1, 1, "A\nB|t|r|k", "A\nB", "2020-01-01T00:00:00Z", "1Day", "r\u2028", "enter", "confirmed",
                {"close": 1.0, "note": "line\nbreak\r\u2029"})
    batch = [*events[:50], odd, *events[50:100]]
    lines = split_lines(encode_lines(batch))
    assert lines == [encode(e)[:-1] for e in batch]
    assert decode(lines[50]).symbol == "A\nB"


def test_writer_writes_every_line_and_flushes_each_batch(events):
    class Stream(io.BytesIO):
        flushes = 0

        def flush(self):
            Stream.flushes += 1
            super().flush()

    s = Stream()
    w = JsonLines(s)
    for i in range(0, len(events), 1000):
        part = events[i:i + 1000]
        w.write(part, encode_lines(part))
        w.flush()
        assert s.getvalue().count(b"\n") == min(i + 1000, len(events))  # whole batches, nothing held back
    assert Stream.flushes == -(-len(events) // 1000)
    assert w.lines == len(events)
    assert [decode(x) for x in s.getvalue().splitlines()] == events


def test_file_is_appended_not_truncated(events, tmp_path):
    path = tmp_path / "events.jsonl"
    for part in (events[:10], events[10:25]):
        w = JsonLines.append(path)
        w.write(part, encode_lines(part))
        w.close()
    assert path.read_bytes() == encode_lines(events[:25])


def test_closed_pipe_is_output_closed_not_an_oserror(events):
    r, wfd = os.pipe()
    os.close(r)
    w = JsonLines(open(wfd, "wb"), "pipe", owns=True)
    with pytest.raises(OutputClosed):
        w.write(events, encode_lines(events))  # larger than a pipe buffer: the write itself fails
        w.flush()
    w.close()  # quiet after that
