"""Privatized outputs validate with dciodvfy without errors the input did not have."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.pixels import PixelOptions, PixelStage
from tests.conftest import SAMPLE_DATA, TEST_KEY, pydicom_data_file

FILES = ("693_UNCR.dcm", "US1_UNCR.dcm", "OBXXXX1A_2frame.dcm", "RG1_UNCR.dcm")


def _errors(path: Path) -> set[str]:
    done = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    lines = (done.stdout + done.stderr).splitlines()
    # Values differ between input and output (pseudonyms); compare the messages only.
    return {re.sub(r"<[^>]*>\s*$", "", line) for line in lines if line.startswith("Error")}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy is not installed")
@pytest.mark.parametrize("name", ("CT_small.dcm", *FILES))
def test_no_new_dciodvfy_errors(tmp_path: Path, model_path: Path, name: str) -> None:
    source = SAMPLE_DATA / "ct_small" / name if name == "CT_small.dcm" else pydicom_data_file(name)
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(source, src / name)
    # US, CR and a head CT without Body Part Examined are outside the packaged model's
    # domains: this test is about the IOD, so it lets them through.
    stage = PixelStage(PixelOptions(model=model_path, device="cpu", allow_outside_domain=True))
    options = AnonymizeOptions(pixel_stage=stage)
    summary = anonymize_study(src, tmp_path / "out", key=TEST_KEY.encode(), options=options)
    assert summary.written == 1
    output = next((tmp_path / "out").rglob("*.dcm"))
    new = _errors(output) - _errors(src / name)
    assert not new, sorted(new)
