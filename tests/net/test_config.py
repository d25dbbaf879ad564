"""Validation of ``node.toml`` (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadp_med.errors import ConfigError
from cadp_med.net import Node, load_config
from cadp_med.net.config import RetryConfig, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "pipelines" / "node.example.toml"

MINIMAL = {
    "ae_title": "CADP",
    "port": 11112,
    "spool": "s",
    "staging": "t",
    "quarantine": "q",
    "dead_letter": "d",
    "destinations": [{"type": "folder", "path": "out"}],
}


def test_example_config_parses() -> None:
    config = load_config(EXAMPLE)
    assert config.ae_title == "CADPMED"
    assert [d.type for d in config.destinations] == ["cstore", "folder", "stow"]
    assert config.allow[0].ae_title == "HOSPITALPACS"
    assert config.retry == RetryConfig(attempts=5, backoff_seconds=1.0, max_backoff=60.0)
    assert config.http_port == 8089


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = parse_config(dict(MINIMAL), tmp_path)
    assert config.host == "127.0.0.1"
    assert config.spool == tmp_path / "s"
    assert config.destinations[0].name == "folder-0"
    assert config.destinations[0].path == tmp_path / "out"
    assert config.pixels == "keep"
    assert config.allow == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": 70000}, "'port' must be in 1..65535"),
        ({"port": True}, "not a boolean"),
        ({"ae_title": "A" * 17}, "1 to 16 characters"),
        ({"pixels": "fuzz"}, "pixels must be one of keep, privatize, blank"),
        ({"idle_seconds": 0}, "idle_seconds must be > 0"),
        ({"batch_instances": -1}, "batch_instances must be >= 0"),
        ({"batch_instances": 1.5}, "'batch_instances' has the wrong type"),
        ({"destinations": []}, "at least one [[destinations]]"),
        ({"destinations": [{"type": "ftp"}]}, "type must be one of cstore, folder, stow"),
        ({"destinations": [{"type": "stow", "url": "ftp://x"}]}, "url must start with"),
        ({"destinations": [{"type": "cstore", "host": "h", "port": 1}]}, "'ae_title' is required"),
        ({"retry": {"attempts": 0}}, "attempts must be >= 1"),
        ({"allow": [{"ae_title": "X"}]}, "allow[0]: 'host' is required"),
    ],
)
def test_invalid_options_are_named(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        parse_config({**MINIMAL, **change}, tmp_path)
    assert message in str(info.value)


def test_missing_required_option(tmp_path: Path) -> None:
    data = dict(MINIMAL)
    del data["spool"]
    with pytest.raises(ConfigError, match="'spool' is required"):
        parse_config(data, tmp_path)


def test_retry_backoff_is_exponential_and_capped() -> None:
    retry = RetryConfig(attempts=6, backoff_seconds=0.5, max_backoff=3.0)
    assert [retry.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_bad_profile_option_fails_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADP_MED_KEY", "k" * 32)
    config = parse_config({**MINIMAL, "profile": {"options": ["no-such-option"]}}, tmp_path)
    with pytest.raises(ConfigError):
        Node(config).start()
