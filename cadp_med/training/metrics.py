"""Likelihood in bits per dimension, latent-norm clip defaults and condition counts."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cadp_med.model.conditions import ConditionSchema

if TYPE_CHECKING:
    from torch import Tensor

    from cadp_med.model.cinn import CINN

#: How the data are dequantised and what bits/dim means; recorded in the model card.
BPD_CONVENTION = (
    "x in [0,1] is treated as 8-bit data: x_deq = x + u/256 with u ~ U[0,1) per pixel; "
    "nll is -log p(x_deq) in nats under z ~ N(0, I); bits/dim = (nll + D*ln 256) / (D*ln 2)"
)
#: The same for a model with the learned conditional prior.
BPD_CONVENTION_CONDITIONAL = BPD_CONVENTION.replace(
    "z ~ N(0, I)", "the learned prior z | c ~ N(mu(c), diag sigma(c)^2)"
)
CLIP_PERCENTILE = 95.0


def model_nll(model: CINN, z: Tensor, log_det: Tensor, c: Tensor) -> Tensor:
    """Per-image negative log-likelihood (nats), ``-log p(z | c) - log|det dz/dx|``, under
    ``model``'s own prior (``N(0, I)`` or the conditional ``N(mu(c), diag sigma(c)^2)``,
    whose density over ``z`` includes ``-sum(log sigma)``)."""
    return -model.log_prior(z, c) - log_det


def bits_per_dim(nll: Tensor, dim: int) -> Tensor:
    """Bits per dimension of 8-bit data from the [0,1]-scaled continuous nll (see above)."""
    return (nll + dim * math.log(256.0)) / (dim * math.log(2.0))


def heldout_bpd(
    model: CINN,
    x: Tensor,
    c: Tensor,
    *,
    batch_size: int,
    seed: int,
) -> float:
    """Mean held-out bits/dim with seeded dequantisation noise (same noise every call)."""
    import torch

    if x.shape[0] == 0:
        return float("nan")
    generator = torch.Generator().manual_seed(seed)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb, cb = x[start : start + batch_size], c[start : start + batch_size]
            noise = torch.rand(xb.shape, generator=generator).to(xb.device)
            z, log_det = model.encode(xb + noise / 256.0, cb)
            total += float(bits_per_dim(model_nll(model, z, log_det, cb), z.shape[1]).sum())
            count += xb.shape[0]
    return total / count


def latent_norms(
    model: CINN, x: Tensor, c: Tensor, *, batch_size: int, release: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Per-image L1 and L2 norms of the clean latents, over the full latent and the release.

    The norms are those the mechanism clips: of the standardised latent
    ``u = (z - mu(c)) / sigma(c)`` for a model with a conditional prior, of ``z`` itself
    (``u = z``) under ``N(0, I)``.
    """
    import torch

    start, stop = release
    out: dict[str, list[np.ndarray]] = {"full_l1": [], "full_l2": [], "rel_l1": [], "rel_l2": []}
    model.eval()
    with torch.no_grad():
        for begin in range(0, x.shape[0], batch_size):
            cb = c[begin : begin + batch_size]
            z, _ = model.encode(x[begin : begin + batch_size], cb)
            z = model.standardize(z, cb).double()
            rel = z[:, start:stop]
            out["full_l1"].append(z.abs().sum(1).cpu().numpy())
            out["full_l2"].append(z.norm(dim=1).cpu().numpy())
            out["rel_l1"].append(rel.abs().sum(1).cpu().numpy())
            out["rel_l2"].append(rel.norm(dim=1).cpu().numpy())
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}


def privacy_defaults(
    norms: Mapping[str, np.ndarray], release_name: str, *, standardised: bool = False
) -> dict[str, Any]:
    """Clip bounds at the 95th percentile of held-out latent norms.

    The top-level ``clip_l1``/``clip_l2`` are those of the default release subspace, the
    one CADP perturbs by default; ``full`` gives the same for the whole latent.
    ``standardised`` says that the norms are of ``u = (z - mu(c)) / sigma(c)`` (a model
    with a conditional prior), which is what the mechanism then clips.
    """
    if norms["full_l1"].size == 0:
        raise ValueError("privacy defaults need at least one held-out slice")

    def pct(key: str) -> float:
        return float(np.percentile(norms[key], CLIP_PERCENTILE))

    release = {"clip_l1": pct("rel_l1"), "clip_l2": pct("rel_l2")}
    full = {"clip_l1": pct("full_l1"), "clip_l2": pct("full_l2")}
    return {
        **release,
        "how_chosen": (
            f"{CLIP_PERCENTILE:g}th percentile of per-image latent norms of "
            f"{norms['full_l1'].size} held-out training slices (clean, no dequantisation "
            f"noise); top-level values are for the default release block '{release_name}'"
            + (
                "; norms of the standardised latent u = (z - mu(c)) / sigma(c) that the "
                "mechanism clips"
                if standardised
                else ""
            )
        ),
        "latent": "standardised" if standardised else "raw",
        "percentile": CLIP_PERCENTILE,
        "n_heldout": int(norms["full_l1"].size),
        "release": release,
        "full": full,
    }


def condition_counts(
    schema: ConditionSchema, metadata: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """How many slices encode to each value of each field (numbers in 0.1 bins)."""
    counts: dict[str, dict[str, int]] = {}
    for fld in schema.fields:
        tally = Counter(schema.label(fld, m) for m in metadata)
        counts[fld.name] = dict(sorted(tally.items()))
    return counts
