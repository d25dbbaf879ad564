"""``cadp-med train --preset v2`` and the flags of the new blocks, on a real NIfTI volume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel
import pytest
from typer.testing import CliRunner

from cadp_med.cli import app
from cadp_med.cli._train import _config
from cadp_med.model.checkpoint import load_model

ANATOMICAL = Path(os.path.dirname(nibabel.__file__)) / "tests" / "data" / "anatomical.nii"
TINY_V2 = [
    "--preset", "v2", "--size", "64", "--stages", "3", "--stage-blocks", "1,1,2",
    "--stage-widths", "8,8,16", "--fc-blocks", "1", "--fc-width", "32", "--cond-embed", "8",
    "--prior-width", "16", "--batch-size", "16", "--seed", "1", "--device", "cpu",
    "--heldout-fraction", "0.2", "--epochs", "1", "--modality", "MR", "--axes", "2",
]  # fmt: skip


def test_train_v2_writes_a_conditional_prior_model(tmp_path: Path) -> None:
    out = tmp_path / "v2.safetensors"
    result = CliRunner().invoke(app, ["train", str(ANATOMICAL), "-o", str(out), *TINY_V2, "--json"])
    assert result.exit_code == 0, result.output
    card = json.loads(result.output)
    arch = card["architecture"]
    assert arch["prior"] == "conditional" and arch["actnorm"] and arch["mixing"] == "conv1x1"
    assert arch["stage_blocks"] == [1, 1, 2] and arch["stage_widths"] == [8, 8, 16]
    assert card["latent"]["prior"] == "conditional"
    assert card["privacy_defaults"]["latent"] == "standardised"
    assert "learned prior" in card["training"]["dequantization"]
    history = card["training"]["history"]
    assert history[1]["heldout_bpd"] < history[0]["heldout_bpd"]  # one epoch helps
    model, _ = load_model(out)
    assert model.has_conditional_prior and model.cond_net is not None


def test_uniform_flags_replace_the_presets_per_stage_lists() -> None:
    config = _config("v2", 128, 18, {"blocks_per_stage": 3, "subnet_width": 40})
    assert config.stage_blocks == () and config.blocks_of(3) == 3 and config.width_of(0) == 40
    assert config.prior == "conditional"
    assert _config("v2", 128, 18, {"stages": 3}).stage_widths == ()
    assert _config("v1", 128, 18, {}).prior == "standard"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--preset", "v9", "unknown architecture preset"),
        ("--prior", "flat", "prior must be one of"),
        ("--stage-blocks", "2,x", "comma-separated integers"),
        ("--stage-widths", "32,32", "one value >= 1 per stage"),
    ],
)
def test_bad_architecture_flags_are_usage_errors(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    out = tmp_path / "bad.safetensors"
    result = CliRunner().invoke(app, ["train", str(ANATOMICAL), "-o", str(out), flag, value])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()
