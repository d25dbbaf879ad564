"""Real NIfTI volumes for the NIfTI tests, and a model for the privatize test."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pytest

NIBABEL_DATA = Path(os.path.dirname(nibabel.__file__)) / "tests" / "data"
ITK_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")
KEY = b"nifti-test-key-0123456789"
# Planted identifiers: none may appear in any output byte or name.
PHI = {
    "PatientName": "Plantedname^Zelda",
    "PatientID": "PLANTED-ID-4711",
    "InstitutionName": "Planted General Hospital",
    "AcquisitionDateTime": "2019-03-14T09:26:53.589",
    "StudyInstanceUID": "1.2.826.0.1.3680043.99.4711",
    "DeviceSerialNumber": "SN-PLANTED-99",
}
DESCRIP = b"Plantedname Zelda 2019-03-14"


@pytest.fixture
def bids_study(tmp_path: Path) -> Path:
    """A BIDS-like folder: anatomical.nii with planted PHI in descrip and the sidecar."""
    root = tmp_path / "study"
    anat = root / "sub-01" / "anat"
    anat.mkdir(parents=True)
    image = nibabel.load(str(NIBABEL_DATA / "anatomical.nii"))
    header = image.header.copy()
    header["descrip"] = DESCRIP
    header["aux_file"] = b"Zelda.aux"
    out = nibabel.Nifti1Image(np.asanyarray(image.dataobj), image.affine, header=header)
    nibabel.save(out, str(anat / "sub-01_T1w.nii"))
    sidecar = {
        **PHI,
        "Modality": "MR",
        "EchoTime": 0.00296,
        "RepetitionTime": 2.3,
        "FlipAngle": 9,
        "PatientSex": "F",
        "Manufacturer": "Siemens",
    }
    (anat / "sub-01_T1w.json").write_text(json.dumps(sidecar), encoding="utf-8")
    return root


@pytest.fixture
def copy_volume(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copy a data file into a fresh input folder, optionally with a new affine."""

    def copy(source: Path, name: str, affine: np.ndarray | None = None) -> Path:
        folder = tmp_path / ("in-" + name.split(".")[0])
        folder.mkdir(exist_ok=True)
        target = folder / name
        if affine is None:
            shutil.copy(source, target)
        else:
            image = nibabel.load(str(source))
            data = np.asanyarray(image.dataobj)
            nibabel.save(nibabel.Nifti1Image(data, affine), str(target))
        return folder

    return copy


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model, or the tiny one of the pixel tests."""
    from cadp_med.pixels import DEFAULT_MODEL_PATH
    from tests.pixels.conftest import train_tiny_model

    if DEFAULT_MODEL_PATH.is_file() and not os.environ.get("CADP_MED_TEST_TINY_MODEL"):
        return DEFAULT_MODEL_PATH
    return train_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")
