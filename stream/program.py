"""Settings -> the arrays the step kernel runs: indicator and rule programs, the state row
layout, and a template row that a new symbol starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import IndicatorSpec, RuleSpec, Settings
from .indicators import ema, extremes, rsi, sma
from .indicators.block import PREV, VALUE
from .signals import bands, channel, cross, divergence, pending
from .signals.common import (
    F_ACONST,
    F_BCONST,
    F_GAP,
    F_LEVELS,
    F_WIDTH,
    F_WITHIN,
    IND_EMA,
    IND_MAX,
    IND_MIN,
    IND_RSI,
    IND_SMA,
    R_AIDX,
    R_ATYPE,
    R_BIDX,
    R_BTYPE,
    R_CONFIRM,
    R_LOOKBACK,
    R_NLEVELS,
    R_OFF,
    R_PIVOTS,
    R_TYPE,
    R_WIDTH,
    RULE_BANDS,
    RULE_CHANNEL,
    RULE_CROSS,
    RULE_DIVERGENCE,
    RULE_LEVEL,
    RULE_PENDING,
    SER_BAR,
    SER_CONST,
    SER_IND,
    SOURCE_CODE,
    SYMBOL_SIZE,
)

_IND = {  # type -> (code, module)
    "sma": (IND_SMA, sma),
    "ema": (IND_EMA, ema),
    "rsi": (IND_RSI, rsi),
    "max": (IND_MAX, extremes),
    "min": (IND_MIN, extremes),
}
_RULE = {  # type -> (code, block size(params))
    "cross": (RULE_CROSS, lambda p: cross.SIZE),
    "level": (RULE_LEVEL, lambda p: cross.SIZE),
    "bands": (RULE_BANDS, lambda p: bands.SIZE),
    "channel": (RULE_CHANNEL, lambda p: channel.SIZE),
    "divergence": (RULE_DIVERGENCE, lambda p: divergence.size(p["pivots"])),
    "pending": (RULE_PENDING, lambda p: pending.SIZE),
}


@dataclass
class Program:
    """Compiled config: what the kernel reads, plus the names Python needs to read events."""

    indicators: list[IndicatorSpec]  # config's, then hidden ones made by rules
    rules: list[RuleSpec]
    IP: np.ndarray  # int64 [indicators, 4]: kind, period, source, offset
    RP: np.ndarray  # int64 [rules, R_WIDTH]
    RF: np.ndarray  # float64 [rules, F_WIDTH]
    sb: int  # offset of the symbol block
    width: int  # floats per state row
    template: np.ndarray  # the row a new symbol starts from
    max_events: int  # most event records one bar can produce (retractions included)
    rule_inputs: list[tuple[str | None, str | None]]  # names of each rule's series a, b


def compile_program(settings: Settings) -> Program:
    inds = list(settings.indicators.values())
    rules = list(settings.rules.values())
    for rule in rules:  # a channel reads a rolling lowest low and highest high
        if rule.type == "channel":
            n = rule.params["period"]
            for typ, src in (("min", rule.params["low"]), ("max", rule.params["high"])):
                name = f"{rule.name}.{'lowest' if typ == 'min' else 'highest'}"
                inds.append(IndicatorSpec(name, typ, n, src, hidden=True))
    index = {spec.name: i for i, spec in enumerate(inds)}

    sb = 0  # the symbol block first, then each indicator's block, then each rule's
    off = sb + SYMBOL_SIZE

    IP = np.zeros((len(inds), 4), dtype=np.int64)
    for i, s in enumerate(inds):
        code, mod = _IND[s.type]
        IP[i] = (code, s.period, SOURCE_CODE[s.source], off)
        off += mod.size(s.period)

    def ref(v) -> tuple[int, int, float]:
        if isinstance(v, (int, float)):
            return SER_CONST, 0, float(v)
        if v in index:
            return SER_IND, index[v], 0.0
        return SER_BAR, SOURCE_CODE[v], 0.0

    RP = np.zeros((len(rules), R_WIDTH), dtype=np.int64)
    RF = np.zeros((len(rules), F_WIDTH), dtype=np.float64)
    inputs: list[tuple[str | None, str | None]] = []
    for j, rule in enumerate(rules):
        p = rule.params
        code, size = _RULE[rule.type]
        RP[j, R_TYPE] = code
        RP[j, R_OFF] = off
        off += size(p)
        a = b = None
        if rule.type in ("cross", "pending"):
            a, b = p["a"], p["b"]
        elif rule.type == "level":
            a, b = p["series"], p["level"]
        elif rule.type == "bands":
            a = p["series"]
        elif rule.type == "channel":
            a, b = f"{rule.name}.lowest", f"{rule.name}.highest"
        elif rule.type == "divergence":
            a, b = p["price"], p["oscillator"]
        if a is not None:
            RP[j, R_ATYPE], RP[j, R_AIDX], RF[j, F_ACONST] = ref(a)
        if b is not None:
            RP[j, R_BTYPE], RP[j, R_BIDX], RF[j, F_BCONST] = ref(b)
        RP[j, R_CONFIRM] = p.get("confirm", 1)
        RP[j, R_PIVOTS] = p.get("pivots", 0)
        RP[j, R_LOOKBACK] = p.get("lookback", 0)
        RF[j, F_GAP] = p.get("min_gap", 0.0)
        RF[j, F_WITHIN] = p.get("within", 0.0)
        if rule.type == "bands":
            RP[j, R_NLEVELS] = len(p["levels"])
            RF[j, F_LEVELS : F_LEVELS + len(p["levels"])] = p["levels"]
        inputs.append((a if isinstance(a, str) else None, b if isinstance(b, str) else None))

    template = np.zeros(off, dtype=np.float64)
    template[sb : sb + SYMBOL_SIZE] = np.nan
    template[sb + 6] = 0.0  # NBARS
    for i in range(len(inds)):
        template[IP[i, 3] + VALUE] = np.nan
        template[IP[i, 3] + PREV] = np.nan
    for j, rule in enumerate(rules):
        o = RP[j, R_OFF]
        if rule.type == "bands":
            template[o + bands.ZONE] = -1.0
        if rule.type == "divergence":
            template[o + divergence.HI + divergence.IDX] = np.nan
            template[o + divergence.LO + divergence.IDX] = np.nan
    # per bar: at most 2 events per rule, and retractions of a revised and an abandoned bar
    max_events = 6 * len(rules) + 4
    return Program(inds, rules, IP, RP, RF, sb, off, template, max_events, inputs)
