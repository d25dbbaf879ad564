"""Header-only de-identification (keep, blank): pixels checked from bytes and streamed."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array
from typer.testing import CliRunner

from cadp_med import AnonymizeOptions, ConfigError, anonymize_study
from cadp_med.cli import app
from tests.conftest import REPO_ROOT, pydicom_file

KEEP = AnonymizeOptions(pixels="keep", allow_burned_in=True)


def outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def bare(source: str, target: Path, uid: str | None = None) -> Path:
    """``source`` rewritten with neither preamble nor File Meta, in its own encoding."""
    ds = pydicom.dcmread(pydicom_file(source))
    if uid is not None:
        ds.SOPInstanceUID = uid
    syntax = ds.file_meta.TransferSyntaxUID
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    buffer = io.BytesIO()
    pydicom.dcmwrite(
        buffer,
        ds,
        implicit_vr=syntax.is_implicit_VR,
        little_endian=syntax.is_little_endian,
        enforce_file_format=False,
    )
    data = buffer.getvalue()
    assert data[128:132] != b"DICM" and b"\x02\x00\x10\x00" not in data[:256]
    target.write_bytes(data)
    return target


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("MR_small_implicit.dcm", None),  # implicit VR little endian
        ("CT_small.dcm", None),  # explicit VR little endian
        ("MR_small_bigendian.dcm", ">i2"),  # explicit VR big endian
    ],
)
def test_file_without_file_meta_is_processed(
    tmp_path: Path, test_key: bytes, name: str, dtype: str | None
) -> None:
    study = tmp_path / "in"
    study.mkdir()
    path = bare(name, study / "bare")
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=KEEP)
    assert (summary.written, summary.quarantined) == (1, 0), summary.quarantine_reasons
    [written] = outputs(summary.output)
    result = pydicom.dcmread(written)
    source = pydicom.dcmread(path, force=True)
    assert result.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    if dtype is None:
        assert result.PixelData == source.PixelData  # byte for byte
    else:
        # Written little endian: the same values, each word's bytes swapped.
        values = np.frombuffer(source.PixelData, dtype=dtype)
        assert np.array_equal(np.frombuffer(result.PixelData, dtype="<i2"), values)
        assert np.array_equal(result.pixel_array.ravel(), values)


def test_files_without_file_meta_go_through_worker_processes(
    tmp_path: Path, test_key: bytes
) -> None:
    # Their datasets hold values pydicom cannot pickle; workers write their own outputs
    # and hand back only where, so nothing of the dataset crosses processes.
    study = tmp_path / "in"
    study.mkdir()
    for number, name in enumerate(
        ("MR_small_implicit.dcm", "CT_small.dcm", "MR_small_bigendian.dcm")
    ):
        bare(name, study / name, uid=f"1.2.826.0.1.3680043.8.498.{number + 1}")
    # pydicom-data's palette image ships without File Meta; its LUTs (ambiguous VR) are
    # the values that cannot be pickled.
    shutil.copyfile(pydicom_file("OT-PAL-8-face.dcm"), study / "palette")
    keep = AnonymizeOptions(pixels="keep", allow_burned_in=True)  # the palette image says so
    one = anonymize_study(study, tmp_path / "one", key=test_key, options=keep)
    two = anonymize_study(
        study, tmp_path / "two", key=test_key, options=dataclasses.replace(keep, workers=2)
    )
    assert (two.written, two.quarantined) == (4, 0), two.quarantine_reasons
    assert [p.relative_to(one.output) for p in outputs(one.output)] == [
        p.relative_to(two.output) for p in outputs(two.output)
    ]
    for path in outputs(one.output):
        assert (
            pydicom.dcmread(path).PixelData
            == pydicom.dcmread(two.output / path.relative_to(one.output)).PixelData
        )
    assert not [p for p in two.output.rglob(".tmp-*")]


def undecodable_j2k(path: Path) -> Path:
    """Valid encapsulation around a first frame that no decoder reads."""
    ds = pydicom.dcmread(pydicom_file("emri_small_jpeg_2k_lossless.dcm"))
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    frames[0] = b"\x00" * len(frames[0])
    ds.PixelData = encapsulate(frames)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_keep_does_not_decode_and_decode_is_opt_in(tmp_path: Path, test_key: bytes) -> None:
    study = tmp_path / "in"
    study.mkdir()
    path = undecodable_j2k(study / "x.dcm")
    summary = anonymize_study(study, tmp_path / "a", key=test_key, options=KEEP)
    assert summary.written == 1, summary.quarantine_reasons
    [written] = outputs(summary.output)
    assert pydicom.dcmread(written).PixelData == pydicom.dcmread(path).PixelData
    decode = AnonymizeOptions(pixels="keep", validate_pixels="decode", decode_isolation="inline")
    summary = anonymize_study(study, tmp_path / "b", key=test_key, options=decode)
    assert summary.quarantine_reasons == {"pixel-data-not-decodable": 1}


def test_broken_structure_is_quarantined_under_keep(tmp_path: Path, test_key: bytes) -> None:
    study = tmp_path / "in"
    study.mkdir()
    raw = bytearray(pydicom_file("MR_small_jp2klossless.dcm").read_bytes())
    fragment = raw.rfind(b"\xe0\x7f\x10\x00") + 20  # after an empty Basic Offset Table
    struct.pack_into("<L", raw, fragment + 4, struct.unpack_from("<L", raw, fragment + 4)[0] + 64)
    (study / "fragment").write_bytes(bytes(raw))
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.Rows = 256  # twice the rows the data hold
    ds.save_as(study / "short", enforce_file_format=True)
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=KEEP)
    assert summary.quarantine_reasons == {"pixel-data-length-mismatch": 2}
    assert summary.written == 0


def big_j2k(path: Path, frames: int, uid: str) -> Path:
    ds = pydicom.dcmread(pydicom_file("emri_small_jpeg_2k_lossless.dcm"))
    real = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    ds.PixelData = encapsulate([real[i % len(real)] for i in range(frames)])
    ds.NumberOfFrames = frames
    ds.SOPInstanceUID = uid
    ds.save_as(path, enforce_file_format=True)
    return path


def test_streamed_multi_frame_keep_and_blank(tmp_path: Path, test_key: bytes) -> None:
    study = tmp_path / "in"
    study.mkdir()
    sources = [big_j2k(study / f"{i}.dcm", 400, f"1.2.3.4.{i}") for i in range(2)]
    keep = AnonymizeOptions(pixels="keep", workers=2)  # datasets cross processes
    summary = anonymize_study(study, tmp_path / "keep", key=test_key, options=keep)
    assert summary.written == 2, summary.quarantine_reasons
    originals = {pydicom.dcmread(p).PixelData for p in sources}
    written = [pydicom.dcmread(p) for p in outputs(summary.output)]
    assert {ds.PixelData for ds in written} == originals
    assert {ds.file_meta.TransferSyntaxUID for ds in written} == {pydicom.uid.JPEG2000Lossless}
    frame = pixel_array(outputs(summary.output)[0], index=10)  # frame 10 repeats frame 0
    assert np.array_equal(frame, pixel_array(sources[0], index=0))

    blank = AnonymizeOptions(pixels="blank")
    summary = anonymize_study(study, tmp_path / "blank", key=test_key, options=blank)
    assert summary.written == 2
    result = pydicom.dcmread(outputs(summary.output)[0])
    assert result.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert result.pixel_array.shape == (400, 64, 64) and not result.pixel_array.any()


_RSS_SCRIPT = """
import json, resource, shutil, sys
from pathlib import Path
from cadp_med import AnonymizeOptions, anonymize_study

work, warm = Path(sys.argv[1]), Path(sys.argv[2])
key = b"k" * 32
# A first small file imports and builds what every file needs.
anonymize_study(warm, work / "warm-out", key=key, options=AnonymizeOptions(pixels="keep"))
rises = {}
for mode in ("keep", "blank"):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    options = AnonymizeOptions(pixels=mode)
    summary = anonymize_study(work / "in", work / mode, key=key, options=options)
    assert summary.written == 1, summary.quarantine_reasons
    rises[mode] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps(rises))
"""


def test_2000_frame_file_keeps_memory_far_below_its_size(tmp_path: Path) -> None:
    """2,000 frames of 256 x 256 x 16 bits (250 MiB) through keep and blank."""
    source = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    frame = np.tile(source.pixel_array, (4, 4)).astype("<i2").tobytes()  # a real image
    frames = 2000
    ds = source.copy()
    del ds.PixelData
    ds.Rows = ds.Columns = 256
    ds.NumberOfFrames = frames
    header = io.BytesIO()
    ds.save_as(header, enforce_file_format=True)
    (tmp_path / "in").mkdir()
    with open(tmp_path / "in" / "big.dcm", "wb") as stream:  # written without holding it
        stream.write(header.getvalue())
        stream.write(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(frame) * frames))
        for _ in range(frames):
            stream.write(frame)
    (tmp_path / "warm").mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), tmp_path / "warm")
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path), str(tmp_path / "warm")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    rises = json.loads(done.stdout.strip().splitlines()[-1])
    decoded = len(frame) * frames
    print(f"peak RSS rise: {rises} bytes for {decoded} bytes of pixel data")
    assert rises["keep"] < decoded / 10, rises
    assert rises["blank"] < decoded / 10, rises
    [kept] = outputs(tmp_path / "keep")
    with open(kept, "rb") as out, open(tmp_path / "in" / "big.dcm", "rb") as original:
        out.seek(-decoded, 2)
        original.seek(-decoded, 2)
        while chunk := original.read(1 << 24):
            assert out.read(1 << 24) == chunk


def test_validate_pixels_option_and_cli_flag(tmp_path: Path, test_key: bytes) -> None:
    with pytest.raises(ConfigError, match="structure, decode"):
        AnonymizeOptions(validate_pixels="full")  # type: ignore[arg-type]
    study = tmp_path / "in"
    study.mkdir()
    undecodable_j2k(study / "x.dcm")
    runner = CliRunner()
    args = ["anonymize", str(study), "--pixels", "keep", "--allow-burned-in", "--json"]
    kept = runner.invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert kept.exit_code == 0, kept.output
    decoded = runner.invoke(app, [*args, "-o", str(tmp_path / "b"), "--validate-pixels", "decode"])
    assert decoded.exit_code == 1, decoded.output
    summary = json.loads(decoded.output)
    assert summary["quarantine_reasons"] == {"pixel-data-not-decodable": 1}


def big_endian_multi_frame(path: Path, name: str, frames: int, tile: int) -> Path:
    """A real big endian image, tiled, over ``frames`` frames (over the deferral size)."""
    ds = pydicom.dcmread(pydicom_file(name))
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRBigEndian
    image = ds.pixel_array
    image = np.tile(image, (tile, tile) + (1,) * (image.ndim - 2))
    ds.Rows, ds.Columns = image.shape[:2]
    array = np.repeat(image[None], frames, axis=0)
    data = array.astype(array.dtype.newbyteorder(">")).tobytes()
    if ds.BitsAllocated == 8 and ds["PixelData"].VR == "OW":
        # 8-bit values encoded as OW: big endian 16-bit words of two values each.
        data += bytes(len(data) % 2)
        data = np.frombuffer(data, "<u2").astype(">u2").tobytes()
    ds.NumberOfFrames = frames
    ds.PixelData = data
    ds.add_new(0x00291010, "OB", b"\x01" * (2 << 20))  # a large element besides pixels
    ds.add_new(0x00290010, "LO", "A CREATOR")
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("name", "frames", "tile"),
    # 16-bit words; 8-bit RGB as OW, 9 x 9 x 3 x 4321 frames: an odd byte count
    [("MR_small_bigendian.dcm", 200, 1), ("SC_rgb_small_odd_big_endian.dcm", 4321, 3)],
)
def test_streamed_big_endian_is_written_little_endian(
    tmp_path: Path, test_key: bytes, name: str, frames: int, tile: int
) -> None:
    study = tmp_path / "in"
    study.mkdir()
    path = big_endian_multi_frame(study / "be.dcm", name, frames, tile)
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=KEEP)
    assert summary.written == 1, summary.quarantine_reasons
    result = pydicom.dcmread(outputs(summary.output)[0])
    assert result.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(result.pixel_array, pydicom.dcmread(path).pixel_array)
