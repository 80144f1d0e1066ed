"""Bad config files give one line naming the key (and its line), never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent


def test_bundled_config_has_the_seed_names():
    s = load_config()
    assert list(s.indicators) == ["sma10", "sma50", "rsi14"]
    assert list(s.rules) == ["ma_cross", "rsi_bands", "support_break", "rsi_divergence", "ma_cross_pending"]
    assert s.rules["rsi_bands"].params["levels"] == [30, 50, 70]
    assert s.rules["ma_cross_pending"].params["within"] == 0.01


BAD = [
    ("[indicators.sma10]\ntype = \"sma\"\nperiod = 10\nwindow = 3\n", r"cfg.toml:4: indicators\.sma10\.window: unknown key"),
    ("[indicators.sma10]\ntype = \"sma\"\nperiod = \"ten\"\n", r"cfg.toml:3: indicators\.sma10\.period: expected int, got str"),
    ("[indicators.sma10]\ntype = \"sma\"\nperiod = 0\n", r"cfg.toml:3: indicators\.sma10\.period: must be >= 1"),
    ("[rules.x]\ntype = \"cross\"\na = \"sma10\"\nb = \"sma50\"\n", r"cfg.toml:3: rules\.x\.a: names no indicator"),
    ("[rules.x]\ntype = \"bands\"\nseries = \"close\"\nlevels = [70, 30]\n", r"rules\.x\.levels: must be strictly increasing"),
    ("[rules.x]\ntype = \"warp\"\n", r"cfg.toml:2: rules\.x\.type: unknown rule type 'warp'"),
    ("[rules.x]\ntype = \"channel\"\nperiod = 0\n", r"cfg.toml:3: rules\.x\.period: must be >= 1"),
    ("[rules.x]\ntype = \"cross\"\na = \"close\"\nb = 1\nconfirm = true\n", r"rules\.x\.confirm: expected int, got bool"),
    ("[engine]\ntimeframe = \"2Min\"\n", r"engine\.timeframe: must be one of"),
    ("[alpaca]\nkey = \"abc\"\n", r"cfg.toml:2: alpaca\.key: unknown key"),
    ("[nonsense]\n", r"nonsense: unknown section"),
    ("[indicators.a\n", r"cfg.toml: invalid TOML: .*line 1"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_config_is_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(text, "cfg.toml")
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.toml: cannot read config"):
        load_config("nope.toml")


def test_cli_reports_config_error_without_traceback(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[indicators.sma10]\ntype = \"sma\"\nperiod = -3\n")
    proc = subprocess.run([sys.executable, "-m", "stream.cli", "replay", "--config", str(cfg), "--no-table",
                           "--events", "-", "--speed", "max"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"barwatch: {cfg}:3: indicators.sma10.period: must be >= 1 for sma, got -3"]
