"""Locations of the real test data that the installed packages ship."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pydicom_test_files() -> Path:
    import pydicom

    # Never call get_testdata_files with a broad pattern: it tries to download missing files.
    return Path(os.path.dirname(pydicom.__file__)) / "data" / "test_files"


@pytest.fixture(scope="session")
def pydicom_data_files() -> Path:
    """The pydicom-data package's folder (found offline by pydicom's data manager)."""
    data_store = pytest.importorskip("data_store", reason="pydicom-data is not installed")
    path = Path(os.path.dirname(data_store.__file__)) / "data"
    if not path.is_dir():
        pytest.skip("pydicom-data has no data folder")
    return path


@pytest.fixture(scope="session")
def nibabel_data() -> Path:
    import nibabel

    return Path(os.path.dirname(nibabel.__file__)) / "tests" / "data"
