"""The `barwatch` command: replay (the default), live, fetch, chart."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="barwatch", description=__doc__)
    sub = p.add_subparsers(dest="command")
    # each command module adds its own subparser: add_parser(sub) -> sets func=main(args)
    from . import cli_replay

    cli_replay.add_parser(sub)
    from . import cli_chart

    cli_chart.add_parser(sub)
    from . import cli_live

    cli_live.add_parser(sub)
    from . import cli_fetch

    cli_fetch.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .cli_common import keep_freed_memory, size_thread_pools

    keep_freed_memory()
    size_thread_pools()
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["replay", *argv]  # `barwatch` alone replays the bundled data with the table
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
