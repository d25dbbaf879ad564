"""Privatized pixels through the Ray backend equal the local backend's under a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions
from cadp_med.batch import run_batch, studies_in_folder
from cadp_med.batch._stage import stage_factory
from tests.batch.conftest import instance_bytes

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

KEY = b"batch-test-key"


def test_ray_privatized_output_matches_local_under_seed(tmp_path: Path, study_set: Path) -> None:
    from cadp_med.pixels import PixelOptions, PixelStage

    studies = [s for s in studies_in_folder(study_set) if Path(s.path).name == "study-d"]
    # CT_small (a spine) and MR_small name no body region: outside the packaged model's
    # domains, let through so that both backends privatize the same two images.
    factory, settings = stage_factory(
        PixelStage(PixelOptions(epsilon=2.0, seed=7, device="cpu", allow_outside_domain=True))
    )
    options = AnonymizeOptions(pixels="privatize")

    outputs = {}
    for backend in ("local", "ray"):
        summary = run_batch(
            studies,
            tmp_path / backend,
            key=KEY,
            options=options,
            backend=backend,
            pixel_stage_factory=factory,
            pixel_config=settings,
        )
        assert summary.status["states"]["done"] == 1
        outputs[backend] = instance_bytes(tmp_path / backend)

    assert len(outputs["local"]) == 2
    assert outputs["ray"] == outputs["local"]

    originals = {
        pydicom.dcmread(p).Modality: pydicom.dcmread(p).pixel_array
        for p in (study_set / "study-d").iterdir()
    }
    for path in (tmp_path / "ray").rglob("*.dcm"):
        written = pydicom.dcmread(path)
        assert "DERIVED" in written.ImageType
        assert not np.array_equal(written.pixel_array, originals[written.Modality])
