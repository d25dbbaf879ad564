"""A model for the pixel tests: the packaged default when present, else a tiny one.

The tiny model trains for a few seconds on real-derived CT/MR slices; it is not a good
generator, but it is a real, exactly invertible cINN with an honest model card, which is
what the pipeline's contracts need.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cadp_med.pixels import DEFAULT_MODEL_PATH


def train_tiny_model(out: Path, config: object | None = None) -> Path:
    """Train a 32x32 cINN (``config``, else a small v1 one) for two epochs, save to ``out``."""
    import torch

    from cadp_med.imaging import Normalizer
    from cadp_med.model import ModelConfig
    from cadp_med.model.conditions import default_schema
    from cadp_med.training import train_model
    from tests.model._slices import derived_set

    schema = default_schema()
    if config is None:
        config = ModelConfig(
            size=32,
            cond_dim=schema.dim,
            stages=3,
            blocks_per_stage=1,
            subnet_width=8,
            fc_blocks=1,
            fc_width=64,
        )
    x, meta = derived_set(48, 32, seed=11)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_model(
            x,
            meta,
            schema=schema,
            config=config,
            epochs=2,
            batch_size=16,
            lr=2e-3,
            seed=3,
            device="cpu",
            heldout_fraction=0.25,
            out_path=out,
            progress=False,
            normalization=Normalizer().to_spec(),
            sources=["pydicom test files"],
        )
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the model the pixel tests use."""
    if DEFAULT_MODEL_PATH.is_file() and not os.environ.get("CADP_MED_TEST_TINY_MODEL"):
        return DEFAULT_MODEL_PATH
    return train_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")
