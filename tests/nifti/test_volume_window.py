"""NIfTI volumes under privatize: one DP window per volume, from every slice, counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.nifti import NiftiOptions
from tests.nifti.conftest import KEY


def test_volume_window_is_dp_from_every_slice(
    bids_study: Path, tmp_path: Path, model_path: Path
) -> None:
    from cadp_med.pixels import PixelOptions, PixelStage

    extra = (
        {"allow_outside_domain": True}
        if "allow_outside_domain" in PixelOptions.__dataclass_fields__
        else {}
    )
    stage = PixelStage(
        PixelOptions(epsilon=1.0, seed=5, model=model_path, device="cpu", **extra)
    )
    options = AnonymizeOptions(pixel_stage=stage, nifti=NiftiOptions(output_format="nifti"))
    summary = anonymize_study(bids_study, tmp_path / "priv", key=KEY, options=options)
    assert (summary.written, summary.quarantined) == (1, 0)
    [written] = list((tmp_path / "priv").rglob("*.nii.gz"))
    sidecar = json.loads(written.with_name(written.name.replace(".nii.gz", ".json")).read_text())
    params = sidecar["CADPParameters"]
    window = params["window"]
    assert window["method"] == "dp-median" and window["slices"] == 25  # every slice
    assert window["epsilon"] == pytest.approx(0.1) and window["low"] < window["high"]
    assert params["epsilon_window"] == pytest.approx(0.1)
    assert params["epsilon_latent"] == pytest.approx(0.9)
    assert params["epsilon_slice"] == pytest.approx(1.0)
