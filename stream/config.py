"""config.toml -> typed, validated settings; every mistake is one line naming the key."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "config.toml"

INDICATOR_TYPES = ("sma", "ema", "rsi", "max", "min")
SOURCES = ("open", "high", "low", "close", "volume")
TIMEFRAMES = ("1Min", "5Min", "15Min", "1Hour", "1Day")
FEEDS = ("iex", "sip", "delayed_sip", "test", "crypto")
ADJUSTMENTS = ("raw", "split", "dividend", "all")  # Alpaca's corporate-action adjustments (REST bars)

# rule type -> {key: (python type(s), required, default)}
_NUM = (int, float)
RULE_KEYS: dict[str, dict[str, tuple[Any, bool, Any]]] = {
    "cross": {
        "a": ((str,), True, None),
        "b": ((str, int, float), True, None),
        "min_gap": (_NUM, False, 0.0),
        "confirm": ((int,), False, 1),
    },
    "level": {
        "series": ((str,), True, None),
        "level": (_NUM, True, None),
        "min_gap": (_NUM, False, 0.0),
        "confirm": ((int,), False, 1),
    },
    "bands": {
        "series": ((str,), True, None),
        "levels": ((list,), True, None),
        "zones": ((list,), False, None),
    },
    "channel": {
        "period": ((int,), True, None),
        "low": ((str,), False, "low"),
        "high": ((str,), False, "high"),
    },
    "divergence": {
        "price": ((str,), False, "close"),
        "oscillator": ((str,), True, None),
        "pivots": ((int,), False, 5),
        "lookback": ((int,), False, 60),
    },
    "pending": {
        "a": ((str,), True, None),
        "b": ((str, int, float), True, None),
        "within": (_NUM, False, 0.01),
    },
}
COMMON_RULE_KEYS = {"type", "symbols"}
BAND_ZONES = {
    (30, 50, 70): ["oversold", "lower_half", "upper_half", "overbought"],
    (30, 70): ["oversold", "neutral", "overbought"],
}


class ConfigError(Exception):
    """A config mistake, already phrased as one line for the user."""


@dataclass(frozen=True)
class IndicatorSpec:
    name: str
    type: str
    period: int
    source: str = "close"
    hidden: bool = False  # made by a rule (a channel's lowest low), not listed in config


@dataclass(frozen=True)
class RuleSpec:
    name: str
    type: str
    params: dict
    symbols: tuple[str, ...] = ()  # empty: every symbol


@dataclass(frozen=True)
class AlpacaSettings:
    feed: str = "iex"
    stream_url: str | None = None  # None: Alpaca's own for the feed
    data_url: str | None = None
    stall_seconds: float = 30.0
    symbols: tuple[str, ...] = ()  # `barwatch live` watches these when --symbols is not given
    cache_dir: str | None = None  # Parquet files (`barwatch fetch` output) used for warm start
    backoff_seconds: float = 1.0  # first reconnect delay; doubles up to 30 s


@dataclass(frozen=True)
class ServeSettings:
    queue: int = 1000  # events a fan-out client may fall behind before it is cut off
    history: int = 10000  # events kept for ?since=N


@dataclass(frozen=True)
class Settings:
    timeframe: str = "1Day"
    indicators: dict[str, IndicatorSpec] = field(default_factory=dict)
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    alpaca: AlpacaSettings = AlpacaSettings()
    serve: ServeSettings = ServeSettings()
    path: str = "<defaults>"


class _Where:
    """Finds the line of a key in the TOML text, for error messages."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def __call__(self, section: str, key: str | None = None) -> str:
        head = re.compile(r"^\s*\[\s*" + re.escape(section).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
        start = None
        for i, line in enumerate(self.lines):
            if start is None and head.match(line):
                start = i
                if key is None:
                    return f"{self.path}:{i + 1}"
            elif start is not None and key is not None:
                if re.match(r"^\s*\[", line):
                    break
                if re.match(r"^\s*" + re.escape(key) + r"\s*=", line):
                    return f"{self.path}:{i + 1}"
        return self.path


def _symbols(fail, v: list) -> list[str]:
    """[alpaca] symbols: a list of non-empty strings."""
    if not all(isinstance(x, str) and x.strip() for x in v):
        raise fail("alpaca", "symbols", "must be a list of symbol strings")
    return [x.strip() for x in v]


def _positive(fail, key: str, v: float) -> float:
    if v <= 0:
        raise fail("alpaca", key, f"must be > 0, got {v}")
    return v


def load_config(path: str | Path | None = None) -> Settings:
    """Read and validate a config file (the bundled config.toml by default)."""
    p = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config: {e.strerror or e}") from None
    return parse_config(text, str(p))


def parse_config(text: str, path: str = "<config>") -> Settings:
    """Validate TOML text into Settings; raise ConfigError with one line on any mistake."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    where = _Where(path, text)

    def fail(section: str, key: str | None, msg: str) -> ConfigError:
        name = f"{section}.{key}" if key else section
        return ConfigError(f"{where(section, key)}: {name}: {msg}")

    def check_keys(section: str, table: dict, allowed: set[str]) -> None:
        for k in table:
            if k not in allowed:
                raise fail(section, k, f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def typed(section: str, table: dict, key: str, types: tuple, default: Any, required: bool):
        if key not in table:
            if required:
                raise fail(section, None, f"missing required key '{key}'")
            return default
        v = table[key]
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            raise fail(section, key, f"expected {want}, got {type(v).__name__} {v!r}")
        return v

    top_allowed = {"engine", "indicators", "rules", "alpaca", "serve"}
    for k in doc:
        if k not in top_allowed:
            raise fail(k, None, f"unknown section (expected one of: {', '.join(sorted(top_allowed))})")
        if not isinstance(doc[k], dict):
            raise fail(k, None, "must be a table")

    eng = doc.get("engine", {})
    check_keys("engine", eng, {"timeframe"})
    timeframe = typed("engine", eng, "timeframe", (str,), "1Day", False)
    if timeframe not in TIMEFRAMES:
        raise fail("engine", "timeframe", f"must be one of {', '.join(TIMEFRAMES)}, got {timeframe!r}")

    indicators: dict[str, IndicatorSpec] = {}
    for name, t in doc.get("indicators", {}).items():
        sec = f"indicators.{name}"
        if not isinstance(t, dict):
            raise fail("indicators", name, "must be a table")
        check_keys(sec, t, {"type", "period", "source"})
        kind = typed(sec, t, "type", (str,), None, True)
        if kind not in INDICATOR_TYPES:
            raise fail(sec, "type", f"unknown indicator type {kind!r} (one of {', '.join(INDICATOR_TYPES)})")
        period = typed(sec, t, "period", (int,), None, True)
        least = 1 if kind in ("sma", "ema") else 2  # TA-Lib's own lower bounds
        if period < least:
            raise fail(sec, "period", f"must be >= {least} for {kind}, got {period}")
        source = typed(sec, t, "source", (str,), "close", False)
        if source not in SOURCES:
            raise fail(sec, "source", f"must be one of {', '.join(SOURCES)}, got {source!r}")
        indicators[name] = IndicatorSpec(name, kind, period, source)

    def series(sec: str, key: str, v: Any) -> None:
        if isinstance(v, str) and v not in indicators and v not in SOURCES:
            raise fail(sec, key, f"names no indicator or bar field: {v!r}")

    rules: dict[str, RuleSpec] = {}
    for name, t in doc.get("rules", {}).items():
        sec = f"rules.{name}"
        if not isinstance(t, dict):
            raise fail("rules", name, "must be a table")
        kind = typed(sec, t, "type", (str,), None, True)
        if kind not in RULE_KEYS:
            raise fail(sec, "type", f"unknown rule type {kind!r} (one of {', '.join(RULE_KEYS)})")
        spec = RULE_KEYS[kind]
        check_keys(sec, t, set(spec) | COMMON_RULE_KEYS)
        params = {k: typed(sec, t, k, ty, d, req) for k, (ty, req, d) in spec.items()}
        symbols = typed(sec, t, "symbols", (list,), [], False)
        if not all(isinstance(s, str) for s in symbols):
            raise fail(sec, "symbols", "must be a list of strings")
        for key in ("a", "b", "series", "oscillator", "price", "low", "high"):
            if key in params and params[key] is not None:
                series(sec, key, params[key])
        for key in ("confirm", "period", "pivots", "lookback"):
            if key in params and params[key] < 1:
                raise fail(sec, key, f"must be >= 1, got {params[key]}")
        if kind == "channel" and params["period"] < 2:
            raise fail(sec, "period", f"must be >= 2, got {params['period']}")
        for key in ("min_gap", "within"):
            if key in params and params[key] < 0:
                raise fail(sec, key, f"must be >= 0, got {params[key]}")
        if kind == "bands":
            lv = params["levels"]
            if not lv or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in lv):
                raise fail(sec, "levels", "must be a non-empty list of numbers")
            if list(lv) != sorted(set(lv)):
                raise fail(sec, "levels", f"must be strictly increasing, got {lv}")
            if len(lv) > 7:
                raise fail(sec, "levels", "at most 7 levels")
            zones = params["zones"]
            if zones is None:
                zones = BAND_ZONES.get(tuple(lv)) or [f"zone{i}" for i in range(len(lv) + 1)]
            if len(zones) != len(lv) + 1 or not all(isinstance(z, str) for z in zones):
                raise fail(sec, "zones", f"must be {len(lv) + 1} names (one more than levels)")
            params["zones"] = list(zones)
            params["levels"] = [float(x) for x in lv]
        if kind in ("pending",):
            for key in ("a", "b"):
                v = params[key]
                if isinstance(v, str) and v in indicators and indicators[v].type in ("max", "min"):
                    raise fail(sec, key, "pending crosses are solved for sma, ema, rsi and close only")
                if isinstance(v, str) and v in SOURCES and v != "close":
                    raise fail(sec, key, "pending crosses are solved for the close only")
                if isinstance(v, str) and v in indicators and indicators[v].source != "close":
                    raise fail(sec, key, "pending crosses need indicators of the close")
            a, b = params["a"], params["b"]
            rsi_a = isinstance(a, str) and a in indicators and indicators[a].type == "rsi"
            rsi_b = isinstance(b, str) and b in indicators and indicators[b].type == "rsi"
            if (rsi_a or rsi_b) and not (rsi_a and isinstance(b, (int, float))):
                raise fail(sec, "b", "an RSI pending cross needs a = the RSI and b = a level")
        if kind == "divergence":
            osc = params["oscillator"]
            if osc not in indicators:
                raise fail(sec, "oscillator", f"names no indicator: {osc!r}")
        rules[name] = RuleSpec(name, kind, params, tuple(symbols))

    al = doc.get("alpaca", {})
    check_keys("alpaca", al, {"feed", "stream_url", "data_url", "stall_seconds", "symbols", "cache_dir",
                              "backoff_seconds"})
    feed = typed("alpaca", al, "feed", (str,), "iex", False)
    if feed not in FEEDS:
        raise fail("alpaca", "feed", f"must be one of {', '.join(FEEDS)}, got {feed!r}")
    stall = typed("alpaca", al, "stall_seconds", _NUM, 30.0, False)
    if stall <= 0:
        raise fail("alpaca", "stall_seconds", f"must be > 0, got {stall}")
    alpaca = AlpacaSettings(
        feed=feed,
        stream_url=typed("alpaca", al, "stream_url", (str,), None, False),
        data_url=typed("alpaca", al, "data_url", (str,), None, False),
        stall_seconds=float(stall),
        symbols=tuple(_symbols(fail, typed("alpaca", al, "symbols", (list,), [], False))),
        cache_dir=typed("alpaca", al, "cache_dir", (str,), None, False),
        backoff_seconds=float(_positive(fail, "backoff_seconds",
                                        typed("alpaca", al, "backoff_seconds", _NUM, 1.0, False))),
    )
    sv = doc.get("serve", {})
    check_keys("serve", sv, {"queue", "history"})
    serve = ServeSettings(
        queue=typed("serve", sv, "queue", (int,), 1000, False),
        history=typed("serve", sv, "history", (int,), 10000, False),
    )
    for key in ("queue", "history"):
        if getattr(serve, key) < 1:
            raise fail("serve", key, f"must be >= 1, got {getattr(serve, key)}")
    return Settings(timeframe, indicators, rules, alpaca, serve, path)
