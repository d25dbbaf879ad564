"""Per-image (row-wise) norm clipping.

Each row ``z_i`` of a ``[B, d]`` batch is scaled by ``min(1, C / ||z_i||)``.  The output
row depends on that row only, never on the other rows: the reference CADP code clipped
a whole batch with a matrix norm, which ties one image's output to its companions and
voids the per-image guarantee.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cadp_med.errors import PrivacyError


def _check(z: torch.Tensor, clip: float) -> None:
    if not (math.isfinite(clip) and clip > 0):
        raise PrivacyError("clip must be a finite number > 0")
    if z.dim() != 2:
        raise PrivacyError("clipping expects a [batch, dims] tensor")


def _clip_rows(z: torch.Tensor, clip: float, p: int) -> torch.Tensor:
    _check(z, clip)
    norms = torch.linalg.vector_norm(z, ord=p, dim=1, keepdim=True)
    factor = torch.clamp(clip / torch.clamp(norms, min=torch.finfo(z.dtype).tiny), max=1.0)
    return z * factor


def clip_l1(z: torch.Tensor, clip: float) -> torch.Tensor:
    """Scale each row of ``z`` ([B, d]) to L1 norm at most ``clip``.

    Parameters
    ----------
    z : torch.Tensor
        Floating tensor of shape ``[B, d]``.
    clip : float
        C > 0.

    Returns
    -------
    torch.Tensor
        ``z_i * min(1, C / ||z_i||_1)`` per row.
    """
    return _clip_rows(z, clip, 1)


def clip_l2(z: torch.Tensor, clip: float) -> torch.Tensor:
    """Scale each row of ``z`` ([B, d]) to L2 norm at most ``clip`` (see :func:`clip_l1`)."""
    return _clip_rows(z, clip, 2)


def clip_vector(v: np.ndarray, clip: float, p: int) -> np.ndarray:
    """NumPy clip of one image's vector to Lp norm ``clip`` (p in {1, 2})."""
    norm = float(np.linalg.norm(v, ord=p))
    if norm <= clip:
        return v.copy()
    return v * (clip / norm)


__all__ = ["clip_l1", "clip_l2", "clip_vector"]
