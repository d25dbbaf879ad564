from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from cadp_med.cli import app

runner = CliRunner()


@pytest.fixture
def anonymized(tmp_path: Path, sample_study, test_key: bytes) -> tuple[Path, Path]:
    study = sample_study("multi_series")
    out = tmp_path / "out"
    result = runner.invoke(app, ["anonymize", str(study), "-o", str(out), "--pixels", "keep"])
    assert result.exit_code == 0, result.output
    return study, out


def verify(study: Path, out: Path, *extra: str):
    return runner.invoke(app, ["verify", "--original", str(study), str(out), *extra])


def test_no_leaks_in_anonymized_sample(anonymized: tuple[Path, Path]) -> None:
    result = verify(*anonymized, "--json")
    report = json.loads(result.output)
    assert report["leaks"] == []
    assert report["files_checked"] >= 24


def test_verify_exits_0_on_clean_output(anonymized: tuple[Path, Path]) -> None:
    assert verify(*anonymized).exit_code == 0


def test_planted_leak_exits_1_and_hides_the_value(anonymized: tuple[Path, Path]) -> None:
    study, out = anonymized
    original = pydicom.dcmread(next((study / "98892001").rglob("6293")))
    target = sorted(out.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(target)
    ds.ImageComments = f"scan of {original.PatientName}"
    ds.save_as(target)

    result = verify(study, out, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert any(leak["tag_path"].startswith("(0020,4000)") for leak in report["leaks"])
    assert str(original.PatientName) not in result.output

    plain = verify(study, out)
    assert plain.exit_code == 1
    assert "LEAK (0020,4000)" in plain.output
    assert str(original.PatientName) not in plain.output


def test_leak_in_a_non_dicom_output_file_is_found(anonymized: tuple[Path, Path]) -> None:
    study, out = anonymized
    original = pydicom.dcmread(next((study / "98892001").rglob("6293")))
    (out / "notes.txt").write_text(f"patient id {original.PatientID} was here\n")

    result = verify(study, out, "--json")

    assert result.exit_code == 1
    report = json.loads(result.output)
    assert {"tag_path": "raw bytes", "where": "notes.txt"}.items() <= next(
        leak for leak in report["leaks"] if leak["where"] == "notes.txt"
    ).items()
    assert str(original.PatientID) not in result.output
