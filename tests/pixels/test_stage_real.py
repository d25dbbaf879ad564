"""Full privatizing runs on the sample studies and on bigger real files from pydicom-data.

Every output must parse, decode, keep its geometry, carry the provenance and differ from
its input; ``verify_outputs`` must find no leak. The per-image mean absolute difference
and SSIM are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.deid import verify_outputs
from cadp_med.pixels import PixelOptions, PixelStage, read_parameters
from tests.conftest import SAMPLE_DATA, TEST_KEY, pydicom_data_file
from tests.pixels._helpers import ssim

BIG_FILES = (
    "693_UNCR.dcm",  # CT head 512 x 512
    "MR2_UNCR.dcm",  # MR 1024 x 1024
    "RG1_UNCR.dcm",  # CR chest, MONOCHROME1, 1955 x 1841
    "OBXXXX1A_2frame.dcm",  # multi-frame ultrasound, palette colour
    "US1_UNCR.dcm",  # RGB ultrasound
)
GEOMETRY = ("Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient")


def _run(src: Path, out: Path, model: Path, **pixel: Any) -> Any:
    # These runs put every kind of real file through the pixel pipeline (spine CT, CR,
    # ultrasound, ...), most outside the packaged model's domains: they are let through
    # here; the domain check itself is tested in tests/pixels/test_domain.py.
    pixel.setdefault("allow_outside_domain", True)
    stage = PixelStage(PixelOptions(model=model, device="cpu", **pixel))
    return anonymize_study(
        src, out, key=TEST_KEY.encode(), options=AnonymizeOptions(pixel_stage=stage)
    )


def _sources(src: Path, out: Path) -> dict[str, Path]:
    """Output relative path → input path, from the audit log's path hashes."""
    import json

    from cadp_med.io._hashing import path_hash

    by_hash = {path_hash(p): p for p in src.rglob("*") if p.is_file()}
    mapping = {}
    for line in (out / "audit.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["status"] == "written":
            mapping[record["output"]] = by_hash[record["input_path_hash"]]
    return mapping


def _modality_frames(ds: pydicom.Dataset) -> list[np.ndarray]:
    from cadp_med.imaging import slices_from_dicom_series

    records = sorted(slices_from_dicom_series([ds]), key=lambda r: r.metadata["frame"])
    return [r.pixels.astype(np.float64) for r in records]


def _check_outputs(src: Path, out: Path, label: str) -> list[str]:
    report = verify_outputs(src, out)
    assert not report.leaks, [(leak.tag_path, leak.kind) for leak in report.leaks]
    sources = _sources(src, out)
    lines = []
    outputs = sorted(out.rglob("*.dcm"))
    assert outputs
    for path in outputs:
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds or ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4":
            continue
        frames = _modality_frames(ds)
        source = pydicom.dcmread(sources[path.relative_to(out).as_posix()])
        for keyword in GEOMETRY:
            assert ds.get(keyword) == source.get(keyword), keyword
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert "regenerated" in ds.DerivationDescription
        assert ds.DerivationCodeSequence[0].CodeValue == "113085"
        assert ds.BurnedInAnnotation == "NO" and ds.RecognizableVisualFeatures == "NO"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert {"113100", "113101", "113102"} <= codes
        assert ds.SeriesDescription.endswith("]") and "[CADP eps=" in ds.SeriesDescription
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        params = read_parameters(ds)
        assert params["model_content_hash"].startswith("sha256:")
        assert all(len(str(v)) <= 64 for v in ds.DeidentificationMethod)
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID
        before = _modality_frames(source)
        assert len(frames) == len(before)
        for a, b in zip(before, frames, strict=True):
            span = float(a.max() - a.min()) or 1.0
            mad = float(np.mean(np.abs(a - b)))
            score = ssim(a, b, span)
            lines.append(f"{label} {source.Modality} {a.shape}: MAD {mad:.2f} SSIM {score:.3f}")
            assert mad > 0, "privatized pixels equal the input"
    print("\n".join(lines))
    return lines


def test_sample_studies(tmp_path: Path, model_path: Path) -> None:
    for name in ("ct_small", "mr_small", "multi_series"):
        out = tmp_path / name
        summary = _run(SAMPLE_DATA / name, out, model_path)
        assert summary.exit_code == 0, summary.quarantine_reasons
        _check_outputs(SAMPLE_DATA / name, out, name)


@pytest.mark.parametrize("name", BIG_FILES)
def test_big_real_files(tmp_path: Path, model_path: Path, name: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(pydicom_data_file(name), src / name)
    summary = _run(src, tmp_path / "out", model_path)
    assert summary.exit_code == 0, summary.quarantine_reasons
    assert summary.written == 1
    _check_outputs(src, tmp_path / "out", name)
    ds = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    original = pydicom.dcmread(src / name)
    if (
        int(original.get("SamplesPerPixel", 1)) > 1
        or "PALETTE" in original.PhotometricInterpretation
    ):
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
        assert "RedPaletteColorLookupTableData" not in ds
    else:
        assert ds.PhotometricInterpretation == original.PhotometricInterpretation
        assert ds.BitsStored == original.BitsStored
        assert ds.PixelRepresentation == original.PixelRepresentation


def test_huge_eps_keeps_likeness(tmp_path: Path, model_path: Path) -> None:
    """At eps = 1e8 with the whole latent released and no post-processing the model is an
    exact inverse up to float error, so the output equals the input after the model-grid
    round trip. The reference is that round trip without the model (grid resampling alone
    limits fidelity at 32-128 pixels); SSIM against it must exceed 0.9."""
    from cadp_med.imaging import Normalizer, from_model_grid, to_model_grid
    from cadp_med.model import read_model_card

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(pydicom_data_file("693_UNCR.dcm"), src / "ct.dcm")
    card = read_model_card(model_path)
    dim = int(card["latent"]["dim"])
    summary = _run(
        src,
        tmp_path / "out",
        model_path,
        epsilon=1e8,
        release="all",
        postprocess="none",
        clip=float(50 * dim),
    )
    assert summary.exit_code == 0
    out = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    original = pydicom.dcmread(src / "ct.dcm")
    window = {"low": -1024.0, "high": 3071.0}
    before = _modality_frames(original)[0]
    spacing = tuple(float(v) for v in original.PixelSpacing)
    grid, info = to_model_grid(
        Normalizer.forward(before, window), card["architecture"]["size"], spacing
    )
    reference = Normalizer.inverse(from_model_grid(grid, info).astype(np.float64), window)
    after = _modality_frames(out)[0]
    score = ssim(reference, after, 4095.0)
    print(f"eps=1e8 release=all: SSIM vs model-grid round trip {score:.4f}")
    assert score > 0.9
    assert read_parameters(out)["epsilon_slice"] == pytest.approx(1e8)
    assert math.isfinite(read_parameters(out)["epsilon_study"])
