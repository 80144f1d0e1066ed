"""replay.clock: pacing by the bars' own spacing, measured with an injected clock (never wall time)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from replay.clock import Pacer, parse_speed, time_groups
from replay.store import Reader, default_data

MIN = 60 * 1_000_000_000
MINUTE_FILE = default_data().with_name("MSFT_1min_2022-05-18_2022-06-15.csv.gz")


class FakeTime:
    """A clock that moves only when slept on (or when the test says work took time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def pacer(self, speed: float | None, **kw) -> Pacer:
        return Pacer(speed, clock=self.clock, sleep=self.sleep, **kw)


def real_times(path=MINUTE_FILE) -> np.ndarray:
    return np.concatenate([b.t for b in Reader([path])])


def run(pacer: Pacer, times) -> None:
    async def go() -> None:
        for t in times:
            await pacer.wait(int(t))

    asyncio.run(go())


def test_max_never_sleeps() -> None:
    async def forbidden(_: float) -> None:
        raise AssertionError("max speed slept")

    p = Pacer(None, sleep=forbidden, clock=lambda: 0.0)
    run(p, real_times()[:500])
    assert p.slept == 0.0 and p.lag == 0.0


def test_speed_60_plays_a_minute_bar_per_second() -> None:
    ft = FakeTime()
    times = real_times()[:240]  # the first (partial) session: 1-minute bars, no gap over two minutes
    assert np.diff(times).max() <= 2 * MIN
    run(ft.pacer(60), times)
    assert len(ft.sleeps) == 239
    assert ft.sleeps == pytest.approx(list(np.diff(times) / 1e9 / 60))
    assert ft.now - 1000.0 == pytest.approx((times[-1] - times[0]) / 1e9 / 60)


def test_fractional_speed_and_equal_times() -> None:
    ft = FakeTime()
    t0 = real_times()[0]
    run(ft.pacer(0.5), [t0, t0, t0 + MIN // 60, t0 + MIN // 60, t0 + MIN // 30])
    assert ft.sleeps == pytest.approx([2.0, 2.0])  # one second of bars = two seconds at x0.5


def test_overnight_and_weekend_gaps_are_capped() -> None:
    ft = FakeTime()
    daily = [int(t) for t in np.unique(next(iter(Reader([default_data()], symbols=["IBM"]))).t)[:10]]
    run(ft.pacer(60, max_gap=2.0), daily)
    assert ft.sleeps == pytest.approx([2.0] * 9)  # a day at x60 would be 24 minutes
    ft2 = FakeTime()
    session_break = list(real_times()[235:245])  # the end of the first session and the next morning
    run(ft2.pacer(60, max_gap=2.0), session_break)
    assert max(ft2.sleeps) == 2.0 and min(ft2.sleeps) == pytest.approx(1.0)


def test_processing_time_is_absorbed_not_added() -> None:
    ft = FakeTime()
    p = ft.pacer(60)
    times = real_times()[:20]

    async def go() -> None:
        for t in times:
            await p.wait(int(t))
            ft.now += 0.25  # stepping the engine and drawing took a quarter second

    asyncio.run(go())
    assert ft.sleeps == pytest.approx([0.75] * 19)
    assert ft.now - 1000.0 == pytest.approx(19 * 1.0 + 0.25)


def test_far_behind_does_not_race_to_catch_up() -> None:
    ft = FakeTime()
    p = ft.pacer(60)
    times = real_times()[:10]
    run(p, times[:3])
    ft.now += 30.0  # the terminal was suspended
    assert p.lag == pytest.approx(30.0)
    run(p, times[3:])
    assert ft.sleeps[2:] == pytest.approx([1.0] * 6)  # after a reset, the normal pace again
    assert p.lag == 0.0


def test_real_asyncio_sleep_by_default() -> None:
    p = Pacer(1e6)  # a minute in 60 microseconds: real asyncio.sleep, no timing asserted
    run(p, real_times()[:5])
    assert p.slept > 0


def test_time_groups() -> None:
    t = np.array([5, 5, 7, 9, 9, 9], dtype=np.int64)
    assert time_groups(t) == [(5, 0, 2), (7, 2, 3), (9, 3, 6)]
    assert time_groups(np.array([], dtype=np.int64)) == []


def test_parse_speed() -> None:
    assert parse_speed("max") is None and parse_speed(" MAX ") is None
    assert parse_speed("60") == 60.0 and parse_speed("0.5") == 0.5 and parse_speed("60x") == 60.0
    for bad in ("fast", "0", "-2", "nan", "inf", ""):
        with pytest.raises(ValueError, match="bad speed") as e:
            parse_speed(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        Pacer(0.0)
