"""Replay pacing: as fast as possible ("max"), or X times the bars' own spacing.

At speed X, the wall time between two successive bar times is (bar time delta) / X, so
`--speed 60` plays a minute of bars per second and `--speed 1` is real time. Gaps longer
than `max_gap` seconds of wall time (nights, weekends, the day between daily bars) are cut
to `max_gap` so that daily replays stay watchable. Waits are scheduled against a running
due time, so time spent processing bars is absorbed instead of adding up as drift.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

import numpy as np


def parse_speed(text: str) -> float | None:
    """`--speed`: "max" -> None (no waiting); "60", "0.5", "60x" -> the factor; else ValueError."""
    s = str(text).strip().lower()
    if s == "max":
        return None
    num = s[:-1] if s.endswith("x") else s
    try:
        value = float(num)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"bad speed {text!r}: expected 'max' or a positive number such as 60 (a minute a second)"
        )
    return value


class Pacer:
    """Sleeps between bar times so a replay runs at `speed` x real time (None: never sleeps).

    `clock` (seconds, monotonic) and `sleep` (an async function of seconds) default to the
    real ones; tests pass their own.
    """

    def __init__(
        self,
        speed: float | None,
        *,
        max_gap: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number or None (max), not {speed!r}")
        self.speed = speed
        self.max_gap = max_gap
        self.clock = clock
        self.sleep = sleep
        self.last_t: int | None = None  # bar time of the previous wait
        self.due: float | None = None  # wall time at which last_t was due
        self.slept = 0.0  # total seconds asked of sleep (for the footer and tests)

    def delay(self, t_ns: int) -> float:
        """Wall seconds between the previous bar time and t_ns at this speed, gaps capped."""
        if self.speed is None or self.last_t is None or t_ns <= self.last_t:
            return 0.0
        return min((t_ns - self.last_t) / 1e9 / self.speed, self.max_gap)

    async def wait(self, t_ns: int) -> None:
        """Sleep until bar time t_ns is due; the first call only starts the clock."""
        if self.speed is None:
            return
        t_ns = int(t_ns)
        now = self.clock()
        if self.last_t is None or self.due is None:
            self.last_t, self.due = t_ns, now
            return
        step = self.delay(t_ns)
        if t_ns > self.last_t:
            self.last_t = t_ns
        due = self.due + step
        if now - due > self.max_gap:  # far behind (a stall, a suspended terminal): don't race to catch up
            due = now
        self.due = due
        if due > now:
            self.slept += due - now
            await self.sleep(due - now)

    @property
    def lag(self) -> float:
        """Seconds the replay is behind its schedule (0 when on time or at max speed)."""
        if self.speed is None or self.due is None:
            return 0.0
        return max(0.0, self.clock() - self.due)


def time_groups(t: np.ndarray) -> list[tuple[int, int, int]]:
    """(bar time, start, stop) for each run of equal times in a time-sorted batch: one wait each."""
    n = len(t)
    if not n:
        return []
    cuts = np.flatnonzero(t[1:] != t[:-1]) + 1
    starts = np.r_[0, cuts]
    stops = np.r_[cuts, n]
    return [(int(t[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
