"""``cadp-med train`` end to end on a real NIfTI volume (needs cadp_med.imaging)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel
import pytest
from typer.testing import CliRunner

from cadp_med.cli import app
from cadp_med.model.checkpoint import load_model, read_model_card

try:
    from cadp_med import imaging
except ImportError:  # pragma: no cover - the imaging package is built concurrently
    imaging = None
needs_imaging = pytest.mark.skipif(
    not hasattr(imaging, "load_slice_set"), reason="cadp_med.imaging.load_slice_set not landed yet"
)

ANATOMICAL = Path(os.path.dirname(nibabel.__file__)) / "tests" / "data" / "anatomical.nii"
SMALL_ARCH = [
    "--size", "64", "--stages", "3", "--blocks-per-stage", "1", "--subnet-width", "8",
    "--fc-blocks", "1", "--fc-width", "32", "--batch-size", "16", "--seed", "1",
    "--device", "cpu", "--heldout-fraction", "0.2",
]  # fmt: skip


def _invoke(*args: str) -> object:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    return result


@needs_imaging
def test_train_from_nifti_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    result = _invoke(str(ANATOMICAL), "-o", str(out), "--epochs", "1", "--modality", "MR",
                     *SMALL_ARCH, "--json")  # fmt: skip
    card = json.loads(result.output)
    assert read_model_card(out) == card
    assert card["training"]["sources"] == ["anatomical.nii"]
    assert card["training"]["n_train"] + card["training"]["n_heldout"] >= 20
    assert card["conditions"]["fields"][0]["name"] == "modality"
    assert set(card["training"]["counts"]["plane"]) <= {"axial", "coronal", "sagittal", "unknown"}
    assert card["normalization"]  # handed through from cadp_med.imaging
    model, _ = load_model(out)
    assert model.config.size == 64

    again = _invoke(str(ANATOMICAL), "-o", str(out), "--epochs", "2", "--modality", "MR",
                    *SMALL_ARCH, "--resume", "--json")  # fmt: skip
    history = json.loads(again.output)["training"]["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert history[1] == card["training"]["history"][1]  # epoch 1 came from the checkpoint


@needs_imaging
def test_train_from_prepared_slice_set(tmp_path: Path) -> None:
    slice_set = imaging.load_slice_set([ANATOMICAL], size=64, modality="MR")  # type: ignore[union-attr]
    npz = tmp_path / "set.npz"
    slice_set.save(npz)
    out = tmp_path / "p.safetensors"
    result = _invoke(str(npz), "-o", str(out), "--epochs", "1", "--conditions", "plane,slice_pos",
                     *SMALL_ARCH, "--augment", "--seed", "3", "--json")  # fmt: skip
    card = json.loads(result.output)
    assert [f["name"] for f in card["conditions"]["fields"]] == ["plane", "slice_pos"]
    augmentation = card["training"]["augmentation"]
    assert augmentation["seed"] == 3 and augmentation["rotate_deg"] > 0
    assert card["training"]["n_train"] + card["training"]["n_heldout"] == len(slice_set.x)


def test_unknown_condition_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", str(ANATOMICAL), "-o", str(tmp_path / "x.safetensors"),
              "--conditions", "modality,shoe_size"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "shoe_size" in result.output
