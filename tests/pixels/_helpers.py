"""Helpers for the pixel tests: synthetic series from real slices, image metrics, runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.conftest import SAMPLE_DATA, TEST_KEY


def synthetic_ct_series(out: Path, n: int, *, side: int = 64, source: Path | None = None) -> Path:
    """``n`` copies of a real CT slice with new UIDs and positions 1 mm apart.

    The slice is reduced to ``side x side`` by striding and stored uncompressed; each copy
    is a distinct instance of one series of one study. The default source is the head CT
    of ``sample_data/ct_head`` (512 x 512, Body Part Examined HEAD), inside the packaged
    model's domains, so these runs are privatized rather than quarantined.
    """
    source = source or SAMPLE_DATA / "ct_head" / "CT_head.dcm"
    ds = pydicom.dcmread(source)
    pixels = ds.pixel_array
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    stride = max(1, pixels.shape[0] // side)
    pixels = np.ascontiguousarray(pixels[::stride, ::stride][:side, :side])
    ds.PixelData = pixels.tobytes()
    ds.Rows, ds.Columns = pixels.shape
    spacing = [float(v) * stride for v in ds.PixelSpacing]
    ds.PixelSpacing = [f"{v:.6g}" for v in spacing]
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    out.mkdir(parents=True, exist_ok=True)
    x, y, z0 = (float(v) for v in ds.ImagePositionPatient)
    for i in range(n):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [x, y, z0 + i]
        ds.SliceLocation = z0 + i
        ds.save_as(out / f"slice{i:04d}.dcm", enforce_file_format=True)
    return out


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean SSIM (Wang et al. 2004) with a Gaussian window, sigma 1.5."""
    from scipy.ndimage import gaussian_filter

    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(v: np.ndarray) -> np.ndarray:
        return gaussian_filter(v, 1.5, truncate=3.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def cli_env() -> dict[str, str]:
    """Environment for a ``cadp-med`` subprocess: the test key, one thread."""
    env = dict(os.environ)
    env.update(CADP_MED_KEY=TEST_KEY, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def cli(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run ``cadp-med`` in a subprocess."""
    command = [str(Path(sys.executable).parent / "cadp-med"), *args]
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        command, env=cli_env(), capture_output=True, text=True, **kwargs
    )


def instances(root: Path) -> dict[str, Path]:
    """Output instances by relative path."""
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*.dcm"))}
