"""Fixtures of the batch tests: a set of real studies, output comparison, a Ray session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pydicom.data
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _test_files_root() -> Path:
    # get_testdata_files only globs installed files: it never downloads.
    return Path(pydicom.data.get_testdata_files("CT_small.dcm")[0]).parent


@pytest.fixture
def study_set(tmp_path: Path) -> Path:
    """Four study folders from pydicom's test files (names carry no header value)."""
    root = _test_files_root()
    studies = tmp_path / "studies"
    for name, patient in (
        ("study-a", "77654033"),
        ("study-b", "98892001"),
        ("study-c", "98892003"),
    ):
        shutil.copytree(root / "dicomdirtests" / patient, studies / name)
    (studies / "study-d").mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(root / name, studies / "study-d" / name)
    return studies


def phi_values(folder: Path) -> set[str]:
    """PatientName and PatientID values of every DICOM file under ``folder``."""
    values: set[str] = set()
    for path in folder.rglob("*"):
        if path.is_file():
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            for keyword in ("PatientName", "PatientID"):
                value = str(ds.get(keyword, "") or "")
                if len(value) >= 4:
                    values.add(value)
    return values


def instance_bytes(out: Path) -> dict[str, bytes]:
    """{relative path: file bytes} of every .dcm under ``out``, with the one
    timestamp the de-identifier writes (ContributionDateTime, the moment of
    de-identification) masked, so that two runs can be compared byte for byte."""
    result: dict[str, bytes] = {}
    for path in sorted(out.rglob("*.dcm")):
        raw = path.read_bytes()
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for item in ds.get("ContributingEquipmentSequence", []):
            stamp = str(item.get("ContributionDateTime", ""))
            if stamp:
                assert raw.count(stamp.encode()) >= 1
                raw = raw.replace(stamp.encode(), b"0" * len(stamp))
        result[path.relative_to(out).as_posix()] = raw
    return result


def stray_files(out: Path) -> list[str]:
    """Files under ``out`` that are neither instances nor batch bookkeeping."""
    expected = {"audit.jsonl", "manifest.sqlite", "manifest.sqlite.lock"}
    return [
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.suffix != ".dcm" and p.name not in expected
    ]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local Ray instance with 2 CPUs for the module; workers can import ``tests``."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'cadp-med[ray]')")
    saved = os.environ.get("PYTHONPATH")
    # Workers inherit the environment of the Ray instance started here, so they can
    # unpickle the fault-injection runner of tests/batch/_faults.py.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), saved]))
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
