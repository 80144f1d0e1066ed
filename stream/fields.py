"""What each rule's `values` object holds: key, column of the kernel's value record, format.

One table read by both encoders: the Event path (`decode`, a dict per event) and the bulk
JSON-lines path (`stream.lines`), so the two cannot disagree on a key or a format.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from .config import RuleSpec
from .events import rfc3339

# formats: a float (null when NaN), a slope sign (int, null when NaN), an int, a zone name,
# a time (microseconds -> RFC 3339), 100x a fraction, "up"/"down", a constant from config
NUM, SIGN, INT, ZONE, TIME, PCT, DIRECTION, CONST = range(8)


@dataclass(frozen=True)
class Field:
    key: str
    col: int  # column of the value record (-1 for CONST)
    fmt: int
    names: tuple[str, ...] = ()  # ZONE: zone names by index
    const: Any = None  # CONST: the value


def value_fields(rule: RuleSpec, a: str | None, b: str | None) -> tuple[Field, ...]:
    """The fields of a rule's `values`, in key order. A key named twice (a cross of `close`)
    keeps its first place and its last column, as a dict display would."""
    if rule.type in ("cross", "level", "pending"):
        fs = [Field("close", 0, NUM), Field(a, 1, NUM), Field(b if b is not None else "level", 2, NUM),
              Field(f"{a}_slope", 3, SIGN)]
        if b is not None:
            fs.append(Field(f"{b}_slope", 4, SIGN))
        if rule.type == "pending":
            fs += [Field("trigger_price", 5, NUM), Field("distance_pct", 6, PCT),
                   Field("direction", 7, DIRECTION)]
    elif rule.type == "bands":
        zones = tuple(rule.params["zones"])
        fs = [Field("close", 0, NUM), Field(a, 1, NUM), Field(f"{a}_slope", 2, SIGN),
              Field("zone", 3, ZONE, zones), Field("from", 4, ZONE, zones), Field("to", 5, ZONE, zones),
              Field("bars_in_zone", 6, INT)]
    elif rule.type == "channel":
        fs = [Field("close", 0, NUM), Field("lowest_low", 1, NUM), Field("highest_high", 2, NUM),
              Field("period", -1, CONST, const=rule.params["period"])]
    else:  # divergence
        fs = [Field("close", 0, NUM), Field(b, 1, NUM), Field(f"{b}_slope", 2, SIGN),
              Field("pivot1_time", 3, TIME), Field("pivot1_price", 4, NUM), Field(f"pivot1_{b}", 5, NUM),
              Field("pivot2_time", 6, TIME), Field("pivot2_price", 7, NUM), Field(f"pivot2_{b}", 8, NUM)]
    order: dict[str, Field] = {}
    for f in fs:
        order[f.key] = f  # an existing key keeps its position, takes the later field
    return tuple(order.values())


_EXPR = {  # the Python expression of each format, over x (the record's column)
    NUM: "(None if {x} != {x} else {x})",
    SIGN: "(None if {x} != {x} else int({x}))",
    INT: "(None if {x} != {x} else int({x}))",
    ZONE: "{names}[int({x})]",
    TIME: "rfc3339(int({x}) * 1000)",
    PCT: "(None if {x} != {x} else 100.0 * {x})",
    DIRECTION: '("up" if {x} > 0 else "down")',
}


@functools.cache
def decoder(fields: tuple[Field, ...]):
    """A function turning one value record (a list of floats) into the `values` dict: one dict
    display, written for these fields (the Event path builds one per event); made once per
    layout (an engine asks for one per rule)."""
    env: dict[str, Any] = {"rfc3339": rfc3339}
    items = []
    for i, f in enumerate(fields):
        if f.fmt == CONST:
            env[f"c{i}"] = f.const
            value = f"c{i}"
        else:
            env[f"z{i}"] = f.names
            value = _EXPR[f.fmt].format(x=f"r[{f.col}]", names=f"z{i}")
        items.append(f"{f.key!r}: {value}")
    exec(f"def decode(r):\n    return {{{', '.join(items)}}}\n", env)  # keys as literals (repr)
    return env["decode"]


@functools.cache
def _alone(f: Field):
    return decoder((dataclasses.replace(f, col=0),))


def format_value(f: Field, x: float) -> Any:
    """One field's value as the `values` dict holds it (the decoder's own expression)."""
    return _alone(f)([x])[f.key]
