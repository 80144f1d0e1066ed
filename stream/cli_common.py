"""What the commands that run the engine share: the output flags and one-line errors."""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import sys


class Bad(Exception):
    """Bad input: one line for stderr, exit 2."""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


COMPILING = 3.0  # seconds of warm-up after which a terminal is told the kernels are compiling


async def warmed(warm: asyncio.Future) -> None:
    """Await the kernels' warm-up (`engine.warm_up` in a thread). Loading cached kernels takes a
    fraction of a second; compiling them, on a config's first run, up to a minute: when it is still at
    it after COMPILING seconds, a terminal is told why nothing shows yet."""
    try:
        await asyncio.wait_for(asyncio.shield(warm), COMPILING)
    except TimeoutError:
        if sys.stderr.isatty():
            say("barwatch: compiling the step kernels for this config (first run only: up to a minute)...")
        await warm


def add_output_options(p: argparse.ArgumentParser) -> None:
    """--events, --no-table, --serve, --serve-public: the same outputs for replay and live."""
    p.add_argument("--events", metavar="FILE|-", help="JSON lines to FILE (appended) or - for stdout")
    p.add_argument("--no-table", action="store_true", help="do not draw the live table")
    p.add_argument("--serve", metavar="HOST:PORT", help="websocket fan-out of the events")
    p.add_argument("--serve-public", action="store_true", help="allow --serve on a non-loopback address")


def settle() -> None:
    """Before the run loop: what was built at start-up (modules, compiled kernels, settings) is
    moved out of the collector's reach, so its full collections, which hold the GIL, scan only
    what the run itself allocates."""
    gc.freeze()


def size_thread_pools() -> None:
    """polars' threads, set before polars loads: a replay keeps one core stepping and one encoding,
    so polars gets the cores left (at least one) unless POLARS_MAX_THREADS says otherwise. With
    its default of a thread a core, on 2 cores five threads took turns on two: a 10M-bar replay
    switched 5x as often and peaked 60-80 MB higher (times: `bench/bench_replay.py`, README)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ.setdefault("POLARS_MAX_THREADS", str(max(1, cores - 2)))


def keep_freed_memory() -> None:
    """glibc malloc: a freed big buffer (a batch's lines or columns, megabytes each) goes back to
    the heap for the next batch instead of to the system, which would hand out fresh pages to be
    faulted in again (about 8 % of a replay's time). The peak is unchanged. polars' jemalloc
    likewise keeps the pages of a decoded row group for the next one (a 10M-bar replay: about a
    fifth fewer page faults, 0.1-0.25 s less system time), when set before polars is loaded and
    unless _RJEM_MALLOC_CONF says otherwise."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD: blocks under 256 MiB from the heap
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
    except (OSError, AttributeError):
        pass  # not glibc: its defaults
