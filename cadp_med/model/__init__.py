"""The conditional INN of CADP, its condition schemas and checkpoints.

torch and FrEIA are imported only when a model is built or loaded: the names from
``cinn`` are resolved lazily, and ``read_model_card`` never imports torch.
"""

from __future__ import annotations

from typing import Any

from cadp_med.model.checkpoint import load_model, read_model_card, save_model
from cadp_med.model.conditions import (
    ConditionField,
    ConditionSchema,
    default_schema,
    metadata_from_dataset,
)

_LAZY = {"CINN", "LatentBlock", "ModelConfig", "build_cinn"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from cadp_med.model import cinn

        return getattr(cinn, name)
    raise AttributeError(name)


__all__ = [
    "CINN",
    "ConditionField",
    "ConditionSchema",
    "LatentBlock",
    "ModelConfig",
    "build_cinn",
    "default_schema",
    "load_model",
    "metadata_from_dataset",
    "read_model_card",
    "save_model",
]
