"""Shared helpers of the hardening tests: pydicom's own test files, found by listing."""

from __future__ import annotations

from pathlib import Path

import pydicom.data
import pytest


def pydicom_file(name: str) -> Path:
    """Return an installed pydicom test file by name (skip the test if it is absent)."""
    for found in pydicom.data.get_testdata_files():
        if Path(found).name == name:
            return Path(found)
    pytest.skip(f"pydicom test file {name} is not installed")


KEY = b"hardening-test-key-0123456789abc"
