"""The learned conditional prior ``p(z | c) = N(mu(c), diag sigma(c)^2)`` of a CINN.

A small network maps the condition vector ``c`` to a mean and a log standard deviation
for every latent dimension, block by block (one head per latent block, as Glow gives
each split its own prior).  The prior depends on ``c`` only, never on other latents:
CADP's privacy mechanism standardises the released block with it, and a prior that read
the image's own unreleased latents would leak them through that standardisation.

Heads for a convolutional block ``[C, H, W]`` with more than ``max_outputs`` values
predict a coarser ``[C, r, r]`` map, bilinearly upsampled to ``H x W``: the finest
scales' priors are smooth over the slice (where the body is, where air is), and a full
head for a 64x64 block would cost millions of weights.

The last layer of every head is zero-initialised, so training starts from ``N(0, I)``;
``log sigma`` is soft-clamped to ``(-LOG_STD_BOUND, LOG_STD_BOUND)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: |log sigma| stays below this (tanh soft clamp): sigma in (0.018, 55).
LOG_STD_BOUND = 4.0
_LOG_2PI = math.log(2.0 * math.pi)


def _head_resolution(shape: Sequence[int], max_outputs: int) -> int:
    """Side of the square map a conv block's head predicts (its own side when it fits)."""
    channels, side = shape[0], shape[1]
    while side > 1 and channels * side * side > max_outputs:
        side //= 2
    return side


class ConditionalPrior(nn.Module):
    """Per-dimension Gaussian prior of a latent laid out in blocks, given ``c``.

    Parameters
    ----------
    cond_dim
        Length of the condition vector.
    block_shapes
        Shape of each latent block (without the batch axis), in latent order.
    width
        Hidden units of the shared trunk.
    max_outputs
        Values one head predicts per statistic before it falls back to a coarser map.
    """

    def __init__(
        self,
        cond_dim: int,
        block_shapes: Sequence[tuple[int, ...]],
        *,
        width: int = 128,
        max_outputs: int = 1024,
    ) -> None:
        super().__init__()
        self.block_shapes = [tuple(int(d) for d in s) for s in block_shapes]
        self.trunk = nn.Sequential(
            nn.Linear(max(cond_dim, 1), width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
        )
        self._cond_dim = cond_dim
        self._head_shapes: list[tuple[int, ...]] = []
        heads = []
        for shape in self.block_shapes:
            if len(shape) == 3:
                side = _head_resolution(shape, max_outputs)
                head_shape: tuple[int, ...] = (shape[0], side, side)
            else:
                head_shape = shape
            self._head_shapes.append(head_shape)
            head = nn.Linear(width, 2 * int(torch.Size(head_shape).numel()))
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            heads.append(head)
        self.heads = nn.ModuleList(heads)

    def forward(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)``, each ``[B, D]`` in the latent's flat order."""
        if self._cond_dim == 0:
            c = torch.zeros(c.shape[0], 1, dtype=c.dtype, device=c.device)
        h = self.trunk(c)
        means, log_stds = [], []
        for head, shape, head_shape in zip(
            self.heads, self.block_shapes, self._head_shapes, strict=True
        ):
            out = head(h).reshape(h.shape[0], 2 * head_shape[0], *head_shape[1:])
            if head_shape != shape:
                out = F.interpolate(out, size=shape[1:], mode="bilinear", align_corners=False)
            mean, raw = out.chunk(2, dim=1)
            means.append(mean.reshape(h.shape[0], -1))
            log_std = LOG_STD_BOUND * torch.tanh(raw / LOG_STD_BOUND)
            log_stds.append(log_std.reshape(h.shape[0], -1))
        return torch.cat(means, dim=1), torch.cat(log_stds, dim=1)


def gaussian_log_prob(z: Tensor, mean: Tensor | None, log_std: Tensor | None) -> Tensor:
    """Per-row ``log N(z; mean, diag exp(log_std)^2)``; ``None`` means ``N(0, I)``."""
    dim = z.shape[1]
    if mean is None or log_std is None:
        return -0.5 * (z**2).sum(dim=1) - 0.5 * dim * _LOG_2PI
    u = (z - mean) * torch.exp(-log_std)
    return -0.5 * (u**2).sum(dim=1) - log_std.sum(dim=1) - 0.5 * dim * _LOG_2PI


__all__ = ["LOG_STD_BOUND", "ConditionalPrior", "gaussian_log_prob"]
