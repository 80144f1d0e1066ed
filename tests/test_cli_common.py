"""The commands' shared start-up: a terminal is told when the kernels are being compiled."""

from __future__ import annotations

import asyncio
import io
import sys
import time

import pytest

from stream import cli_common


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("tty", "seconds", "told"), [(True, 0.5, True), (True, 0.0, False), (False, 0.5, False)])
def test_a_terminal_is_told_when_the_warm_up_takes_long(monkeypatch, tty: bool, seconds: float,
                                                         told: bool) -> None:  # fmt: skip
    """A warm-up still running after COMPILING seconds is compiling: said once on a terminal's
    stderr (nothing in a pipe or a log, nothing when the kernels load from the cache)."""
    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(cli_common, "COMPILING", 0.1)

    async def main() -> None:
        await cli_common.warmed(asyncio.get_running_loop().run_in_executor(None, time.sleep, seconds))

    asyncio.run(main())
    assert err.getvalue().count("compiling the step kernels") == (1 if told else 0)


def test_a_failed_warm_up_raises_its_error() -> None:
    async def main() -> None:
        def fail() -> None:
            raise RuntimeError("no kernel")

        await cli_common.warmed(asyncio.get_running_loop().run_in_executor(None, fail))

    with pytest.raises(RuntimeError, match="no kernel"):
        asyncio.run(main())
