"""``cadp-med anonymize --pixels keep`` loads none of the pixel model's heavy modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import pydicom_file

# What header work never needs: the model (torch, FrEIA), imaging toolkits, plotting,
# networking and distribution, the rich console (non-tty runs print plain text), and
# pydantic (nothing here validates with it).
HEAVY = (
    "torch",
    "FrEIA",
    "monai",
    "SimpleITK",
    "matplotlib",
    "pynetdicom",
    "ray",
    "sklearn",
    "scipy",
    "rich",
    "nibabel",
    "pydantic",  # typer >= 0.29 imports it at start; pyproject keeps typer below
)

_PROBE = """
import json, sys
from cadp_med.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_header_only_anonymize_imports_no_heavy_module(tmp_path: Path) -> None:
    study = tmp_path / "in"
    study.mkdir()
    (study / "ct.dcm").write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "anonymize", str(study), "-o", str(out),
         "--pixels", "keep", "--ephemeral-key", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr[-2000:]
    assert len(list(out.rglob("*.dcm"))) == 1  # the run did its work
    loaded = {name.split(".")[0] for name in report["modules"]} & set(HEAVY)
    assert not loaded, f"header-only anonymize imported {sorted(loaded)}"
    # The DP model's stage and the NIfTI path are not header work either.
    not_header_work = ("cadp_med.pixels", "cadp_med.nifti")
    own = {name for name in report["modules"] if name.startswith(not_header_work)}
    assert not own, f"header-only anonymize imported {sorted(own)}"
