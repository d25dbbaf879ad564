from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cadp_med.errors import InputError
from cadp_med.imaging import slices_from_nifti

KMEANS = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz")


def _write(tmp_path: Path, data: np.ndarray, affine: np.ndarray, name: str) -> Path:
    import nibabel as nib

    path = tmp_path / name
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return path


def _marker_volume(shape: tuple[int, int, int], marker: tuple[int, int, int]) -> np.ndarray:
    data = np.random.default_rng(0).uniform(0.0, 1.0, size=shape)
    data[marker] = 10.0
    return data


def test_lps_volume_is_reoriented_and_displayed_radiologically(tmp_path: Path) -> None:
    # Array axes point Left, Posterior, Superior with voxel sizes 1, 2, 3 mm.
    affine = np.diag([-1.0, -2.0, 3.0, 1.0])
    shape, marker = (20, 30, 40), (2, 5, 35)  # near patient right, anterior, superior
    path = _write(tmp_path, _marker_volume(shape, marker), affine, "lps_T1w.nii.gz")
    records = list(slices_from_nifti(path, min_foreground=0.0))
    assert Counter(r.metadata["plane"] for r in records) == {
        "sagittal": 20,
        "coronal": 30,
        "axial": 40,
    }
    assert {r.metadata["contrast"] for r in records} == {"MR-T1"}  # from the BIDS suffix
    axial = [r for r in records if r.metadata["plane"] == "axial"]
    hit = next(r for r in axial if r.pixels.max() == 10.0)
    assert hit.metadata["slice_pos"] == pytest.approx(35 / 39)  # superior end is 1
    # Display: anterior at the top (row 5 from the top), patient right on the image left.
    assert np.unravel_index(np.argmax(hit.pixels), hit.pixels.shape) == (5, 2)
    assert hit.spacing == (2.0, 1.0)  # (row = A-P, column = R-L)
    sagittal = next(r for r in records if r.metadata["plane"] == "sagittal" and r.pixels.max() > 9)
    # RAS index of the marker along R is 20 - 1 - 2 = 17; rows run superior → inferior.
    assert sagittal.metadata["slice_pos"] == pytest.approx(17 / 19)
    assert np.unravel_index(np.argmax(sagittal.pixels), sagittal.pixels.shape) == (4, 5)
    assert sagittal.spacing == (3.0, 2.0)


def test_permuted_axes_get_plane_labels_of_ras_axes(tmp_path: Path) -> None:
    # Stored as (S, R, A): array axis 0 is the axial direction.
    affine = np.zeros((4, 4))
    affine[2, 0], affine[0, 1], affine[1, 2], affine[3, 3] = 1.0, 1.0, 1.0, 1.0
    path = _write(tmp_path, _marker_volume((12, 20, 16), (0, 0, 0)), affine, "perm.nii")
    counts = Counter(r.metadata["plane"] for r in slices_from_nifti(path, min_foreground=0.0))
    assert counts == {"axial": 12, "sagittal": 20, "coronal": 16}


def test_4d_takes_first_volume_and_axes_filter(tmp_path: Path) -> None:
    data = np.stack([np.ones((8, 9, 10)), np.full((8, 9, 10), 5.0)], axis=-1)
    data[..., 0] += np.random.default_rng(0).uniform(0, 1, (8, 9, 10))
    path = _write(tmp_path, data, np.eye(4), "run_bold.nii.gz")
    records = list(slices_from_nifti(path, axes=(2,), min_foreground=0.0))
    assert len(records) == 10 and {r.metadata["plane"] for r in records} == {"axial"}
    assert max(r.pixels.max() for r in records) < 2.0  # volume 0, not volume 1
    assert records[0].metadata["contrast"] == "MR-EPI"


def test_sidecar_modality_and_explicit_override(tmp_path: Path) -> None:
    path = _write(tmp_path, _marker_volume((8, 8, 8), (1, 1, 1)), np.eye(4), "scan.nii.gz")
    (tmp_path / "scan.json").write_text('{"Modality": "CT"}')
    first = next(slices_from_nifti(path, min_foreground=0.0))
    assert (first.metadata["modality"], first.metadata["contrast"]) == ("CT", "CT")
    first = next(slices_from_nifti(path, modality="MR", contrast="MR-PD", species="macaque"))
    assert (first.metadata["contrast"], first.metadata["species"]) == ("MR-PD", "macaque")
    with pytest.raises(InputError):
        next(slices_from_nifti(path, modality="MR", contrast="T1"))


def test_anatomical_nii_real_volume(nibabel_data: Path) -> None:
    path = nibabel_data / "anatomical.nii"
    records = list(slices_from_nifti(path, contrast="MR-T1", min_foreground=0.0))
    counts = Counter(r.metadata["plane"] for r in records)
    assert counts == {"sagittal": 33, "coronal": 41, "axial": 25}
    positions = [r.metadata["slice_pos"] for r in records]
    assert min(positions) == 0.0 and max(positions) == 1.0
    assert all(0.0 <= p <= 1.0 for p in positions)
    axial = [r for r in records if r.metadata["plane"] == "axial"]
    assert axial[0].pixels.shape == (41, 33) and axial[0].spacing == (2.0, 2.0)


@pytest.mark.skipif(not KMEANS.is_file(), reason="apt-get install insighttoolkit5-examples")
def test_itk_kmeans_volume_skips_empty_slices() -> None:
    everything = list(slices_from_nifti(KMEANS, min_foreground=0.0))
    informative = list(slices_from_nifti(KMEANS, min_foreground=0.05))
    assert len(everything) == 128 + 128 + 62
    assert 0 < len(informative) < len(everything)
    for record in informative:
        assert 0.0 <= record.metadata["slice_pos"] <= 1.0
        assert (
            record.metadata["plane"]
            == {0: "sagittal", 1: "coronal", 2: "axial"}[record.metadata["axis"]]
        )
