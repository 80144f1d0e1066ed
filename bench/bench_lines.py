"""Bulk JSON lines: `stream.lines.LineEncoder` against the per-event path (an Event per record,
as the engine builds them, then msgspec `encode_lines`) on the same ~2M event records, in one
run. The records follow the bundled config's rules in the mix the real daily bars give: mostly
RSI band exit/enter pairs, then channel breaks, crosses, divergences and pending crosses.
Prints events/s for both, the ratio, and checks the two outputs are the same bytes.

    .venv/bin/python -m bench.bench_lines [--events 2000000] [--symbols 500] [--block 20000]

With --block, LineEncoder also encodes the records in blocks of that many (as `barwatch replay`
hands it a batch's events at a time): outputs of a few MB reuse freed memory, where one
block of them all pays the page faults of a fresh 650 MB buffer.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import polars as pl

from stream.config import load_config
from stream.events import SCHEMA_VERSION, STATES, Event, event_id, rfc3339
from stream.fields import decoder, value_fields
from stream.lines import LineEncoder
from stream.outputs.jsonl import encode_lines
from stream.program import compile_program
from stream.signals.common import BEARISH, BREAK_ABOVE, CROSS_UP, ENTER, EXIT, KINDS, PENDING

MINUTE_NS = 60 * 10**9
START = 1_714_570_200 * 10**9  # 2024-05-01T13:30:00Z
# events per rule type in the engine's output over the bundled daily bars (5843 events)
SHARE = {"bands": 0.716, "channel": 0.187, "cross": 0.050, "divergence": 0.028, "pending": 0.019}


def best(fn, repeat: int) -> tuple[float, object]:
    """Best wall time of `repeat` runs (the machine is shared and noisy) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def tickers(n: int, rng) -> list[str]:
    names: set[str] = set()
    while len(names) < n:
        size = int(rng.integers(1, 6))
        names.add("".join(chr(65 + int(c)) for c in rng.integers(0, 26, size)))
    return sorted(names)


def records(n: int, nsym: int, rules, fields, seed: int = 0) -> dict:
    """About n event records for the bundled rules, in bar order, with realistic values."""
    rng = np.random.default_rng(seed)
    types = [r.type for r in rules]
    # firings: a band change fires an exit and an enter, every other rule one event
    per = np.array([2 if t == "bands" else 1 for t in types])
    p = np.array([SHARE[t] for t in types]) / per
    p /= p.sum()
    firings = round(n / float((p * per).sum()))
    fire_rule = rng.choice(len(types), firings, p=p)
    copies = np.where(np.array(types)[fire_rule] == "bands", 2, 1)
    rule = np.repeat(fire_rule, copies)
    m = len(rule)
    first = np.concatenate(([True], np.diff(np.repeat(np.arange(firings), copies)) != 0))
    bar = np.repeat(np.sort(rng.integers(0, max(firings // 40, 1), firings)), copies)
    sym = np.repeat(rng.integers(0, nsym, firings), copies)
    t = START + bar * MINUTE_NS

    close = np.round(rng.lognormal(4.5, 0.8, m), 2)  # prices in cents
    ind = close * (1 + rng.normal(0, 0.01, m))  # an SMA: full precision
    rsi = rng.uniform(5, 95, m)
    slope = rng.choice([-1.0, 0.0, 1.0], m, p=[0.45, 0.1, 0.45])
    values = np.zeros((m, 10))
    kind = np.zeros(m, dtype=np.int64)
    for j, typ in enumerate(types):
        w = rule == j
        k = int(w.sum())
        v = np.zeros((k, 10))
        v[:, 0] = close[w]
        if typ in ("cross", "pending"):
            v[:, 1], v[:, 2] = ind[w], ind[w] * (1 + rng.normal(0, 0.002, k))
            v[:, 3], v[:, 4] = slope[w], -slope[w]
            kind[w] = CROSS_UP + rng.integers(0, 2, k) if typ == "cross" else PENDING
            if typ == "pending":
                v[:, 5] = v[:, 0] * (1 + rng.normal(0, 0.004, k))
                v[:, 6] = v[:, 5] / v[:, 0] - 1.0
                v[:, 7] = np.sign(v[:, 6])
        elif typ == "bands":
            old = rng.integers(0, 4, k)
            new = np.clip(old + rng.choice([-1, 1], k), 0, 3)
            exits = first[w]
            v[:, 1], v[:, 2] = rsi[w], slope[w]
            v[:, 3] = np.where(exits, old, new)
            v[:, 4], v[:, 5] = old, new
            v[:, 6] = rng.integers(1, 40, k)
            kind[w] = np.where(exits, EXIT, ENTER)
        elif typ == "channel":
            v[:, 1] = np.round(close[w] * 0.97, 2)
            v[:, 2] = np.round(close[w] * 1.03, 2)
            kind[w] = BREAK_ABOVE - rng.integers(0, 2, k)
        else:  # divergence: two pivots some bars back (microsecond times), their prices and RSI
            tus = t[w] // 1000
            v[:, 1], v[:, 2] = rsi[w], slope[w]
            v[:, 3] = tus - rng.integers(20, 60, k) * 60_000_000
            v[:, 4], v[:, 5] = close[w] * 1.02, rng.uniform(5, 95, k)
            v[:, 6] = tus - rng.integers(2, 10, k) * 60_000_000
            v[:, 7], v[:, 8] = close[w] * 1.03, rng.uniform(5, 95, k)
            kind[w] = BEARISH + rng.integers(0, 2, k)
        values[w] = v
    state = rng.choice(3, m, p=[0.94, 0.05, 0.01])
    late = rng.random(m) < 0.01
    return {"sym": sym, "t": t, "rule": rule, "kind": kind, "state": state, "late": late, "values": values}


def per_event(tf: str, names: list[str], fields, symbols: list[str], seq0: int, rec: dict) -> bytes:
    """The path of today: an Event per record as `Engine._records` builds it (gc off, as there),
    then msgspec's encode_lines."""
    decoders = [decoder(fs) for fs in fields]
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        rows = zip(rec["sym"].tolist(), rec["t"].tolist(), rec["rule"].tolist(), rec["kind"].tolist(),
                   rec["state"].tolist(), rec["late"].tolist(), rec["values"].tolist(), strict=True)
        stamps: dict[int, str] = {}
        out = []
        seq = seq0
        for s, t, j, k, st, late, f in rows:
            time_ = stamps.get(t)
            if time_ is None:
                time_ = stamps[t] = rfc3339(t)
            symbol, rule, kind = symbols[s], names[j], KINDS[k]
            seq += 1
            out.append(Event(SCHEMA_VERSION, seq, event_id(symbol, time_, rule, kind), symbol, time_, tf,
                             rule, kind, STATES[st], decoders[j](f), late))
        return encode_lines(out)
    finally:
        if gc_was_on:
            gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block", type=int, default=20_000, help="records a block for the blocked run (0: none)")
    args = ap.parse_args()

    settings = load_config()
    program = compile_program(settings)
    fields = [value_fields(r, *program.rule_inputs[j]) for j, r in enumerate(program.rules)]
    names = [r.name for r in program.rules]
    tf = "1Min"
    symbols = tickers(args.symbols, np.random.default_rng(1))
    rec = records(args.events, len(symbols), program.rules, fields)
    n = len(rec["sym"])
    mix = {names[j]: f"{c / n:.1%}" for j, c in enumerate(np.bincount(rec["rule"], minlength=len(names)))}
    print(f"{n:,} events, {len(symbols)} symbols, polars threads: {pl.thread_pool_size()}")
    print("mix: " + ", ".join(f"{k} {v}" for k, v in mix.items()))

    enc = LineEncoder(tf, names, fields)
    enc.encode(symbols, 0, **{k: v[:1000] for k, v in rec.items()})  # warm up
    t_bulk, bulk = best(lambda: enc.encode(symbols, 0, **rec), args.repeat)
    if args.block:
        def blocks(check: bool = False) -> bool:  # each block dropped once made, as replay writes it
            at, same = 0, True
            for lo in range(0, n, args.block):
                part = enc.encode(symbols, lo, **{k: v[lo : lo + args.block] for k, v in rec.items()})
                if check:
                    same = same and memoryview(bulk)[at : at + len(part)] == part
                at += len(part)
            return same and at == len(bulk)

        t_blocks, _ = best(blocks, args.repeat)
        same_blocks = blocks(check=True)
    t_ref, ref = best(lambda: per_event(tf, names, fields, symbols, 0, rec), max(args.repeat - 1, 1))
    same = bulk == ref
    print(f"bytes: {len(bulk):,} ({len(bulk) / n:.0f} per line), identical: {same}")
    mbs = len(bulk) / t_bulk / 1e6
    print(f"LineEncoder        {n / t_bulk:>12,.0f} events/s  ({t_bulk:.2f} s, {mbs:.0f} MB/s)")
    if args.block:
        print(f"  in blocks of {args.block:,} {n / t_blocks:>9,.0f} events/s  ({t_blocks:.2f} s), "
              f"identical: {same_blocks}")
    print(f"Event + msgspec    {n / t_ref:>12,.0f} events/s  ({t_ref:.2f} s)")
    print(f"ratio              {t_ref / t_bulk:>12.1f}x")
    if not same or (args.block and not same_blocks):
        raise SystemExit("the outputs differ")


if __name__ == "__main__":
    main()
