"""The default temperature of a model, chosen by measurement.

Outside the released block the mechanism replaces every latent coordinate by a draw from
the prior scaled by a temperature (Glow's reduced-temperature sampling). Lower
temperatures give smoother, more typical images, and the right value depends on how well
the model was trained, so it is measured: images the model did not see are privatized at
a fixed epsilon with each candidate temperature, and the temperature whose outputs lie
closest to the real images (Frechet distance on pixel-PCA features) wins.

The temperature is fixed before any user image is seen and acts only on the coordinates
that carry nothing of the image, so it is post-processing: the guarantee is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from cadp_med.evaluation._privatize import decode_all, encode_all, privatize_latents_keyed
from cadp_med.evaluation._realism import frechet_distance
from cadp_med.privacy import MechanismConfig

Features = Callable[[np.ndarray], np.ndarray]

DEFAULT_TEMPERATURES = (0.0, 0.3, 0.5, 0.7, 0.85, 1.0)


def pixel_pca_features(
    train_x: np.ndarray, *, seed: int, side: int = 32, components: int = 32, fit_on: int = 2000
) -> tuple[Features, str]:
    """Pixel-PCA features and a sentence saying how they are made.

    Images ``[N, 1, S, S]`` are resampled to ``side`` x ``side`` and projected on the top
    ``components`` principal components of at most ``fit_on`` of ``train_x`` (by SVD).
    """

    def shrink(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.asarray(x, dtype=np.float32))
        if t.shape[-1] != side:
            mode = "area" if t.shape[-1] > side else "bilinear"
            t = torch.nn.functional.interpolate(t, size=(side, side), mode=mode)
        return t.reshape(t.shape[0], -1).double().numpy()

    pick = np.random.default_rng(seed).permutation(len(train_x))[:fit_on]
    flat = shrink(train_x[pick])
    mean = flat.mean(axis=0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = vt[: min(components, vt.shape[0])].T

    def features(x: np.ndarray) -> np.ndarray:
        return (shrink(x) - mean) @ basis

    how = (
        f"pixel PCA: images resampled to {side}x{side}, top {basis.shape[1]} principal "
        f"components of {len(pick)} training images"
    )
    return features, how


def anonymize_mechanism(card: dict[str, Any], epsilon: float) -> MechanismConfig:
    """The mechanism ``anonymize`` applies by default with the model of ``card``: Laplace
    at ``epsilon``, the card's L1 clip and default released block, posterior sample."""
    release = card["latent"]["default_release"]
    return MechanismConfig(
        kind="laplace",
        epsilon=float(epsilon),
        delta=None,
        clip=float(card["privacy_defaults"]["clip_l1"]),
        release=(int(release["start"]), int(release["stop"])),
        postprocess="posterior-sample",
    )


def choose_temperature(
    model: Any,
    x_real: np.ndarray,
    c_real: np.ndarray,
    *,
    config: MechanismConfig,
    features: Features,
    features_how: str,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    seed: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score each temperature by the realism of privatized ``x_real``; pick the best.

    Parameters
    ----------
    model
        The trained cINN, in eval mode on ``device``.
    x_real, c_real
        Images the model was not trained on (``[N, 1, S, S]``, N >= 8) and their encoded
        conditions.
    config
        The mechanism to measure at (its own temperature is replaced by each candidate).
    features
        Maps images to ``[N, D]`` feature vectors (fitted on training images only).
    temperatures
        Candidates; ties go to the higher temperature (the closer to the prior).

    Returns
    -------
    dict
        The card's ``privacy_defaults.temperature`` entry: ``value``, ``how_chosen``, the
        score of every temperature and the real-vs-real floor of the score.
    """
    if len(x_real) < 8:
        raise ValueError("choosing the temperature needs at least 8 unseen images")
    real = features(x_real)
    latents = encode_all(model, x_real, c_real, device=device)
    scores: dict[str, float] = {}
    for t in temperatures:
        private_latents = privatize_latents_keyed(
            latents, replace(config, temperature=float(t)), seed=seed
        )
        private = decode_all(model, private_latents, c_real, device=device)
        scores[f"{t:g}"] = frechet_distance(real, features(private))
    best = min(scores, key=lambda k: (scores[k], -float(k)))
    half = len(x_real) // 2
    order = np.random.default_rng(seed).permutation(len(x_real))
    floor = frechet_distance(real[order[:half]], real[order[half:]])
    eps = "inf" if not np.isfinite(config.epsilon) else f"{config.epsilon:g}"
    release = "all" if config.release is None else f"{config.release[0]}:{config.release[1]}"
    return {
        "value": float(best),
        "how_chosen": (
            f"smallest Frechet distance between {len(x_real)} real images the model was not "
            f"trained on and the same images privatized at eps {eps} ({config.kind.value}, "
            f"clip {config.clip:g}, release {release}, {config.postprocess.value}, seed "
            f"{seed}), on {features_how}; chosen before any "
            f"user image is seen and applied only outside the released block, so the "
            f"guarantee is unchanged"
        ),
        "scores": scores,
        "floor_real_vs_real": floor,
        "floor_note": f"two halves of the real images ({half} vs {len(x_real) - half})",
        "epsilon": float(config.epsilon),
        "mechanism": config.kind.value,
    }


__all__ = [
    "DEFAULT_TEMPERATURES",
    "anonymize_mechanism",
    "choose_temperature",
    "pixel_pca_features",
]
