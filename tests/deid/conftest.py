"""Fixtures for the de-identification tests: keys, corpora on disk, a tree runner."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset

from cadp_med.deid import Deidentifier, Profile
from cadp_med.testing.phi_corpus import make_phi_corpus

KEY = b"test-key-0123456789abcdef0123456"
SITE = Path(pydicom.__file__).resolve().parents[1]
DICOGNITO_CANDIDATES = [
    Path(os.environ.get("DICOGNITO_ORIG_DATA", "/nonexistent")),
    Path("/tmp/dicognito_src/dicognito-0.19.0/tests/orig_data"),
]


def write_output(ds: pydicom.Dataset, source: pydicom.Dataset, path: Path) -> None:
    """Write a de-identified dataset with new file meta, as the io writer does."""
    meta = FileMetaDataset()
    syntax = getattr(getattr(source, "file_meta", None), "TransferSyntaxUID", None)
    meta.TransferSyntaxUID = syntax or pydicom.uid.ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", pydicom.uid.generate_uid())
    ds.file_meta = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def run_tree(
    files: Iterable[Path], root: Path, out: Path, deid: Deidentifier
) -> tuple[int, list[str]]:
    """De-identify every readable file under ``root`` into ``out`` (numbered names).

    Returns the number written and the files that failed to de-identify or write.
    """
    written, failures = 0, []
    for index, path in enumerate(sorted(files)):
        try:
            source = pydicom.dcmread(path, force=True)
        except Exception:
            continue
        if "SOPClassUID" not in source and "PatientID" not in source:
            continue  # DICOMDIRs and fragments are not instances
        try:
            result = deid(source)
            write_output(result.dataset, source, out / f"{index:05d}.dcm")
            pydicom.dcmread(out / f"{index:05d}.dcm")
            written += 1
        except Exception as exc:  # collected so one test reports every failure
            failures.append(f"{path.relative_to(root)}: {type(exc).__name__}: {exc}")
    return written, failures


@pytest.fixture(scope="session")
def key() -> bytes:
    return KEY


@pytest.fixture(scope="session")
def phi_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("phi") / "orig"
    make_phi_corpus(root, n_patients=3, seed=1)
    return root


@pytest.fixture(scope="session")
def dicognito_data() -> Path:
    for candidate in DICOGNITO_CANDIDATES:
        if candidate.is_dir():
            return candidate
    pytest.skip(
        "dicognito's tests/orig_data not found: pip download --no-deps --no-binary :all: "
        "dicognito==0.19.0 -d /tmp/dicognito_src and unpack it, or set DICOGNITO_ORIG_DATA"
    )


def deidentify(profile: Profile = Profile(), key: bytes = KEY, **kwargs: object) -> Deidentifier:
    return Deidentifier(profile, key, **kwargs)  # type: ignore[arg-type]


sys.modules.setdefault("deid_conftest", sys.modules[__name__])
