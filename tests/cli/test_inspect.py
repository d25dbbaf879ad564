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
    # Nothing is unreadable; under --pixels privatize (the default) the images outside
    # the packaged model's domains would be refused (checked in the test below).
    assert set(report["would_quarantine"]) == {"pixels-outside-model-domain (privatize)"}
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


def test_inspect_predicts_the_outside_domain_quarantine_of_privatize(
    tmp_path: Path, sample_study, test_key: bytes
) -> None:
    import hashlib

    from cadp_med import anonymize_study
    from cadp_med._pipeline import AnonymizeOptions
    from cadp_med.pixels import PixelOptions, PixelStage

    study = sample_study("multi_series")
    result = runner.invoke(app, ["inspect", str(study), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    predicted = report["would_quarantine"]["pixels-outside-model-domain (privatize)"]
    # The packaged head model: the head MR series are inside, the chest CT is not.
    assert report["domains"]["MR-T1 / head / sagittal (inside)"] == 7
    assert report["domains"]["CT / chest / axial (OUTSIDE)"] == 5
    assert "Doe" not in result.output

    options = AnonymizeOptions(pixel_stage=PixelStage(PixelOptions()))
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=options)
    assert summary.quarantine_reasons == {"pixels-outside-model-domain": len(predicted)}

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    quarantined = {digest(p) for p in summary.quarantine.glob("*.dcm")}
    assert quarantined == {digest(study / name) for name in predicted}


def test_inspect_model_option_names_the_model(tmp_path: Path, sample_study) -> None:
    from cadp_med.pixels._options import DEFAULT_MODEL_PATH

    study = sample_study("ct_small")
    named = runner.invoke(
        app, ["inspect", str(study), "--json", "--model", str(DEFAULT_MODEL_PATH)]
    )
    assert named.exit_code == 0, named.output
    assert json.loads(named.output)["domains"] == {"CT / unknown region / axial (OUTSIDE)": 1}
    absent = runner.invoke(
        app, ["inspect", str(study), "--model", str(tmp_path / "none.safetensors")]
    )
    assert absent.exit_code == 2
    assert "model" in absent.output
