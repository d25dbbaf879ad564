"""Resource limits: what a file claims is checked before anything that size is allocated."""

from __future__ import annotations

import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from cadp_med.errors import ConfigError
from cadp_med.io import read as read_module
from cadp_med.io.limits import ResourceLimits
from cadp_med.io.read import UnreadableInstance, read_instance
from tests.hardening._files import pydicom_file


def _category(path: Path, **kwargs: object) -> str:
    with pytest.raises(UnreadableInstance) as caught:
        read_instance(path, decode_pixels=True, **kwargs)  # type: ignore[arg-type]
    return caught.value.category


def _claim(source: str, path: Path, **attributes: object) -> None:
    ds = pydicom.dcmread(pydicom_file(source))
    for name, value in attributes.items():
        setattr(ds, name, value)
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize("source", ["CT_small.dcm", "MR_small_RLE.dcm"])
def test_giant_declared_image_is_quarantined_fast_without_allocating(
    tmp_path: Path, source: str
) -> None:
    path = tmp_path / "giant.dcm"
    _claim(source, path, Rows=60000, Columns=60000, NumberOfFrames=1000)
    # In a child process, so that its peak memory is its own (VmHWM: ru_maxrss
    # would carry the forked parent's peak across exec).
    code = (
        "import time\n"
        "from cadp_med.io.read import read_instance, UnreadableInstance\n"
        "start = time.perf_counter()\n"
        "try:\n"
        f"    read_instance({str(path)!r}, decode_pixels=True)\n"
        "except UnreadableInstance as exc:\n"
        "    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "    print(exc.category, time.perf_counter() - start, peak[0].split()[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    category, seconds, max_rss_kib = out.stdout.split()
    assert category == read_module.OVER_LIMIT
    assert float(seconds) < 5.0
    assert int(max_rss_kib) < 400 * 1024  # interpreter + pydicom + numpy, nothing image-sized


@pytest.mark.parametrize(
    ("limits", "attributes"),
    [
        (ResourceLimits(max_pixels_per_frame=100), {}),
        (ResourceLimits(max_frames=2), {"NumberOfFrames": 3}),
        (ResourceLimits(max_decoded_bytes=1000), {}),
    ],
)
def test_each_pixel_limit_applies(
    tmp_path: Path, limits: ResourceLimits, attributes: dict[str, object]
) -> None:
    path = tmp_path / "x.dcm"
    _claim("MR_small_RLE.dcm", path, **attributes)
    assert _category(path, limits=limits) == read_module.OVER_LIMIT


def _deflated_file(path: Path, payload: bytes) -> None:
    """A Part 10 file whose deflated dataset inflates to ``payload``."""
    meta = Dataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_file_meta_info(buffer, pydicom.dataset.FileMetaDataset(meta))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = compressor.compress(payload) + compressor.flush()
    path.write_bytes(b"\0" * 128 + b"DICM" + buffer.getvalue() + deflated)


def test_deflate_bomb_is_stopped_in_bounded_memory(tmp_path: Path) -> None:
    # 64 MiB of zeros in an (Explicit VR LE) OB element deflate to about 64 kB.
    size = 64 << 20
    element = struct.pack("<HH2sHI", 0x0009, 0x0010, b"OB", 0, size)
    path = tmp_path / "bomb.dcm"
    _deflated_file(path, element + bytes(size))
    assert path.stat().st_size < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    assert (
        _category(path, limits=ResourceLimits(max_inflated_bytes=1 << 20)) == "over-resource-limit"
    )
    assert time.perf_counter() - start < 5.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # KiB


def test_deflate_bomb_with_a_long_or_lying_file_meta_is_still_stopped(tmp_path: Path) -> None:
    # The meta check reads a small head first; a meta padded past it (a long private
    # group 2 element before the Transfer Syntax UID) or a group length that lies must
    # still reach the bounded inflater, not pydicom's unbounded one.
    size = 16 << 20
    element = struct.pack("<HH2sHI", 0x0009, 0x0010, b"OB", 0, size)
    path = tmp_path / "bomb.dcm"
    _deflated_file(path, element + bytes(size))
    raw = path.read_bytes()
    padding = struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 8000) + bytes(8000)
    length_at = 128 + 4 + 8
    meta_start = length_at + 4
    # The padding goes first in group 2; the group length keeps its old (now short) value.
    lying = raw[:meta_start] + padding + raw[meta_start:]
    path.write_bytes(lying)
    limits = ResourceLimits(max_inflated_bytes=1 << 20)
    assert _category(path, limits=limits) == "over-resource-limit"


def test_deflate_file_under_the_limit_reads(tmp_path: Path) -> None:
    read_instance(pydicom_file("image_dfl.dcm"), decode_pixels=True)


def test_deep_sequence_nesting_is_refused(tmp_path: Path) -> None:
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    inner = Dataset()
    inner.CodeValue = "1"
    for _ in range(10):
        outer = Dataset()
        outer.ReferencedImageSequence = [inner]
        inner = outer
    ds.ReferencedImageSequence = [inner]
    path = tmp_path / "deep.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert _category(path, limits=ResourceLimits(max_sequence_depth=5)) == "over-resource-limit"
    read_instance(path, limits=ResourceLimits(max_sequence_depth=20))


def test_element_length_beyond_the_file_is_truncation(tmp_path: Path) -> None:
    raw = bytearray(pydicom_file("CT_small.dcm").read_bytes())
    # Patient's Name (0010,0010) PN: make its 2-byte length claim more than the file.
    index = raw.index(b"\x10\x00\x10\x00PN")
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    raw[index + 6 : index + 8] = struct.pack("<H", 0xFFF0)
    path = tmp_path / "long.dcm"
    path.write_bytes(bytes(raw[: index + 8 + 100]))
    assert _category(path) in (read_module.TRUNCATED, read_module.MISSING_UID)


def test_element_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    _claim("CT_small.dcm", path)
    assert _category(path, limits=ResourceLimits(max_element_bytes=1000)) == "over-resource-limit"


def test_limits_validate() -> None:
    with pytest.raises(ConfigError):
        ResourceLimits(max_frames=0)
    with pytest.raises(ConfigError):
        ResourceLimits(decode_timeout_s=0)
