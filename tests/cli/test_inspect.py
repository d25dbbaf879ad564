from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cadp_med.cli import app
from tests.test_pipeline import make_malformed

runner = CliRunner()


def test_inspect_counts_without_values(sample_study) -> None:
    study = sample_study("multi_series")
    result = runner.invoke(app, ["inspect", str(study), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["patients"], report["studies"], report["series"]) == (1, 4, 9)
    assert report["modalities"] == {"CT": 7, "MR": 17}
    assert report["transfer_syntaxes"] == {"Explicit VR Little Endian": 24}
    assert report["skipped"]["dicomdir-index"] == ["DICOMDIR"]
    assert report["would_quarantine"] == {}
    assert "Doe" not in result.output and "98890234" not in result.output


def test_inspect_lists_problems_by_reason(tmp_path: Path) -> None:
    make_malformed(tmp_path / "in")
    result = runner.invoke(app, ["inspect", str(tmp_path / "in")])
    assert result.exit_code == 0, result.output
    assert "quarantine [empty-file] empty.dcm" in result.output
    assert "quarantine [unknown-vr] unknown_vr.dcm" in result.output
    assert "would quarantine (undecodable-character-set): 1" in result.output
    assert "CompressedSamples" not in result.output


def test_inspect_missing_folder_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert result.exit_code == 2
