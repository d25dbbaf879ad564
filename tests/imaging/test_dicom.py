from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cadp_med.imaging import slices_from_dicom_series
from cadp_med.imaging._dicom import plane_from_orientation


def _series(root: Path, folder: str) -> list[pydicom.Dataset]:
    files = sorted((root / "dicomdirtests" / folder).iterdir())
    if not files:
        pytest.skip(f"pydicom test series {folder} not installed")
    return [pydicom.dcmread(f) for f in files]


def test_ct_series_hu_match_manual_rescale(pydicom_test_files: Path) -> None:
    datasets = _series(pydicom_test_files, "77654033/CT2")
    records = slices_from_dicom_series(datasets)
    assert len(records) == len(datasets)
    for record in records:
        ds = datasets[record.metadata["instance"]]
        expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(
            ds.RescaleIntercept
        )
        np.testing.assert_array_equal(record.pixels, expected.astype(np.float32))
        assert record.metadata["modality"] == "CT" and record.metadata["contrast"] == "CT"
        assert record.metadata["plane"] == "axial"
        assert record.spacing == pytest.approx(tuple(float(v) for v in ds.PixelSpacing))
    assert min(r.pixels.min() for r in records) < -900  # air in HU, not raw 0..4095


def test_slice_pos_follows_position_not_file_order(pydicom_test_files: Path) -> None:
    datasets = _series(pydicom_test_files, "98892001/CT5N")
    shuffled = datasets[:]
    random.Random(3).shuffle(shuffled)
    records = slices_from_dicom_series(shuffled)
    z = [float(shuffled[r.metadata["instance"]].ImagePositionPatient[2]) for r in records]
    assert z == sorted(z)  # slice_pos 0 is the inferior end, as in the NIfTI reader
    positions = [r.metadata["slice_pos"] for r in records]
    assert positions == [i / (len(records) - 1) for i in range(len(records))]


def _mono_dataset(orientation: list[float], position: list[float]) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "MR"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.ImageOrientationPatient = orientation
    ds.ImagePositionPatient = position
    ds.PixelData = np.full((4, 4), 7, np.uint16).tobytes()
    return ds


@pytest.mark.parametrize(
    ("orientation", "axis", "towards_ras"),
    [
        ([1, 0, 0, 0, 0, -1], 1, -1.0),  # coronal: normal +y (posterior); RAS wants anterior
        ([-1, 0, 0, 0, 0, -1], 1, -1.0),  # same plane, normal flipped to -y
        ([0, 1, 0, 0, 0, -1], 0, -1.0),  # sagittal: slice_pos grows towards patient right
    ],
)
def test_slice_pos_grows_towards_right_anterior_superior(
    orientation: list[float], axis: int, towards_ras: float
) -> None:
    offsets = [10.0, -5.0, 0.0, 25.0]
    datasets = []
    for offset in offsets:
        position = [0.0, 0.0, 0.0]
        position[axis] = offset
        datasets.append(_mono_dataset(orientation, position))
    records = slices_from_dicom_series(datasets)
    ras = [towards_ras * offsets[r.metadata["instance"]] for r in records]
    assert ras == sorted(ras)
    assert [r.metadata["slice_pos"] for r in records] == [0.0, 1 / 3, 2 / 3, 1.0]


def test_radial_localizer_gets_per_slice_planes(pydicom_test_files: Path) -> None:
    records = slices_from_dicom_series(_series(pydicom_test_files, "98892003/MR700"))
    assert {r.metadata["plane"] for r in records} <= {"coronal", "sagittal", "oblique"}
    assert "oblique" in {r.metadata["plane"] for r in records}


@pytest.mark.parametrize(
    ("orientation", "plane"),
    [
        ([1, 0, 0, 0, 1, 0], "axial"),
        ([1, 0, 0, 0, 0, -1], "coronal"),
        ([0, 1, 0, 0, 0, -1], "sagittal"),
        ([1, 0, 0, 0, np.cos(np.pi / 4), -np.sin(np.pi / 4)], "oblique"),
        (None, "unknown"),
    ],
)
def test_plane_from_orientation(orientation: list[float] | None, plane: str) -> None:
    assert plane_from_orientation(orientation)[0] == plane


def test_multiframe_mr_gives_one_slice_per_frame(pydicom_data_files: Path) -> None:
    path = pydicom_data_files / "emri_small.dcm"
    if not path.is_file():
        pytest.skip("emri_small.dcm not in this pydicom-data")
    ds = pydicom.dcmread(path)
    records = slices_from_dicom_series([ds])
    assert len(records) == int(ds.NumberOfFrames) == 10
    assert sorted(r.metadata["frame"] for r in records) == list(range(10))
    for record in records:
        np.testing.assert_array_equal(record.pixels, ds.pixel_array[record.metadata["frame"]])


def test_enhanced_ct_takes_rescale_from_functional_groups(pydicom_data_files: Path) -> None:
    path = pydicom_data_files / "eCT_Supplemental.dcm"
    if not path.is_file():
        pytest.skip("eCT_Supplemental.dcm not in this pydicom-data")
    ds = pydicom.dcmread(path)
    records = slices_from_dicom_series([ds])
    assert len(records) == int(ds.NumberOfFrames)
    for record in records:
        frame = record.metadata["frame"]
        group = ds.PerFrameFunctionalGroupsSequence[frame]
        if "PixelValueTransformationSequence" not in group:
            group = ds.SharedFunctionalGroupsSequence[0]
        transform = group.PixelValueTransformationSequence[0]
        expected = ds.pixel_array[frame] * float(transform.RescaleSlope) + float(
            transform.RescaleIntercept
        )
        np.testing.assert_array_equal(record.pixels, expected.astype(np.float32))
        assert record.metadata["plane"] == "axial"


def _rgb_dataset(rgb: np.ndarray) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = rgb.astype(np.uint8).tobytes()
    return ds


def test_colour_becomes_bt601_luminance() -> None:
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[1, :] = (100, 150, 200)
    (record,) = slices_from_dicom_series([_rgb_dataset(rgb)])
    expected = [[0.299 * 255, 0.587 * 255, 0.114 * 255], [0.299 * 100 + 0.587 * 150 + 22.8] * 3]
    np.testing.assert_allclose(record.pixels, expected, atol=1e-4)
    assert "BT.601" in record.metadata["colour_transform"]
    assert record.metadata["slice_pos"] == 0.5 and record.metadata["plane"] == "unknown"


def test_real_ybr_and_rgb_files_agree(pydicom_data_files: Path) -> None:
    rgb_path = pydicom_data_files / "SC_rgb.dcm"
    ybr_path = pydicom_data_files / "SC_ybr_full_uncompressed.dcm"
    if not (rgb_path.is_file() and ybr_path.is_file()):
        pytest.skip("SC_rgb / SC_ybr_full files not in this pydicom-data")
    (from_rgb,) = slices_from_dicom_series([pydicom.dcmread(rgb_path)])
    (from_ybr,) = slices_from_dicom_series([pydicom.dcmread(ybr_path)])
    # Same picture stored in two colour spaces: luminance agrees to YBR rounding.
    assert np.max(np.abs(from_rgb.pixels - from_ybr.pixels)) <= 3.0
