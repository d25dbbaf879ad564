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
from tests.conftest import PYDICOM_TEST_FILES, pydicom_file


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


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("CT_small.dcm", ExplicitVRLittleEndian),  # explicit VR little endian: raw elements kept
        ("MR_small_bigendian.dcm", ExplicitVRLittleEndian),  # converted from big endian
        ("rtplan.dcm", ExplicitVRLittleEndian),  # implicit VR, nested sequences
        ("MR_small_implicit.dcm", ExplicitVRLittleEndian),  # implicit VR, no sequences
        ("MR_small_RLE.dcm", RLELossless),  # encapsulated Pixel Data, undefined length
    ],
)
def test_direct_writer_matches_dcmwrite_byte_for_byte(
    tmp_path: Path, name: str, syntax: str
) -> None:
    """write_instance bypasses dcmwrite for speed; the file must be what dcmwrite writes."""
    from cadp_med.io.write import _file_meta

    ds = pydicom.dcmread(pydicom_file(name))
    target = write_instance(ds, tmp_path, Names(), transfer_syntax=syntax)

    expected = pydicom.dcmread(pydicom_file(name))
    expected.file_meta = _file_meta(expected, pydicom.uid.UID(syntax))
    expected.preamble = b"\0" * 128
    reference = tmp_path / "reference.dcm"
    pydicom.dcmwrite(
        reference,
        expected,
        enforce_file_format=True,
        implicit_vr=False,
        little_endian=True,
    )
    assert target.read_bytes() == reference.read_bytes()


def test_non_durable_write_is_still_atomic(tmp_path: Path, monkeypatch) -> None:
    import os

    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    target = write_instance(ds, tmp_path, Names(), durable=False)
    assert synced == []
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    write_instance(ds, tmp_path / "durable", Names())
    assert len(synced) == 1  # durable is the default


def test_nested_text_in_a_multibyte_charset_survives_deid_and_write(tmp_path: Path) -> None:
    """Kept item elements stay raw; the item must be written in its parent's charset."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    from cadp_med.deid import Deidentifier, Profile

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "p1"
    ds.Modality = "OT"
    item = Dataset()
    item.CodeValue = "T-D1100"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Schädel 頭部"
    ds.AnatomicRegionSequence = [item]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)

    result = Deidentifier(Profile(), b"test-key")(pydicom.dcmread(buffer))
    back = pydicom.dcmread(write_instance(result.dataset, tmp_path, result.pseudonyms))
    assert back.AnatomicRegionSequence[0].CodeMeaning == "Schädel 頭部"


def test_direct_writer_matches_dcmwrite_on_deidentified_test_files(tmp_path: Path) -> None:
    """The shortcut writer on real de-identified headers (raw elements, nested items,
    implicit, big endian and compressed inputs) must write what dcmwrite writes."""
    import warnings

    from cadp_med.deid import Deidentifier, Profile
    from cadp_med.io.write import _file_meta

    deidentifier = Deidentifier(Profile(), b"test-key")
    compared = 0
    small = [p for p in PYDICOM_TEST_FILES.glob("*.dcm") if p.stat().st_size < 100_000]
    for index, name in enumerate(sorted(small)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                source = pydicom.dcmread(name, force=True)
                result = deidentifier(source)
                syntax = output_transfer_syntax(
                    getattr(getattr(source, "file_meta", None), "TransferSyntaxUID", None),
                    pixels_unchanged=True,
                )
                written = write_instance(
                    result.dataset,
                    tmp_path / str(index),
                    result.pseudonyms,
                    transfer_syntax=syntax,
                    durable=False,
                )
            except Exception:  # noqa: BLE001 - malformed test files; dcmwrite is not the point
                continue
            reference = pydicom.Dataset(result.dataset)
            reference.set_original_encoding(
                *result.dataset.original_encoding, result.dataset.original_character_set
            )
            reference.file_meta = _file_meta(result.dataset, syntax)
            reference.preamble = b"\0" * 128
            expected = tmp_path / f"{index}.reference.dcm"
            pydicom.dcmwrite(
                expected,
                reference,
                enforce_file_format=True,
                implicit_vr=syntax.is_implicit_VR,
                little_endian=syntax.is_little_endian,
            )
        assert written.read_bytes() == expected.read_bytes(), name
        compared += 1
    assert compared >= 50
