"""The default temperature comes from the model card (chosen there by measurement)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cadp_med.model.checkpoint import save_model
from cadp_med.model.cinn import CINN
from cadp_med.model.conditions import default_schema
from cadp_med.pixels import PixelOptions, PixelStage
from cadp_med.pixels._options import card_temperature
from tests.model.test_cinn import SMALL

SCHEMA = default_schema()


def _model(tmp_path: Path, temperature: Any) -> Path:
    torch.manual_seed(0)
    model = CINN(SMALL).eval()
    defaults: dict[str, Any] = {"clip_l1": 10.0, "clip_l2": 1.0, "full": {}}
    if temperature is not None:
        defaults["temperature"] = {"value": temperature, "how_chosen": "test"}
    card = {"conditions": SCHEMA.to_dict(), "normalization": {}, "privacy_defaults": defaults}
    path = tmp_path / "m.safetensors"
    save_model(path, model, card)
    return path


@pytest.mark.parametrize(("in_card", "given", "used"), [
    (0.5, None, 0.5),   # no --temperature: the card's measured value
    (0.5, 1.0, 1.0),    # --temperature wins
    (0.5, 0.0, 0.0),    # an explicit 0 is a value, not "missing"
    (None, None, 1.0),  # an older card without one: the prior itself
])  # fmt: skip
def test_stage_uses_the_card_temperature_unless_given(
    tmp_path: Path, in_card: float | None, given: float | None, used: float
) -> None:
    path = _model(tmp_path, in_card)
    stage = PixelStage(PixelOptions(model=path, temperature=given))
    assert stage.options.temperature == used
    assert stage._base_config.temperature == used
    assert stage.options.to_dict()["temperature"] == used


def test_card_temperature_reads_value_or_defaults_to_one() -> None:
    assert card_temperature({"privacy_defaults": {"temperature": {"value": 0.7}}}) == 0.7
    assert card_temperature({"privacy_defaults": {}}) == 1.0
    assert card_temperature({}) == 1.0
