"""``anonymize --pixels privatize`` with a conditional-prior model uses that prior.

A tiny v2-style model (ActNorm, 1x1 convolutions, condition network, conditional prior) is
trained for two epochs on real-derived slices.  Two twins share its flow weights: one
whose prior heads are zeroed (mu = 0, sigma = 1 for every c) and one saved with
``prior="standard"``.  Seeded runs on the same CT series then show that

* the stage reads the prior: the trained prior gives other pixels than the zeroed one;
* with a trivial prior the conditional path is exactly the standard one (same bytes).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
import torch

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.model.checkpoint import load_model, read_model_card, save_model
from cadp_med.model.cinn import CINN
from cadp_med.pixels import PixelOptions, PixelStage
from tests.conftest import SAMPLE_DATA, TEST_KEY
from tests.pixels.conftest import train_tiny_model

_DERIVED = {"architecture", "latent", "format", "cadp_med_version", "content_hash"}


def _train_conditional(out: Path) -> Path:
    from cadp_med.model import ModelConfig
    from cadp_med.model.conditions import default_schema

    schema = default_schema()
    config = ModelConfig.preset(
        "v2",
        size=32,
        cond_dim=schema.dim,
        stages=3,
        stage_blocks=(1, 1, 1),
        stage_widths=(8, 8, 8),
        fc_blocks=1,
        fc_width=64,
        cond_embed=8,
        prior_width=16,
    )
    return train_tiny_model(out, config)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("conditional")
    trained = _train_conditional(root / "trained.safetensors")
    model, _ = load_model(trained)
    card = {k: v for k, v in read_model_card(trained).items() if k not in _DERIVED}
    with torch.no_grad():
        for head in model.prior.heads:
            head.weight.zero_()
            head.bias.zero_()
    zeroed = root / "zeroed.safetensors"
    save_model(zeroed, model, card)
    flow = {k: v for k, v in model.state_dict().items() if not k.startswith("prior.")}
    standard = CINN(type(model.config).from_dict({**model.config.to_dict(), "prior": "standard"}))
    standard.load_state_dict(flow, strict=True)
    standard_path = root / "standard.safetensors"
    save_model(standard_path, standard, card)
    return {"trained": trained, "zeroed": zeroed, "standard": standard_path}


def _pixels(model: Path, out: Path) -> list[bytes]:
    stage = PixelStage(
        PixelOptions(
            model=model, device="cpu", seed=7, temperature=0.5, allow_outside_domain=True
        )
    )
    options = AnonymizeOptions(pixels="privatize", pixel_stage=stage)
    summary = anonymize_study(SAMPLE_DATA / "ct_small", out, key=TEST_KEY.encode(), options=options)
    assert summary.exit_code == 0
    return [pydicom.dcmread(p).PixelData for p in sorted(out.rglob("*.dcm"))]


def test_the_stage_privatizes_with_the_models_conditional_prior(
    models: dict[str, Path], tmp_path: Path
) -> None:
    trained = _pixels(models["trained"], tmp_path / "trained")
    zeroed = _pixels(models["zeroed"], tmp_path / "zeroed")
    standard = _pixels(models["standard"], tmp_path / "standard")
    assert trained and len(trained) == len(zeroed) == len(standard)
    assert trained != zeroed  # the learned mu(c), sigma(c) reach the mechanism
    assert zeroed == standard  # a trivial prior is exactly the N(0, I) path
