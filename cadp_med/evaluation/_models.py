"""Small class-conditional cINNs for the benchmark images (digits, Fashion-MNIST).

A thin wrapper over :func:`cadp_med.training.train_model`: the architecture is sized for
8x8 or 32x32 grids so that the whole evaluation fits a CI run or a few GPU minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cadp_med.evaluation._data import EvalData

#: The epsilon at which the default temperature is measured (the README's example).
TEMPERATURE_EPSILON = 2.0
HELDOUT_FRACTION = 0.1


def small_config(size: int, cond_dim: int, *, prior: str = "standard") -> Any:
    """A compact :class:`~cadp_med.model.ModelConfig` for an ``size`` x ``size`` grid.

    8x8: two stages (8 -> 4 -> 2), release = the 16-dimensional fully connected block.
    32x32: three stages (32 -> 16 -> 8 -> 4), release = the 128-dimensional FC block.
    ``prior``: ``"standard"`` (N(0, I)) or ``"conditional"`` (learned N(mu(c), sigma(c)^2)).
    """
    from cadp_med.model.cinn import ModelConfig

    if size <= 8:
        return ModelConfig(
            size=size,
            cond_dim=cond_dim,
            stages=2,
            subnet_width=32,
            fc_blocks=2,
            fc_width=128,
            prior=prior,  # type: ignore[arg-type]
        )
    stages = 2 if size == 16 else 3
    return ModelConfig(
        size=size,
        cond_dim=cond_dim,
        stages=stages,
        subnet_width=48,
        fc_blocks=2,
        fc_width=256,
        prior=prior,  # type: ignore[arg-type]
    )


def train_eval_model(
    data: EvalData,
    out_path: Path,
    *,
    epochs: int,
    seed: int = 0,
    device: str = "auto",
    batch_size: int = 64,
    lr: float = 1e-3,
    progress: bool = False,
    prior: str = "standard",
) -> dict[str, Any]:
    """Train a class-conditional cINN on ``data``'s training images, measure its default
    temperature (:func:`record_temperature`) and return its card."""
    from cadp_med.training import train_model

    train_model(
        data.x_train,
        data.meta_train,
        schema=data.schema,
        config=small_config(data.size, data.schema.dim, prior=prior),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        heldout_fraction=HELDOUT_FRACTION,
        out_path=out_path,
        progress=progress,
        sources=[data.name],
    )
    return record_temperature(out_path, data, seed=seed, device=device)


def record_temperature(
    model_path: Path,
    data: EvalData,
    *,
    seed: int = 0,
    device: str = "auto",
    epsilon: float = TEMPERATURE_EPSILON,
    limit: int = 2000,
) -> dict[str, Any]:
    """Measure the default temperature of a model trained by :func:`train_eval_model` on
    up to ``limit`` of its held-out training images and write it into its card
    (``privacy_defaults.temperature``); the weights are unchanged. Returns the card.

    The held-out images are those the trainer's seeded split set aside, so neither the
    cINN nor the test set of the evaluation is looked at.
    """
    from cadp_med.evaluation._temperature import (
        anonymize_mechanism,
        choose_temperature,
        pixel_pca_features,
    )
    from cadp_med.model import load_model
    from cadp_med.model.checkpoint import save_model
    from cadp_med.training import resolve_device
    from cadp_med.training.trainer import _choose_split

    device = resolve_device(device)
    model, card = load_model(model_path, device=device)
    trained = card["training"]
    train, held, _ = _choose_split(data.meta_train, HELDOUT_FRACTION, int(trained["seed"]))
    if len(held) != int(trained["n_heldout"]) or len(held) < 8:
        raise ValueError("these images are not the ones the model was trained on")
    held = np.sort(np.random.default_rng(seed).permutation(held)[:limit])
    features, how = pixel_pca_features(data.x_train[train], seed=seed, side=min(32, data.size))
    entry = choose_temperature(
        model,
        data.x_train[held],
        data.schema.encode_batch([data.meta_train[i] for i in held]),
        config=anonymize_mechanism(card, epsilon),
        features=features,
        features_how=how,
        seed=seed,
        device=device,
    )
    card["privacy_defaults"] = {**card["privacy_defaults"], "temperature": entry}
    return save_model(model_path, model, card)


__all__ = ["record_temperature", "small_config", "train_eval_model"]
