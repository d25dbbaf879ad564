"""Small class-conditional cINNs for the benchmark images (digits, Fashion-MNIST).

A thin wrapper over :func:`cadp_med.training.train_model`: the architecture is sized for
8x8 or 32x32 grids so that the whole evaluation fits a CI run or a few GPU minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cadp_med.evaluation._data import EvalData


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
    """Train a class-conditional cINN on ``data``'s training images; return its card."""
    from cadp_med.training import train_model

    return train_model(
        data.x_train,
        data.meta_train,
        schema=data.schema,
        config=small_config(data.size, data.schema.dim, prior=prior),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        heldout_fraction=0.1,
        out_path=out_path,
        progress=progress,
        sources=[data.name],
    )


__all__ = ["small_config", "train_eval_model"]
