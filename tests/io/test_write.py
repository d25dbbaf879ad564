from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from cadp_med.errors import DeidError
from cadp_med.io.write import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    is_done,
    output_path,
    output_transfer_syntax,
    write_instance,
)
from tests.conftest import pydicom_file


@dataclass(frozen=True)
class Names:
    patient_id: str = "PSEUDO1"
    study_uid: str = "2.25.1"
    series_uid: str = "2.25.2"
    sop_uid: str = "2.25.3"


def test_path_is_made_of_pseudonyms(tmp_path: Path) -> None:
    path = output_path(tmp_path, Names())
    assert path == tmp_path / "PSEUDO1" / "2.25.1" / "2.25.2" / "2.25.3.dcm"


def test_unsafe_characters_are_replaced(tmp_path: Path) -> None:
    path = output_path(tmp_path, Names(patient_id="a/b\\c d*?"))
    assert path.relative_to(tmp_path).parts[0] == "a_b_c_d__"


@pytest.mark.parametrize("bad", ["..", ".", "", "  "])
def test_traversal_and_empty_pseudonyms_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(DeidError):
        output_path(tmp_path, Names(study_uid=bad))


def test_written_file_has_new_file_meta(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    source_meta = ds.file_meta
    target = write_instance(ds, tmp_path, Names())
    raw = target.read_bytes()
    assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
    back = pydicom.dcmread(target)
    meta = back.file_meta
    assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert IMPLEMENTATION_CLASS_UID.startswith("2.25.")
    assert ds.file_meta is source_meta  # the caller's dataset is left alone
    assert np.array_equal(back.pixel_array, ds.pixel_array)


def test_compressed_pixels_keep_their_syntax(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    syntax = output_transfer_syntax(ds.file_meta.TransferSyntaxUID, pixels_unchanged=True)
    assert syntax == RLELossless
    back = pydicom.dcmread(write_instance(ds, tmp_path, Names(), transfer_syntax=syntax))
    assert back.file_meta.TransferSyntaxUID == RLELossless
    assert np.array_equal(back.pixel_array, ds.pixel_array)


def test_transfer_syntax_choice() -> None:
    assert (
        output_transfer_syntax(JPEG2000Lossless, pixels_unchanged=False) == ExplicitVRLittleEndian
    )
    assert output_transfer_syntax("1.2.840.10008.1.2.2", pixels_unchanged=True) == (
        ExplicitVRLittleEndian
    )
    assert output_transfer_syntax("1.2.840.10008.1.2.1.99", pixels_unchanged=True) == (
        ExplicitVRLittleEndian
    )
    assert output_transfer_syntax(None, pixels_unchanged=True) == ExplicitVRLittleEndian


def test_atomic_write_leaves_no_temp_files_and_resume_sees_it(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    assert not is_done(output_path(tmp_path, Names()))
    target = write_instance(ds, tmp_path, Names())
    assert is_done(target)
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.add_new(0x00091001, "LO", ["x"] * 2)
    ds["PixelData"].VR = "ZZ"  # unwritable VR: dcmwrite fails half way
    with pytest.raises(Exception):  # noqa: B017 - pydicom's error type is not ours
        write_instance(ds, tmp_path, Names())
    folder = output_path(tmp_path, Names()).parent
    assert list(folder.iterdir()) == []
