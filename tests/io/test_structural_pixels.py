"""Pixel data checked from its bytes (no decoding) and left in its file when large."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames

from cadp_med.io import read as read_module
from cadp_med.io._pixel_source import FilePixelData, ZeroPixelData, check_encapsulated
from cadp_med.io.read import UnreadableInstance, read_instance
from tests.conftest import pydicom_file

MULTI_FRAME_J2K = "emri_small_jpeg_2k_lossless.dcm"  # 10 frames of 64 x 64


def frames_of(ds: pydicom.Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1))))


def save(ds: pydicom.Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def rejected(path: Path) -> UnreadableInstance:
    with pytest.raises(UnreadableInstance) as info:
        read_instance(path, defer_pixel_data=True)
    return info.value


def big_j2k(path: Path, frames: int = 400) -> Path:
    """A real J2K multi-frame file over the deferral size: the real frames, repeated."""
    ds = pydicom.dcmread(pydicom_file(MULTI_FRAME_J2K))
    real = frames_of(ds)
    ds.PixelData = encapsulate([real[i % len(real)] for i in range(frames)])
    ds.NumberOfFrames = frames
    return save(ds, path)


def test_undecodable_but_well_formed_fragments_pass_without_decoding(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file(MULTI_FRAME_J2K))
    frames = frames_of(ds)
    frames[0] = b"\x00" * len(frames[0])  # no decoder reads this codestream
    ds.PixelData = encapsulate(frames)
    path = save(ds, tmp_path / "x.dcm")
    read = read_instance(path)
    assert read._pixel_array is None  # noqa: SLF001 - nothing was decoded
    with pytest.raises(UnreadableInstance) as info:
        read_instance(path, decode_pixels=True, decode_isolation="inline")
    assert info.value.category == read_module.PIXEL_DECODE


def test_fragment_running_past_the_data(tmp_path: Path) -> None:
    raw = bytearray(pydicom_file("MR_small_jp2klossless.dcm").read_bytes())
    pixel = raw.rfind(b"\xe0\x7f\x10\x00")
    first_fragment = pixel + 12 + 8  # element header, then an empty Basic Offset Table
    assert raw[first_fragment : first_fragment + 4] == b"\xfe\xff\x00\xe0"
    (length,) = struct.unpack_from("<L", raw, first_fragment + 4)
    struct.pack_into("<L", raw, first_fragment + 4, length + 64)
    (tmp_path / "t.dcm").write_bytes(bytes(raw))
    error = rejected(tmp_path / "t.dcm")
    assert (error.category, error.detail) == (
        read_module.PIXEL_LENGTH,
        "(7FE0,0010) fragment length",
    )


def test_fewer_fragments_than_frames(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file(MULTI_FRAME_J2K))
    ds.PixelData = encapsulate(frames_of(ds)[:9], has_bot=False)  # 10 frames declared
    error = rejected(save(ds, tmp_path / "f.dcm"))
    assert (error.category, error.detail) == (
        read_module.PIXEL_LENGTH,
        "(7FE0,0010) fewer fragments than frames",
    )


def test_basic_offset_table_of_another_frame_count(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file(MULTI_FRAME_J2K))
    ds.PixelData = encapsulate(frames_of(ds), has_bot=True)
    ds.NumberOfFrames = 5  # ten offsets in the table
    error = rejected(save(ds, tmp_path / "b.dcm"))
    assert error.detail == "(7FE0,0010) basic offset table entries"


def test_extended_offset_table(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file(MULTI_FRAME_J2K))
    data, offsets, lengths = encapsulate_extended(frames_of(ds))
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = data, offsets, lengths
    assert read_instance(save(ds, tmp_path / "ok.dcm")).NumberOfFrames == 10
    ds.ExtendedOffsetTable = offsets[:-8]  # nine entries for ten frames
    error = rejected(save(ds, tmp_path / "bad.dcm"))
    assert error.detail == "(7FE0,0010) extended offset table entries"


def test_item_parser_on_bytes() -> None:
    data = encapsulate([b"ab", b"cd"], has_bot=True)
    delimited = data + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    assert check_encapsulated(io.BytesIO(delimited), 0, len(delimited), frames=2) == len(data)
    assert check_encapsulated(io.BytesIO(data), 0, len(data), frames=2, terminated=False)
    with pytest.raises(ValueError, match="sequence delimiter missing"):
        check_encapsulated(io.BytesIO(data), 0, len(data), frames=2)
    broken = data.replace(b"\xfe\xff\x00\xe0\x02\x00", b"\xfe\xff\x01\xe0\x02\x00", 1)
    broken = broken[:8] + broken[8:].replace(b"\xfe\xff\x00\xe0", b"\xfe\xff\x01\xe0", 1)
    with pytest.raises(ValueError, match="fragment item tag"):
        check_encapsulated(io.BytesIO(broken), 0, len(broken), frames=2, terminated=False)


def test_large_pixel_data_stays_in_the_file(tmp_path: Path) -> None:
    path = big_j2k(tmp_path / "big.dcm")
    ds = read_instance(path, defer_pixel_data=True)
    value = ds["PixelData"].value
    assert isinstance(value, FilePixelData)
    assert value.tobytes() == pydicom.dcmread(path).PixelData
    # Without deferral (and for the decoding reads) the bytes are in memory as before.
    assert isinstance(read_instance(path)["PixelData"].value, bytes)


def test_large_file_cut_short_is_quarantined(tmp_path: Path) -> None:
    path = big_j2k(tmp_path / "big.dcm")
    path.write_bytes(path.read_bytes()[:-5000])
    # pydicom cannot read the unterminated element: what it made of the rest decides.
    assert rejected(path).category in (
        read_module.MISSING_UID,
        read_module.PIXEL_LENGTH,
        read_module.MISSING_PIXELS,
        read_module.TRUNCATED,
    )


def native_multi_frame(path: Path, frames: int, *, rows: int | None = None) -> Path:
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    tile = np.tile(ds.pixel_array, (2, 2))
    ds.Rows, ds.Columns = rows or tile.shape[0], tile.shape[1]
    ds.NumberOfFrames = frames
    ds.PixelData = np.repeat(tile[None], frames, axis=0).astype("<i2").tobytes()
    return save(ds, path)


def test_large_native_data_shorter_than_declared(tmp_path: Path) -> None:
    path = native_multi_frame(tmp_path / "n.dcm", 64, rows=256)  # 128 rows are there
    error = rejected(path)
    assert (error.category, error.detail) == (read_module.PIXEL_LENGTH, "(7FE0,0010)")


def test_large_native_file_cut_short(tmp_path: Path) -> None:
    path = native_multi_frame(tmp_path / "n.dcm", 64)
    path.write_bytes(path.read_bytes()[:-4096])
    assert rejected(path).category == read_module.TRUNCATED


def test_big_endian_copy_swaps_words(tmp_path: Path) -> None:
    words = np.arange(1000, dtype=">u2")
    (tmp_path / "w").write_bytes(b"xx" + words.tobytes())
    source = FilePixelData(str(tmp_path / "w"), 2, 2000)
    assert np.array_equal(np.frombuffer(source.byteswapped(2).tobytes(), "<u2"), words)
    # 8-bit data encoded as OW: an odd count is read to the word and cut after the swap.
    assert source.head(3).byteswapped(2).tobytes() == words.astype("<u2").tobytes()[:3]


def test_zeros_are_written_in_chunks() -> None:
    buffer = io.BytesIO()
    ZeroPixelData((1 << 22) + 3).copy_to(buffer)
    assert buffer.getvalue() == bytes((1 << 22) + 3)
