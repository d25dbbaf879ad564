"""The shipped default model, when present: budget, card and exact inversion."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
import torch

from cadp_med.model.checkpoint import load_model, read_model_card
from cadp_med.model.conditions import ConditionSchema
from tests.model._slices import real_batch

DEFAULT = Path(str(resources.files("cadp_med") / "model" / "default" / "model.safetensors"))
pytestmark = pytest.mark.skipif(not DEFAULT.is_file(), reason="no default model shipped yet")

CARD_KEYS = {
    "format", "cadp_med_version", "architecture", "conditions", "normalization", "latent",
    "privacy_defaults", "training", "heldout_bits_per_dim", "content_hash",
}  # fmt: skip


def test_default_model_budget_and_card() -> None:
    assert DEFAULT.stat().st_size <= 25_000_000
    card = read_model_card(DEFAULT)
    assert CARD_KEYS <= set(card)
    defaults = card["privacy_defaults"]
    assert {"full", "release", "how_chosen"} <= set(defaults)
    assert card["latent"]["default_release"]["stop"] == card["latent"]["dim"]


def test_default_model_inverts_real_slices() -> None:
    model, card = load_model(DEFAULT)
    schema = ConditionSchema.from_dict(card["conditions"])
    x, meta = real_batch(model.config.size)
    c = torch.from_numpy(schema.encode_batch(meta))
    with torch.no_grad():
        z, log_det = model.encode(x, c)
        x_rec, log_det_rev = model.decode_with_logdet(z, c)
    assert float((x_rec - x).abs().max()) < 1e-4
    assert float(((log_det + log_det_rev).abs() / log_det.abs()).max()) < 1e-5
