"""Encode, privatize per image with :class:`~cadp_med.privacy.LatentPrivatizer`, decode.

Every image gets its own noise key (its index in the evaluated set), so an image's release
never depends on its batch companions and no two images share noise.  The evaluation seeds
the privatizer from a ``torch.Generator`` because it is an audit that must be repeatable;
released data must never use a known seed.

The latents handed around here are those the mechanism acts on: the standardised
``u = (z - mu(c)) / sigma(c)`` of a model with a conditional prior (``z`` itself under
N(0, I)).  :func:`encode_all` standardises and :func:`decode_all` maps back, so clipping,
noise, the N(0, 1) posterior, the refill and the latent-space linkage attacker all work
in the mechanism's own coordinates, as ``cadp-med anonymize`` does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from cadp_med.privacy import LatentPrivatizer, MechanismConfig


def encode_all(
    model: Any, x: np.ndarray, c: np.ndarray, *, device: str, batch_size: int = 512
) -> np.ndarray:
    """Standardised latents ``[N, D]`` (float64) of images ``x`` under conditions ``c``."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.asarray(x[start : start + batch_size], dtype=np.float32))
            cb = torch.from_numpy(np.asarray(c[start : start + batch_size], dtype=np.float32))
            z, _ = model.encode(xb.to(device), cb.to(device))
            out.append(model.standardize(z, cb.to(device)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.latent_dim))


def decode_all(
    model: Any, z: np.ndarray, c: np.ndarray, *, device: str, batch_size: int = 512
) -> np.ndarray:
    """Images ``[N, 1, S, S]`` from standardised latents, clamped to the valid range [0, 1].

    Mapping back through the prior of the public ``c`` and clamping are post-processing
    of the release, so they cannot weaken the guarantee.
    """
    out = []
    with torch.no_grad():
        for start in range(0, len(z), batch_size):
            zb = torch.from_numpy(np.asarray(z[start : start + batch_size], dtype=np.float32))
            cb = torch.from_numpy(np.asarray(c[start : start + batch_size], dtype=np.float32))
            cb = cb.to(device)
            zb = model.destandardize(zb.to(device), cb)
            out.append(model.decode(zb, cb).clamp(0, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def privatize_latents_keyed(z: np.ndarray, config: MechanismConfig, *, seed: int) -> np.ndarray:
    """Privatize latents row by row with one noise key per row (the row index)."""
    privatizer = LatentPrivatizer(config, generator=torch.Generator().manual_seed(seed))
    rows = torch.from_numpy(np.asarray(z, dtype=np.float64))
    return privatizer(rows, noise_keys=range(len(z))).numpy()


def mechanism_scale(config: MechanismConfig) -> float:
    """Noise scale per released coordinate (Laplace b or Gaussian sigma); 0 at eps=inf."""
    from cadp_med.privacy import noise_scale

    return noise_scale(config) if math.isfinite(config.epsilon) else 0.0


def clip_rows(z: np.ndarray, clip: float, p: int) -> np.ndarray:
    """Scale each row down to norm ``<= clip`` (L1 for p=1, L2 for p=2), as the mechanism does."""
    norms = np.linalg.norm(z, ord=p, axis=1, keepdims=True)
    return z * np.minimum(1.0, clip / np.maximum(norms, 1e-300))


__all__ = [
    "clip_rows",
    "decode_all",
    "encode_all",
    "mechanism_scale",
    "privatize_latents_keyed",
]
