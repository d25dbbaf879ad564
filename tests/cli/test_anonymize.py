from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadp_med.cli import app
from tests.test_pipeline import make_malformed

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_anonymize_json_summary(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("multi_series")
    result = run("anonymize", study, "-o", tmp_path / "out", "--pixels", "keep", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["written"] == 24 and summary["quarantined"] == 0
    assert summary["patients"] == 1 and summary["exit_code"] == 0
    assert Path(summary["audit_log"]).is_file()


def test_plain_summary_and_progress(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("ct_small")
    result = run("anonymize", study, "-o", tmp_path / "out", "--pixels", "keep")
    assert result.exit_code == 0, result.output
    assert "anonymize: 1/1" in result.output
    assert "written: 1" in result.output
    assert "CompressedSamples" not in result.output


def test_quarantined_files_exit_1(tmp_path: Path, test_key: bytes) -> None:
    make_malformed(tmp_path / "in")
    result = run("anonymize", tmp_path / "in", "-o", tmp_path / "out", "--pixels", "keep", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.output)
    assert summary["quarantined"] == 6 and summary["written"] == 1
    assert summary["quarantine_reasons"]["empty-file"] == 1


def test_quarantine_inside_output_is_a_usage_error(
    tmp_path: Path, sample_study, test_key: bytes
) -> None:
    study = sample_study("ct_small")
    out = tmp_path / "out"
    result = run("anonymize", study, "-o", out, "--pixels", "keep", "--quarantine", out / "q")
    assert result.exit_code == 2
    assert "inside the output" in result.output
    assert not (out / "q").exists()


def test_missing_key_is_a_usage_error(tmp_path: Path, sample_study, no_key: None) -> None:
    study = sample_study("ct_small")
    result = run("anonymize", study, "-o", tmp_path / "out", "--pixels", "keep")
    assert result.exit_code == 2
    assert "CADP_MED_KEY" in result.output
    assert not (tmp_path / "out").exists()


def test_key_file_and_ephemeral_key(tmp_path: Path, sample_study, no_key: None) -> None:
    study = sample_study("ct_small")
    key_file = tmp_path / "key"
    key_file.write_bytes(b"file key")
    key_file.chmod(0o600)
    assert (
        run(
            "anonymize", study, "-o", tmp_path / "a", "--pixels", "keep", "--key-file", key_file
        ).exit_code
        == 0
    )
    assert (
        run(
            "anonymize", study, "-o", tmp_path / "b", "--pixels", "keep", "--ephemeral-key"
        ).exit_code
        == 0
    )


def test_privatize_without_model_is_a_usage_error(
    tmp_path: Path, sample_study, test_key: bytes
) -> None:
    absent = tmp_path / "absent.safetensors"
    result = run("anonymize", sample_study("ct_small"), "-o", tmp_path / "out", "--model", absent)
    assert result.exit_code == 2
    assert "--pixels keep" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--pixels", "sometimes"],
        ["--retain-longitudinal", "partly"],
        ["--workers", "-1"],
    ],
)
def test_bad_option_values_exit_2(tmp_path: Path, sample_study, test_key: bytes, args) -> None:
    result = run("anonymize", sample_study("ct_small"), "-o", tmp_path / "out", *args)
    assert result.exit_code == 2


def test_profile_file_and_flags(tmp_path: Path, sample_study, test_key: bytes) -> None:
    import pydicom

    study = sample_study("ct_small")
    profile = tmp_path / "profile.toml"
    profile.write_text('options = ["retain-device-identity"]\nkeep_overlays = false\n')
    result = run(
        "anonymize",
        study,
        "-o",
        tmp_path / "out",
        "--pixels",
        "keep",
        "--profile",
        profile,
        "--retain-longitudinal",
        "full",
        "--retain-uids",
        "--clean-descriptors",
    )
    assert result.exit_code == 0, result.output
    [written] = (tmp_path / "out").rglob("*.dcm")
    ds = pydicom.dcmread(written)
    original = pydicom.dcmread(next(study.glob("*.dcm")))
    assert ds.SOPInstanceUID == original.SOPInstanceUID  # --retain-uids
    assert ds.StudyDate == original.StudyDate  # --retain-longitudinal full
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert {"113100", "113106", "113109", "113110", "113105"} <= codes


def test_conflicting_longitudinal_options_exit_2(
    tmp_path: Path, sample_study, test_key: bytes
) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text('options = ["retain-longitudinal-modified-dates"]\n')
    result = run(
        "anonymize",
        sample_study("ct_small"),
        "-o",
        tmp_path / "out",
        "--pixels",
        "keep",
        "--profile",
        profile,
        "--retain-longitudinal",
        "full",
    )
    assert result.exit_code == 2
    assert "conflict" in result.output


def test_terminal_shows_no_values_from_pydicom_warnings(tmp_path: Path, test_key: bytes) -> None:
    import warnings

    import pydicom

    from tests.conftest import pydicom_file

    study = tmp_path / "in"
    study.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.StudyDate = "Doe^John"  # an invalid DA that pydicom quotes in its warning
        ds.save_as(study / "x.dcm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run("anonymize", study, "-o", tmp_path / "out", "--pixels", "keep")
    assert result.exit_code == 0, result.output
    assert "Doe" not in result.output
    assert not [w for w in caught if "Doe" in str(w.message)]


def test_rich_output_on_a_terminal(
    tmp_path: Path, sample_study, test_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cadp_med.cli import _output

    monkeypatch.setattr(_output, "is_tty", lambda: True)
    result = run("anonymize", sample_study("ct_small"), "-o", tmp_path / "out", "--pixels", "keep")
    assert result.exit_code == 0, result.output
    assert "cadp-med anonymize" in result.output and "written" in result.output
    assert "anonymize: 1/1" not in result.output  # a progress bar, not plain lines
