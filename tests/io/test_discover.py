from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom

from cadp_med.io.discover import (
    SKIP_DICOMDIR,
    SKIP_NOT_DICOM,
    SKIP_SYMLINK_OUTSIDE,
    SKIP_SYMLINKED_FOLDER,
    looks_like_dicom,
    scan,
)
from tests.conftest import SAMPLE_DATA, pydicom_file


def write_bare(source: Path, target: Path, *, implicit: bool) -> None:
    """Write ``source`` without preamble and File Meta Information."""
    ds = pydicom.dcmread(source)
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(
        target, ds, enforce_file_format=False, implicit_vr=implicit, little_endian=True
    )


def test_odd_layout_found_by_content_not_name(tmp_path: Path) -> None:
    deep = tmp_path / "a b" / "ünïcode" / "x"
    deep.mkdir(parents=True)
    shutil.copy(pydicom_file("CT_small.dcm"), deep / "IMG0001")  # no extension
    shutil.copy(pydicom_file("MR_small.dcm"), tmp_path / "weird.name.txt")
    (tmp_path / "notes.txt").write_text("hello, not DICOM")
    shutil.copy(SAMPLE_DATA / "multi_series" / "DICOMDIR", tmp_path / "DICOMDIR")

    result = scan(tmp_path)

    assert [f.path for f in result.files] == sorted(
        [deep / "IMG0001", tmp_path / "weird.name.txt"], key=str
    )
    assert all(f.size == f.path.stat().st_size for f in result.files)
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons == {"notes.txt": SKIP_NOT_DICOM, "DICOMDIR": SKIP_DICOMDIR}


def test_renamed_dicomdir_is_still_skipped(tmp_path: Path) -> None:
    shutil.copy(SAMPLE_DATA / "multi_series" / "DICOMDIR", tmp_path / "index.dcm")
    result = scan(tmp_path)
    assert result.files == []
    assert [s.reason for s in result.skipped] == [SKIP_DICOMDIR]


def test_files_without_preamble_are_detected(tmp_path: Path) -> None:
    write_bare(pydicom_file("CT_small.dcm"), tmp_path / "implicit", implicit=True)
    write_bare(pydicom_file("MR_small.dcm"), tmp_path / "explicit", implicit=False)
    assert (tmp_path / "implicit").read_bytes()[128:132] != b"DICM"
    assert looks_like_dicom(tmp_path / "implicit")
    assert looks_like_dicom(tmp_path / "explicit")
    assert [f.path.name for f in scan(tmp_path).files] == ["explicit", "implicit"]


def test_random_bytes_are_not_dicom(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(os.urandom(4096))
    (tmp_path / "short").write_bytes(b"\x08\x00")
    assert not looks_like_dicom(tmp_path / "blob")
    assert scan(tmp_path).files == []


def test_empty_and_dcm_named_junk_go_to_the_reader(tmp_path: Path) -> None:
    # They must be quarantined (visible), not silently skipped.
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all " * 40)
    assert sorted(f.path.name for f in scan(tmp_path).files) == ["empty", "junk.dcm"]


def test_symlinks_out_of_the_tree_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), outside / "secret.dcm")
    root = tmp_path / "study"
    root.mkdir()
    shutil.copy(pydicom_file("MR_small.dcm"), root / "inside.dcm")
    (root / "link.dcm").symlink_to(outside / "secret.dcm")
    (root / "linked_folder").symlink_to(outside, target_is_directory=True)
    (root / "inner_link.dcm").symlink_to(root / "inside.dcm")

    result = scan(root)

    assert sorted(f.path.name for f in result.files) == ["inner_link.dcm", "inside.dcm"]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons == {"link.dcm": SKIP_SYMLINK_OUTSIDE, "linked_folder": SKIP_SYMLINKED_FOLDER}


def test_pydicom_dicomdir_tree(dicomdir_tests: Path) -> None:
    result = scan(dicomdir_tests)
    # 31 instances in the three patient folders; every DICOMDIR variant is skipped.
    assert sum(1 for f in result.files if f.path.parent.parent.name.isdigit()) == 31
    assert {s.path.name for s in result.skipped if s.reason == SKIP_DICOMDIR} >= {
        "DICOMDIR",
        "DICOMDIR-implicit",
        "DICOMDIR-reordered",
    }
