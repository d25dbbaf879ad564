from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from cadp_med.imaging import Normalizer, from_model_grid, load_slice_set, slices_from_nifti
from cadp_med.imaging._grid import GridInfo


def test_mixed_dicom_folder_and_nifti(pydicom_test_files: Path, nibabel_data: Path) -> None:
    folder = pydicom_test_files / "dicomdirtests"
    volume = nibabel_data / "anatomical.nii"
    slice_set = load_slice_set([folder, volume], size=32, modality="MR-T1")
    assert slice_set.x.shape[1:] == (1, 32, 32)
    assert 0.0 <= slice_set.x.min() and slice_set.x.max() <= 1.0
    series = Counter(m["series"] for m in slice_set.metadata)
    assert series["volume-000"] == 33 + 41 + 25
    assert sum(1 for s in series if s.startswith("series-")) >= 3  # CT, MR and CR series
    windows = slice_set.normalization["windows"]
    assert set(windows) == set(series)
    ct = [m for m in slice_set.metadata if m["contrast"] == "CT"]
    assert ct and all(windows[m["series"]]["method"] == "fixed" for m in ct)
    # No file path or UID leaks into the labels.
    for meta in slice_set.metadata:
        assert "/" not in str(meta["source"]) and "1.2." not in str(meta["source"])


def test_pipeline_inverts_to_modality_units(nibabel_data: Path) -> None:
    volume = nibabel_data / "anatomical.nii"
    slice_set = load_slice_set([volume], size=64, axes=(2,))
    records = list(slices_from_nifti(volume, axes=(2,)))
    window = slice_set.normalization["windows"]["volume-000"]
    meta = slice_set.metadata[10]
    original = records[10].pixels
    restored = Normalizer.inverse(
        from_model_grid(slice_set.x[10, 0], GridInfo.from_dict(meta["grid"])), window
    )
    assert restored.shape == original.shape
    inside = (original >= window["low"]) & (original <= window["high"])
    # 41x33 → 64x64 → back loses only interpolation detail: median error < 5% of window.
    error = np.abs(restored - original)[inside]
    assert np.median(error) < 0.05 * (window["high"] - window["low"])
