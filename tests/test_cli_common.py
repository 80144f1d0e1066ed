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


@pytest.mark.parametrize("own", [None, "dirty_decay_ms:5000"])
def test_polars_keeps_freed_pages_unless_told_otherwise(own: str | None) -> None:
    """`barwatch` sets polars' jemalloc to keep freed pages before polars is loaded (it reads the
    setting once, at load): importing the command does not load polars, and a value of the
    user's own is left as it is."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if own is not None:
        env["_RJEM_MALLOC_CONF"] = own
    code = ("import os, sys, stream.cli; before = 'polars' in sys.modules; "
            "from stream.cli_common import keep_freed_memory; keep_freed_memory(); "
            "print(before, os.environ['_RJEM_MALLOC_CONF'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", own or "dirty_decay_ms:-1,muzzy_decay_ms:-1"]


@pytest.mark.parametrize("own", [None, "3"])
def test_polars_gets_the_cores_stepping_and_encoding_leave(own: str | None) -> None:
    """`barwatch` sizes polars' thread pool before polars loads: the cores but two (at least one),
    or the user's own POLARS_MAX_THREADS; polars then runs that many threads."""
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    if own is not None:
        env["POLARS_MAX_THREADS"] = own
    code = ("import stream.cli; from stream.cli_common import size_thread_pools; size_thread_pools(); "
            "import polars; print(polars.thread_pool_size())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert int(out.stdout) == (int(own) if own else max(1, cores - 2))
