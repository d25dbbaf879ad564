"""``cadp-med train`` records the model's domains (modality/contrast x region x plane)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
from typer.testing import CliRunner

from cadp_med.cli import app
from cadp_med.imaging import slices_from_dicom_series
from tests.conftest import SAMPLE_DATA

TINY = [
    "--size", "64", "--stages", "3", "--blocks-per-stage", "1", "--subnet-width", "8",
    "--fc-blocks", "1", "--fc-width", "32", "--batch-size", "16", "--seed", "1",
    "--device", "cpu", "--heldout-fraction", "0.2", "--epochs", "1",
]  # fmt: skip


def test_train_records_domains_with_the_sidecar_region(tmp_path: Path) -> None:
    data = tmp_path / "nii"
    shutil.copytree(SAMPLE_DATA / "nifti_small", data)
    sidecar = data / "sub-01" / "anat" / "sub-01_T1w.json"
    side = json.loads(sidecar.read_text())
    side["BodyPartExamined"] = "BRAIN"
    sidecar.write_text(json.dumps(side))
    volume = sidecar.with_name("sub-01_T1w.nii.gz")
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(
        app,
        ["train", str(volume), "-o", str(out), "--conditions",
         "modality,plane,slice_pos,region", *TINY, "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    domains = card["domains"]
    assert domains["axes"] == ["modality", "region", "plane"]
    assert {(e["modality"], e["region"]) for e in domains["entries"]} == {("MR-T1", "head")}
    assert {e["plane"] for e in domains["entries"]} <= {"axial", "coronal", "sagittal"}
    assert sum(e["slices"] for e in domains["entries"]) == card["training"]["n_train"]
    assert card["training"]["counts"]["region"] == {"head": card["training"]["n_train"]}
    # The card carries the region table its labels were derived with.
    assert "region" in card["conditions"]["tables"]


def test_dicom_training_slices_carry_their_region() -> None:
    ds = pydicom.dcmread(SAMPLE_DATA / "ct_head" / "CT_head.dcm")
    (record,) = slices_from_dicom_series([ds])
    assert record.metadata["region"] == "head"
    spine = pydicom.dcmread(SAMPLE_DATA / "ct_small" / "CT_small.dcm")
    assert slices_from_dicom_series([spine])[0].metadata["region"] is None
