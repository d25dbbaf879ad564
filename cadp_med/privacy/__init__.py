"""Per-image differential privacy for CADP latents.

A conditional INN maps each slice x, given metadata c, to a latent z.  This package
clips z *per image*, adds calibrated noise on a fixed released subspace, post-processes
the release under the N(0, I) prior and accounts for the loss per slice and per study.

Public names are loaded lazily so that ``cadp-med privacy-report`` (which needs only
the configuration, calibration and accounting) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MechanismConfig": "_config",
    "MechanismKind": "_config",
    "PostProcess": "_config",
    "analytic_gaussian_sigma": "_calibration",
    "noise_scale": "_calibration",
    "clip_l1": "_clip",
    "clip_l2": "_clip",
    "LatentPrivatizer": "_mechanism",
    "privatize_latents": "_mechanism",
    "Composition": "accounting",
    "per_slice": "accounting",
    "study_total": "accounting",
    "split_budget": "accounting",
    "split_window": "accounting",
    "randomized_response": "accounting",
    "PrivacyReport": "report",
    "privacy_report": "report",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
