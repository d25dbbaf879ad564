"""On-the-fly training augmentation: small affine, intensity, anatomy-aware flips.

Each training batch is augmented on the device it trains on, in one batched resampling
(MONAI's :class:`monai.networks.layers.AffineTransform`), so a GPU run is not slowed by a
per-image CPU loop. What is allowed depends on the slice's labels:

* **affine** (every slice): rotation in [-``rotate_deg``, ``rotate_deg``] degrees, isotropic
  scale in [1 - ``scale``, 1 + ``scale``], translation in [-``translate``, ``translate``] of
  the half-width per axis; bilinear, border padding;
* **left-right flip** only where mirrored anatomy is still anatomy: axial and coronal
  slices of the head (the brain is close to symmetric). Chest and abdomen are not mirrored
  (situs: heart and liver sides), sagittal slices are not (the face would point the other
  way) and no slice is ever flipped superior-inferior;
* **intensity** (relative units only, not CT: HU are absolute): scale in
  [1 - ``intensity_scale``, 1 + ``intensity_scale``] and shift in
  [-``intensity_shift``, ``intensity_shift``], clipped back to [0, 1].

Each slice is augmented with probability ``p``. Determinism: the draws of batch ``b`` of
epoch ``e`` come from a CPU ``torch.Generator`` seeded with ``(seed, e, b)`` alone, so a run
resumed from the checkpoint of an epoch continues exactly as the uninterrupted run.

Rows and columns follow the radiological display convention of DICOM (the imaging readers
guarantee it), so the column axis is the patient's left-right axis in axial and coronal
slices and rows are superior-inferior in coronal and sagittal ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cadp_med.errors import ConfigError

#: Planes whose column axis is the patient's left-right axis.
LR_PLANES = ("axial", "coronal")
#: Regions whose anatomy is close enough to left-right symmetric to mirror.
LR_SYMMETRIC_REGIONS = ("head", "brain")
#: Contrasts in absolute units, never intensity-augmented.
ABSOLUTE_UNITS = ("CT",)
_SEED_MIX = 1_000_003


@dataclass(frozen=True)
class Augmentation:
    """Parameters of the training augmentation (validated; recorded in the model card).

    Parameters
    ----------
    p : float
        Probability that a slice is augmented at all, in [0, 1].
    rotate_deg : float
        Largest rotation, degrees, in [0, 15].
    scale : float
        Largest relative isotropic scale change, in [0, 0.2].
    translate : float
        Largest shift as a fraction of the half-width, in [0, 0.2].
    intensity_scale, intensity_shift : float
        Largest relative intensity scale and additive shift (in [0, 1] units), each in
        [0, 0.2]; never applied to CT.
    flip_lr : bool
        Allow the left-right flip where the anatomy allows it (see the module docstring).
    seed : int
        Seed of the augmentation draws (with the epoch and batch number).
    """

    p: float = 0.5
    rotate_deg: float = 5.0
    scale: float = 0.05
    translate: float = 0.06
    intensity_scale: float = 0.05
    intensity_shift: float = 0.02
    flip_lr: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        limits = {
            "p": (self.p, 1.0),
            "rotate_deg": (self.rotate_deg, 15.0),
            "scale": (self.scale, 0.2),
            "translate": (self.translate, 0.2),
            "intensity_scale": (self.intensity_scale, 0.2),
            "intensity_shift": (self.intensity_shift, 0.2),
        }
        for name, (value, top) in limits.items():
            if not (isinstance(value, int | float) and 0.0 <= float(value) <= top):
                raise ConfigError(f"augmentation {name} must be a number in [0, {top:g}]")
        if self.seed < 0:
            raise ConfigError("augmentation seed must be >= 0")

    def to_card(self) -> dict[str, Any]:
        """The card's ``training.augmentation`` entry: parameters and the rules."""
        return {
            "library": "MONAI AffineTransform (batched, on the training device)",
            **asdict(self),
            "rules": {
                "affine": "every slice: rotation, isotropic scale, translation; bilinear, "
                "border padding",
                "flip_lr": f"only planes {list(LR_PLANES)} of regions "
                f"{list(LR_SYMMETRIC_REGIONS)}; never superior-inferior, never sagittal",
                "intensity": f"not for {list(ABSOLUTE_UNITS)} (absolute units); "
                "clipped to [0, 1]",
                "determinism": "batch b of epoch e draws from torch.Generator seeded with "
                "(seed, e, b)",
            },
        }


def flip_allowed(meta: Mapping[str, Any]) -> bool:
    """Whether a left-right flip keeps this slice anatomically plausible."""
    plane = str(meta.get("plane", "")).lower()
    region = str(meta.get("region", "")).lower()
    return plane in LR_PLANES and region in LR_SYMMETRIC_REGIONS


def intensity_allowed(meta: Mapping[str, Any]) -> bool:
    """Whether the slice's units are relative (intensity augmentation is honest)."""
    contrast = str(meta.get("contrast") or meta.get("modality") or "")
    return contrast.split("-")[0].upper() not in ABSOLUTE_UNITS


def augment_batch(
    x: Any,
    flip_ok: Any,
    intensity_ok: Any,
    generator: Any,
    params: Augmentation,
) -> Any:
    """Augment ``x`` ``[B, C, S, S]`` (values in [0, 1]) on its own device.

    Parameters
    ----------
    x : torch.Tensor
        The batch.
    flip_ok, intensity_ok : torch.Tensor
        ``[B]`` booleans (any device): which slices may be flipped / intensity-augmented.
    generator : torch.Generator
        CPU generator; every draw comes from it, in a fixed order.
    params : Augmentation
        The ranges.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device, values in [0, 1].
    """
    import torch
    from monai.networks.layers import AffineTransform

    b = x.shape[0]
    if b == 0:
        return x

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * limit

    # Fixed draw order: the stream, not the values, decides reproducibility.
    apply = torch.rand(b, generator=generator, dtype=torch.float64) < params.p
    angle = uniform(math.radians(params.rotate_deg))
    zoom = 1.0 + uniform(params.scale)
    shift = torch.stack([uniform(params.translate), uniform(params.translate)], dim=1)
    flip = torch.rand(b, generator=generator, dtype=torch.float64) < 0.5
    gain = 1.0 + uniform(params.intensity_scale)
    offset = uniform(params.intensity_shift)

    flip_ok = flip_ok.detach().cpu().bool()
    intensity_ok = intensity_ok.detach().cpu().bool()
    flip = flip & apply & flip_ok & params.flip_lr
    # theta maps output to input coordinates, (row, column) order (reverse_indexing), in
    # normalised [-1, 1] units; identity for slices that are not augmented.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos
    theta[:, :, 2] = shift
    theta[:, :, 1] *= torch.where(flip, -1.0, 1.0)[:, None]  # mirror the column axis only
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    theta[~apply] = identity
    resample = AffineTransform(
        normalized=True, mode="bilinear", padding_mode="border", align_corners=True
    )
    moved = resample(x, theta.to(device=x.device, dtype=x.dtype))
    moved = torch.where(apply.to(x.device)[:, None, None, None], moved, x)

    use_gain = apply & intensity_ok
    gain = torch.where(use_gain, gain, torch.ones_like(gain))
    offset = torch.where(use_gain, offset, torch.zeros_like(offset))
    shaped = (b,) + (1,) * (x.dim() - 1)
    moved = moved * gain.to(x.device, x.dtype).view(shaped) + offset.to(x.device, x.dtype).view(
        shaped
    )
    return moved.clamp(0.0, 1.0)


def batch_augmenter(
    params: Augmentation | None,
    metadata: Sequence[Mapping[str, Any]],
) -> Callable[[Any, Any, int, int], Any]:
    """A ``(xb, idx, epoch, batch_no) -> xb`` callable for the training loop.

    ``metadata`` are the training slices' labels, indexed like the training tensor that
    ``idx`` indexes. With ``params`` None the callable returns the batch unchanged.
    """
    if params is None:
        return lambda xb, idx, epoch, batch_no: xb
    import torch

    flips = torch.from_numpy(np.asarray([flip_allowed(m) for m in metadata], dtype=bool))
    relative = torch.from_numpy(np.asarray([intensity_allowed(m) for m in metadata], dtype=bool))

    def augment(xb: Any, idx: Any, epoch: int, batch_no: int) -> Any:
        seed = (params.seed * _SEED_MIX + epoch) * _SEED_MIX + batch_no
        generator = torch.Generator().manual_seed(seed % (2**63 - 1))
        rows = idx.detach().cpu()
        return augment_batch(xb, flips[rows], relative[rows], generator, params)

    return augment


__all__ = [
    "ABSOLUTE_UNITS",
    "LR_PLANES",
    "LR_SYMMETRIC_REGIONS",
    "Augmentation",
    "augment_batch",
    "batch_augmenter",
    "flip_allowed",
    "intensity_allowed",
]
