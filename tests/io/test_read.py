from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cadp_med.errors import InputError
from cadp_med.io import read as read_module
from cadp_med.io.read import UnreadableInstance, read_instance
from tests.conftest import pydicom_data_file, pydicom_file

CT_NAME = "CompressedSamples^CT1"  # PatientName of CT_small.dcm


def save(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def rejected(path: Path, *, decode: bool = False) -> UnreadableInstance:
    with pytest.raises(UnreadableInstance) as info:
        read_instance(path, decode_pixels=decode)
    assert isinstance(info.value, InputError)
    assert CT_NAME not in str(info.value) and "CT1" not in str(info.value)
    return info.value


def test_reads_a_valid_file() -> None:
    ds = read_instance(pydicom_file("CT_small.dcm"), decode_pixels=True)
    assert ds.Rows == 128 and ds.pixel_array.shape == (128, 128)


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.dcm").write_bytes(b"")
    assert rejected(tmp_path / "empty.dcm").category == read_module.EMPTY


def test_truncated_header(tmp_path: Path) -> None:
    raw = pydicom_file("CT_small.dcm").read_bytes()
    (tmp_path / "t.dcm").write_bytes(raw[:1000])
    assert rejected(tmp_path / "t.dcm").category in (read_module.TRUNCATED, read_module.MISSING_UID)


def test_truncated_pixel_data(tmp_path: Path) -> None:
    raw = pydicom_file("CT_small.dcm").read_bytes()
    (tmp_path / "t.dcm").write_bytes(raw[:-5000])
    error = rejected(tmp_path / "t.dcm")
    assert error.category in (read_module.TRUNCATED, read_module.PIXEL_LENGTH)


def test_random_bytes_with_dicm_prefix(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "r.dcm").write_bytes(b"\0" * 128 + b"DICM" + rng.bytes(3000))
    assert rejected(tmp_path / "r.dcm").category in {
        read_module.UNPARSEABLE,
        read_module.TRUNCATED,
        read_module.UNKNOWN_VR,
        read_module.MISSING_UID,
    }


def test_unknown_vr(tmp_path: Path) -> None:
    raw = bytearray(pydicom_file("CT_small.dcm").read_bytes())
    index = raw.find(b"PN")  # the VR of the first person name element
    raw[index : index + 2] = b"ZZ"
    (tmp_path / "vr.dcm").write_bytes(bytes(raw))
    assert rejected(tmp_path / "vr.dcm").category == read_module.UNKNOWN_VR


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SOPClassUID"])
def test_missing_required_uid(tmp_path: Path, keyword: str) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    delattr(ds, keyword)
    error = rejected(save(ds, tmp_path / "m.dcm"))
    assert error.category == read_module.MISSING_UID
    assert error.detail in ("(0008,0016)", "(0008,0018)")


def test_image_without_pixel_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    del ds.PixelData
    error = rejected(save(ds, tmp_path / "p.dcm"))
    assert (error.category, error.detail) == (read_module.MISSING_PIXELS, "(7FE0,0010)")


def test_bogus_character_set_is_quarantined(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 999"
    error = rejected(save(ds, tmp_path / "c.dcm"))
    assert (error.category, error.detail) == (read_module.CHARSET, "(0008,0005)")


def test_undecodable_text_is_quarantined(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8
    path = save(ds, tmp_path / "u.dcm")
    raw = path.read_bytes()
    name = CT_NAME.encode()
    bad = raw.replace(name, b"\xff\xfe" + name[2:])  # invalid UTF-8, same length
    path.write_bytes(bad)
    assert rejected(path).category == read_module.CHARSET


def test_pixel_data_shorter_than_declared(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.Rows = 256  # declares twice the bytes that are there
    error = rejected(save(ds, tmp_path / "s.dcm"))
    assert error.category == read_module.PIXEL_LENGTH


def test_12_bit_jpeg_extended_no_plugin_can_decode() -> None:
    # A real file: no installed decoder handles 12-bit JPEG Extended.
    error = rejected(pydicom_file("JPEG-lossy.dcm"), decode=True)
    assert (error.category, error.detail) == (
        read_module.PIXEL_DECODE,
        "JPEG Extended (Process 2 and 4)",
    )
    # Header-only reading does not decode, so it succeeds.
    assert read_instance(pydicom_file("JPEG-lossy.dcm")).Rows == 1024


def test_truncated_encapsulated_pixel_data(tmp_path: Path) -> None:
    # pydicom drops an unterminated encapsulated Pixel Data element with a warning.
    raw = pydicom_file("MR_small_jp2klossless.dcm").read_bytes()
    (tmp_path / "t.dcm").write_bytes(raw[:-200])
    assert rejected(tmp_path / "t.dcm").category in (
        read_module.MISSING_PIXELS,
        read_module.MISSING_UID,
        read_module.TRUNCATED,
    )


def test_padded_pixel_data_is_accepted() -> None:
    ds = read_instance(pydicom_file("MR_small_padded.dcm"), decode_pixels=True)
    assert ds.pixel_array.shape == (64, 64)


def test_undecodable_compressed_pixels(tmp_path: Path) -> None:
    path = tmp_path / "broken.dcm"
    shutil.copy(pydicom_file("emri_small_jpeg_2k_lossless.dcm"), path)
    ds = pydicom.dcmread(path)
    # Corrupt the first frame's codestream while keeping the encapsulation valid.
    from pydicom.encaps import encapsulate, generate_frames

    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    frames[0] = b"\x00" * len(frames[0])
    ds.PixelData = encapsulate(frames)
    save(ds, path)
    assert rejected(path, decode=True).category == read_module.PIXEL_DECODE


@pytest.mark.parametrize(
    "name",
    [
        "MR_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "emri_small_RLE.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "JPEG-LL.dcm",
        "US1_J2KI.dcm",
        "SC_rgb_rle_2frame.dcm",
        "SC_rgb_small_odd_big_endian.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "image_dfl.dcm",
    ],
)
def test_decodes_every_transfer_syntax(name: str) -> None:
    ds = read_instance(pydicom_file(name), decode_pixels=True)
    assert ds.pixel_array.size == ds.Rows * ds.Columns * int(ds.get("NumberOfFrames", 1)) * int(
        ds.SamplesPerPixel
    )


def test_decodes_pydicom_data_file() -> None:
    ds = read_instance(pydicom_data_file("SC_rgb_expb_2frame.dcm"), decode_pixels=True)
    assert ds.pixel_array.shape == (2, 100, 100, 3)


def test_non_image_object_needs_no_pixels() -> None:
    ds = read_instance(pydicom_file("test-SR.dcm"))
    assert "PixelData" not in ds
