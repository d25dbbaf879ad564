"""Shared fixtures: a test key, copies of the sample studies, and real test files.

pydicom's ``get_testdata_file``/``get_testdata_files`` may try a network download
for names that are not installed (and hang on retries), so files are located by
path in pydicom's ``test_files`` and pydicom-data's ``data_store/data`` instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pydicom
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "sample_data"
PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
TEST_KEY = "cadp-med-test-key"


@contextmanager
def pipeline_script(name: str) -> Iterator[ModuleType]:
    """``pipelines/<name>.py`` imported as a module for the duration of the block.

    Registered in ``sys.modules`` while it runs: dataclasses look their module up there
    while the class is created.
    """
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "pipelines" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def pydicom_file(name: str) -> Path:
    """Return a test file of pydicom or, failing that, of pydicom-data (never downloads)."""
    path = PYDICOM_TEST_FILES / name
    if path.is_file():
        return path
    return pydicom_data_file(name)


def pydicom_data_file(name: str) -> Path:
    """Return a file of the pydicom-data package, skipping the test when absent."""
    data_store = pytest.importorskip("data_store")
    path = Path(data_store.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"pydicom-data file {name} is not installed")
    return path


def tree_hashes(root: Path) -> dict[str, str]:
    """Return {relative path: sha256} of every file under ``root``."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def test_key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Set CADP_MED_KEY for the test and return the key bytes."""
    monkeypatch.setenv("CADP_MED_KEY", TEST_KEY)
    return TEST_KEY.encode()


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure no key is configured."""
    monkeypatch.delenv("CADP_MED_KEY", raising=False)


@pytest.fixture
def sample_study(tmp_path: Path):
    """Return a function that copies ``sample_data/<name>`` into ``tmp_path/in/<name>``."""

    def copy(name: str) -> Path:
        target = tmp_path / "in" / name
        shutil.copytree(SAMPLE_DATA / name, target)
        return target

    return copy


@pytest.fixture
def dicomdir_tests() -> Path:
    """pydicom's dicomdirtests folder (three patients with a DICOMDIR)."""
    return PYDICOM_TEST_FILES / "dicomdirtests"
