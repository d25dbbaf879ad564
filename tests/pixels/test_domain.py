"""Inputs outside the model's declared domains are quarantined, or let through on request
with a record in the provenance and the audit log."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from typer.testing import CliRunner

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.cli import app
from cadp_med.model import read_model_card
from cadp_med.pixels import DEFAULT_MODEL_PATH, PixelOptions, PixelStage, read_parameters
from tests.conftest import SAMPLE_DATA, TEST_KEY

REASON = "pixels-outside-model-domain"

pytestmark = pytest.mark.skipif(
    not DEFAULT_MODEL_PATH.is_file(), reason="needs the packaged model and its domains"
)


def _run(src: Path, out: Path, **pixel: Any) -> Any:
    stage = PixelStage(PixelOptions(device="cpu", seed=3, **pixel))
    return anonymize_study(
        src, out, key=TEST_KEY.encode(), options=AnonymizeOptions(pixel_stage=stage)
    )


def _audit(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]


def _spine_ct(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLE_DATA / "ct_small" / "CT_small.dcm", src)
    return src


def test_spine_ct_is_quarantined_with_the_reason_and_how_to_train(tmp_path: Path) -> None:
    # CT_small shows a thoracic vertebra; its header names no region, so the head model
    # cannot know it is a head, and must not turn it into one.
    out = tmp_path / "out"
    summary = _run(_spine_ct(tmp_path), out)
    assert summary.written == 0 and summary.quarantine_reasons == {REASON: 1}
    assert summary.exit_code == 1
    (note,) = (tmp_path / "out.quarantine").glob("*.reason.json")
    data = json.loads(note.read_text())
    assert data["reason"] == REASON
    assert "cadp-med train" in data["message"] and "--allow-outside-domain" in data["message"]
    assert [line["reason"] for line in _audit(out)] == [REASON]
    assert not list(out.rglob("*.dcm"))


def test_a_named_spine_region_is_quarantined_too(tmp_path: Path) -> None:
    src = _spine_ct(tmp_path)
    ds = pydicom.dcmread(src / "CT_small.dcm")
    ds.BodyPartExamined = "TSPINE"
    ds.save_as(src / "CT_small.dcm")
    assert _run(src, tmp_path / "out").quarantine_reasons == {REASON: 1}


def test_allow_outside_domain_privatizes_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = _run(_spine_ct(tmp_path), out, allow_outside_domain=True)
    assert summary.written == 1 and summary.quarantined == 0
    params = read_parameters(pydicom.dcmread(next(out.rglob("*.dcm"))))
    assert params["domain"] == {
        "modality": "CT",
        "region": "unknown",
        "plane": "axial",
        "inside": False,
        "allowed_outside": True,
    }
    (line,) = _audit(out)
    assert line["status"] == "written"
    assert line["warnings"] == [f"{REASON} allowed (--allow-outside-domain)"]


def test_head_ct_inside_the_domains_is_privatized(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = _run(SAMPLE_DATA / "ct_head", out)
    assert summary.written == 1 and summary.quarantined == 0, summary.to_dict()
    params = read_parameters(pydicom.dcmread(next(out.rglob("*.dcm"))))
    assert params["domain"]["inside"] and params["domain"]["region"] == "head"
    assert not params["domain"]["allowed_outside"]
    assert _audit(out)[0]["warnings"] == []


def test_cli_quarantines_and_says_how_to_train(tmp_path: Path, test_key: bytes) -> None:
    runner = CliRunner()
    src = _spine_ct(tmp_path)
    refused = runner.invoke(app, ["anonymize", str(src), "-o", str(tmp_path / "a"), "--json"])
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["quarantine_reasons"] == {REASON: 1}
    assert "cadp-med train" in refused.stderr
    allowed = runner.invoke(
        app,
        ["anonymize", str(src), "-o", str(tmp_path / "b"), "--allow-outside-domain", "--json"],
    )
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["written"] == 1


def _nifti(tmp_path: Path, **sidecar: Any) -> Path:
    src = tmp_path / "nii"
    shutil.copytree(SAMPLE_DATA / "nifti_small", src)
    side = src / "sub-01" / "anat" / "sub-01_T1w.json"
    data = json.loads(side.read_text())
    data.update(sidecar)
    side.write_text(json.dumps(data))
    return src


def test_nifti_without_a_region_is_quarantined(tmp_path: Path) -> None:
    summary = _run(_nifti(tmp_path), tmp_path / "out")
    assert summary.written == 0 and summary.quarantine_reasons == {REASON: 1}


def test_nifti_region_comes_from_the_sidecar(tmp_path: Path) -> None:
    # A T1 (TR 500 ms, TE 10 ms) of the head: MR-T1 / head / axial, a declared domain.
    src = _nifti(tmp_path, BodyPartExamined="BRAIN", RepetitionTime=0.5, EchoTime=0.01)
    out = tmp_path / "out"
    summary = _run(src, out)
    assert summary.quarantined == 0 and summary.written > 0, summary.to_dict()
    params = read_parameters(pydicom.dcmread(next(out.rglob("*.dcm"))))
    assert params["domain"]["region"] == "head" and params["domain"]["inside"]


def test_a_model_without_domains_checks_nothing(tmp_path: Path) -> None:
    # Models trained before domains were recorded declare none: nothing to check against.
    card = read_model_card(DEFAULT_MODEL_PATH)
    stage = PixelStage(PixelOptions(device="cpu"))
    stage.card = {k: v for k, v in card.items() if k != "domains"}
    ds = pydicom.dcmread(SAMPLE_DATA / "ct_small" / "CT_small.dcm")
    assert stage.domain_of(ds) is None and stage.refuse_reason(ds) is None
