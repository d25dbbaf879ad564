"""NIfTI affine → DICOM series → SimpleITK: the same voxels at the same places (LPS)."""

from __future__ import annotations

from pathlib import Path

import nibabel
import numpy as np
import pytest
import SimpleITK as sitk

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.errors import InputError
from cadp_med.nifti import slice_geometry
from tests.nifti.conftest import ITK_DATA, KEY, NIBABEL_DATA


def _rotation(ax: float, az: float) -> np.ndarray:
    cx, sx, cz, sz = np.cos(ax), np.sin(ax), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx


def _affine(linear: np.ndarray, origin: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = origin
    return affine


AFFINES = {
    "oblique": _affine(_rotation(0.35, 0.17) @ np.diag([0.9, 1.1, 2.5]), (12.5, -30.0, 7.25)),
    "lps-stored": _affine(np.diag([-1.0, -1.0, 1.5]), (100.0, 120.0, -40.0)),
    # i → superior, j → right, k → anterior: a permuted, right-handed storage order.
    "permuted": _affine(np.array([[0, 1.2, 0], [0, 0, 2.0], [0.8, 0, 0]]), (-50.0, -60.0, 30.0)),
    "left-handed": _affine(np.diag([-2.0, 2.0, 2.0]), (32.0, -40.0, -16.0)),
}


def _read_series(out: Path) -> sitk.Image:
    folders = {p.parent for p in out.rglob("*.dcm")}
    assert len(folders) == 1
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folders.pop())))
    return reader.Execute()


def _expected(affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Direction, origin, spacing a DICOM reader must find, and whether k is reversed."""
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3]  # RAS → LPS, computed here independently
    col, row, step = lps[:, 0], lps[:, 1], lps[:, 2]
    u, v = col / np.linalg.norm(col), row / np.linalg.norm(row)
    normal = np.cross(u, v)
    reversed_k = float(step @ normal) < 0
    first = shape[2] - 1 if reversed_k else 0
    origin = lps[:, 3] + first * step
    spacing = np.array([np.linalg.norm(col), np.linalg.norm(row), abs(step @ normal)])
    return np.column_stack([u, v, normal]), origin, spacing, np.array(reversed_k)


def _check_round_trip(folder: Path, volume: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = anonymize_study(folder, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert summary.exit_code == 0 and summary.quarantined == 0
    image = nibabel.load(str(volume))
    data = np.asanyarray(image.dataobj)
    data = data[..., 0] if data.ndim == 4 else data
    series = _read_series(out)
    direction, origin, spacing, reversed_k = _expected(image.affine, data.shape)
    assert np.allclose(np.reshape(series.GetDirection(), (3, 3)), direction, atol=1e-4)
    assert np.allclose(series.GetOrigin(), origin, atol=1e-4)
    assert np.allclose(series.GetSpacing(), spacing, atol=1e-4)
    # --pixels keep: the same voxel values ([k, j, i] in SimpleITK's array order).
    expected = data.transpose(2, 1, 0)
    if reversed_k:
        expected = expected[::-1]
    assert np.array_equal(sitk.GetArrayFromImage(series), expected)


@pytest.mark.parametrize("name", sorted(AFFINES))
def test_round_trip_geometry(name: str, copy_volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = copy_volume(NIBABEL_DATA / "anatomical.nii", f"{name}.nii.gz", AFFINES[name])
    _check_round_trip(folder, folder / f"{name}.nii.gz", tmp_path)


def test_right_handed_series_matches_itk_nifti_reader(copy_volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = copy_volume(NIBABEL_DATA / "anatomical.nii", "oblique.nii", AFFINES["oblique"])
    out = tmp_path / "out"
    anonymize_study(folder, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    direct = sitk.ReadImage(str(folder / "oblique.nii"))  # ITK's own RAS → LPS
    series = _read_series(out)
    assert np.allclose(series.GetDirection(), direct.GetDirection(), atol=1e-4)
    assert np.allclose(series.GetOrigin(), direct.GetOrigin(), atol=1e-4)
    assert np.allclose(series.GetSpacing(), direct.GetSpacing(), atol=1e-4)


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_round_trip_nibabel_data(name: str, copy_volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = copy_volume(NIBABEL_DATA / name, name)
    _check_round_trip(folder, folder / name, tmp_path)


@pytest.mark.skipif(not (ITK_DATA / "KmeansTest_T1UCharRaw.nii.gz").is_file(), reason="no ITK data")
def test_round_trip_itk_example(copy_volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = copy_volume(ITK_DATA / "KmeansTest_T1UCharRaw.nii.gz", "t1.nii.gz")
    _check_round_trip(folder, folder / "t1.nii.gz", tmp_path)


def test_in_plane_shear_is_refused() -> None:
    sheared = _affine(np.array([[1.0, 0.3, 0], [0, 1.0, 0], [0, 0, 1.0]]), (0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="sheared"):
        slice_geometry(sheared, 3)


def test_instance_numbers_count_along_the_normal() -> None:
    geometry = slice_geometry(AFFINES["left-handed"], 4)
    along = geometry.positions @ geometry.normal
    assert [geometry.instance_numbers[k] for k in np.argsort(along)] == [1, 2, 3, 4]
    assert geometry.slice_spacing == pytest.approx(2.0)
