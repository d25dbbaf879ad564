"""Keys (load_key) and profiles (Profile): configuration fails early and clearly."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cadp_med.deid import Option, Profile, load_key
from cadp_med.errors import ConfigError


def test_missing_key_raises_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CADP_MED_KEY", raising=False)
    with pytest.raises(ConfigError, match="no pseudonymization key: set CADP_MED_KEY"):
        load_key()


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CADP_MED_KEY", "s3cret")
    assert load_key() == b"s3cret"


def test_ephemeral_key_is_random_and_warns_without_the_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CADP_MED_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="cadp_med.deid._keys"):
        first = load_key(ephemeral=True)
    assert len(first) == 32 and first != load_key(ephemeral=True)
    assert "ephemeral" in caplog.text
    assert first.hex() not in caplog.text


def test_group_readable_key_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(b"file-key")
    key_file.chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="cadp_med.deid._keys"):
        assert load_key(key_file) == b"file-key"
    assert "readable by group or others" in caplog.text
    assert "file-key" not in caplog.text


def test_private_key_file_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key_file = tmp_path / "key.bin"
    key_file.write_bytes(b"file-key")
    key_file.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="cadp_med.deid._keys"):
        load_key(key_file)
    assert caplog.text == ""


def test_conflicting_longitudinal_options_name_both() -> None:
    with pytest.raises(ConfigError) as info:
        Profile.from_options(
            ["retain-longitudinal-full-dates", Option.RETAIN_LONGITUDINAL_MODIFIED_DATES]
        )
    assert "retain-longitudinal-full-dates" in str(info.value)
    assert "retain-longitudinal-modified-dates" in str(info.value)


def test_typo_suggests_the_option() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'retain-uids'"):
        Profile.from_options(["retain-uid"])


def test_profile_from_toml_and_yaml_agree(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text('options = ["retain-uids", "clean-descriptors"]\nkeep_overlays = true\n')
    yaml = tmp_path / "p.yaml"
    yaml.write_text("options: [retain-uids, clean-descriptors]\nkeep_overlays: true\n")
    expected = Profile(
        frozenset({Option.RETAIN_UIDS, Option.CLEAN_DESCRIPTORS}), keep_overlays=True
    )
    assert Profile.from_file(toml) == expected
    assert Profile.from_file(yaml) == expected


def test_profile_file_with_conflict_or_unknown_field_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'options = ["retain-longitudinal-full-dates", "retain-longitudinal-modified-dates"]\n'
    )
    with pytest.raises(ConfigError, match="conflict"):
        Profile.from_file(bad)
    odd = tmp_path / "odd.yaml"
    odd.write_text("optons: []\n")
    with pytest.raises(ConfigError, match="unknown fields"):
        Profile.from_file(odd)


def test_method_codes_and_longitudinal_value() -> None:
    profile = Profile.from_options(["retain-longitudinal-modified-dates", "retain-uids"])
    assert profile.method_codes() == [
        ("113100", "Basic Application Confidentiality Profile"),
        ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
        ("113110", "Retain UIDs Option"),
    ]
    assert profile.longitudinal_value() == "MODIFIED"
    assert Profile().longitudinal_value() == "REMOVED"
    assert Profile.from_options(["retain-longitudinal-full-dates"]).longitudinal_value() == (
        "UNMODIFIED"
    )
