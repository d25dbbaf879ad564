"""``anonymize`` over NIfTI input: cleaned sidecar and header, no planted PHI, formats."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.deid import Option, Profile
from cadp_med.nifti import NiftiOptions
from tests.nifti.conftest import DESCRIP, KEY, PHI


def _output_bytes(out: Path) -> list[tuple[str, bytes]]:
    files = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        files.append(
            (
                path.relative_to(out).as_posix(),
                gzip.decompress(data) if path.suffix == ".gz" else data,
            )
        )
    return files


def _assert_no_planted_phi(out: Path) -> None:
    planted = [v.encode() for v in PHI.values()] + [b"Zelda", DESCRIP]
    for name, data in _output_bytes(out):
        for value in planted:
            assert value not in data, name
            assert value.decode() not in name


def test_bids_volume_to_dicom_series(bids_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = anonymize_study(bids_study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert (summary.written, summary.quarantined, summary.non_dicom) == (25, 0, 0)
    assert summary.series == 1
    _assert_no_planted_phi(out)
    files = sorted(out.rglob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.Modality == "MR"
    assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "113100" in {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert float(ds.EchoTime) == pytest.approx(2.96) and float(ds.FlipAngle) == 9
    assert ds.PatientSex == "" and ds.StudyDate == ""  # no patient characteristics, no dates
    assert ds.PatientID.startswith("P") and ds.PatientName == ds.PatientID
    audit = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert {r["status"] for r in audit} == {"written"} and len(audit) == 25

    again = anonymize_study(bids_study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert (again.written, again.skipped_done) == (0, 25)
    assert sorted(out.rglob("*.dcm")) == files


def test_retain_patient_characteristics_keeps_sex(bids_study: Path, tmp_path: Path) -> None:
    profile = Profile(frozenset({Option.RETAIN_PATIENT_CHARACTERISTICS}))
    options = AnonymizeOptions(pixels="keep", profile=profile)
    anonymize_study(bids_study, tmp_path / "out", key=KEY, options=options)
    ds = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert ds.PatientSex == "F"


def test_format_nifti_keeps_affine_and_voxels(bids_study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options = AnonymizeOptions(pixels="keep", nifti=NiftiOptions(output_format="nifti"))
    summary = anonymize_study(bids_study, out, key=KEY, options=options)
    assert (summary.written, summary.quarantined) == (1, 0)
    _assert_no_planted_phi(out)
    [written] = list(out.rglob("*.nii.gz"))
    original = nibabel.load(str(next(bids_study.rglob("*.nii"))))
    result = nibabel.load(str(written))
    assert result.shape == original.shape
    assert np.allclose(result.affine, original.affine, atol=1e-5)
    assert np.array_equal(np.asanyarray(result.dataobj), np.asanyarray(original.dataobj))
    for field in ("descrip", "aux_file", "db_name", "intent_name"):
        assert result.header[field].item() == b""
    sidecar = json.loads(written.with_name(written.name.replace(".nii.gz", ".json")).read_text())
    assert not set(PHI) & set(sidecar)
    assert sidecar["EchoTime"] == 0.00296 and sidecar["RepetitionTime"] == 2.3
    again = anonymize_study(bids_study, out, key=KEY, options=options)
    assert (again.written, again.skipped_done) == (0, 1)


def test_unknown_modality_is_quarantined(bids_study: Path, tmp_path: Path) -> None:
    sidecar = next(bids_study.rglob("*.json"))
    sidecar.write_text(json.dumps({"Modality": "PT"}))
    summary = anonymize_study(
        bids_study, tmp_path / "out", key=KEY, options=AnonymizeOptions(pixels="keep")
    )
    assert summary.quarantine_reasons == {"nifti-unsupported-modality": 1}
    assert summary.exit_code == 1 and not list((tmp_path / "out").rglob("*.dcm"))


def test_missing_modality_defaults_to_mr_with_a_warning(copy_volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.nifti.conftest import NIBABEL_DATA

    folder = copy_volume(NIBABEL_DATA / "anatomical.nii", "anatomical.nii")
    summary = anonymize_study(
        folder, tmp_path / "out", key=KEY, options=AnonymizeOptions(pixels="keep")
    )
    assert summary.warnings == 2  # MR assumed; sidecar keys removed (none)
    records = (tmp_path / "out" / "audit.jsonl").read_text()
    assert "MR assumed" in records


def test_ct_modality_flag_writes_ct_in_hu(copy_volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.nifti.conftest import NIBABEL_DATA

    folder = copy_volume(NIBABEL_DATA / "anatomical.nii", "anatomical.nii")
    options = AnonymizeOptions(pixels="keep", nifti=NiftiOptions(modality="CT", patient_id="A1"))
    anonymize_study(folder, tmp_path / "out", key=KEY, options=options)
    ds = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.RescaleType == "HU"
    assert float(ds.RescaleSlope) == 1 and float(ds.RescaleIntercept) == 0
    from cadp_med.deid._pseudo import patient_token

    assert ds.PatientID == "P" + patient_token(KEY, "A1")  # the DICOM pseudonym of "A1"


def test_privatize_changes_voxels_and_series(
    bids_study: Path, tmp_path: Path, model_path: Path
) -> None:
    from cadp_med.pixels import PixelOptions, PixelStage, read_parameters

    keep = anonymize_study(
        bids_study, tmp_path / "keep", key=KEY, options=AnonymizeOptions(pixels="keep")
    )
    assert keep.written == 25
    # The sidecar names no body region, so the volume is outside the packaged model's
    # domains; this test is about the NIfTI pixel path (the check: tests/pixels/test_domain.py).
    stage = PixelStage(
        PixelOptions(
            epsilon=1.0, seed=5, model=model_path, device="cpu", allow_outside_domain=True
        )
    )
    options = AnonymizeOptions(pixel_stage=stage, nifti=NiftiOptions(output_format="nifti"))
    summary = anonymize_study(bids_study, tmp_path / "priv", key=KEY, options=options)
    assert (summary.written, summary.quarantined) == (1, 0)
    _assert_no_planted_phi(tmp_path / "priv")
    [written] = list((tmp_path / "priv").rglob("*.nii.gz"))
    original = np.asanyarray(nibabel.load(str(next(bids_study.rglob("*.nii")))).dataobj)
    private = np.asanyarray(nibabel.load(str(written)).dataobj)
    assert private.shape == original.shape and not np.allclose(private, original)
    sidecar = json.loads(written.with_name(written.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["CADPParameters"]["epsilon_slice"] == 1.0
    keep_series = {p.parent.name for p in (tmp_path / "keep").rglob("*.dcm")}
    assert written.name.removesuffix(".nii.gz") not in keep_series  # privatized series UID
    assert read_parameters  # the DICOM path is covered by the same stage


def test_cli_single_volume_to_nifti(
    copy_volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from cadp_med.cli import app
    from tests.nifti.conftest import NIBABEL_DATA

    folder = copy_volume(NIBABEL_DATA / "example4d.nii.gz", "example4d.nii.gz")
    monkeypatch.setenv("CADP_MED_KEY", "cli-key")
    args = ["anonymize", str(folder / "example4d.nii.gz"), "-o", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--pixels", "keep", "--format", "nifti", "--json"])
    assert result.exit_code == 0, result.output
    [written] = list((tmp_path / "out").rglob("*.nii.gz"))
    image = nibabel.load(str(written))
    assert image.shape == nibabel.load(str(folder / "example4d.nii.gz")).shape[:3]
