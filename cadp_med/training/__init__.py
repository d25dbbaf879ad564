"""Training of the cINN by maximum likelihood: :func:`train_model`, used by ``cadp-med train``."""

from __future__ import annotations

from cadp_med.training.trainer import resolve_device, state_path, train_model

__all__ = ["resolve_device", "state_path", "train_model"]
