"""Glow's ActNorm and learned invertible 1x1 convolution as FrEIA invertible modules.

FrEIA 0.2 ships ``ActNorm`` (``FrEIA.modules.invertible_resnet``), but it initialises
itself lazily from whatever batch passes first, in either direction, and divides by the
batch standard deviation of a flat input, which is NaN for a batch of one: a freshly
built model would then not be a pure function of its weights.  It has no learned
invertible 1x1 convolution (``Fixed1x1Conv`` is fixed; ``AllInOneBlock``'s Householder
reflections are learned but orthogonal, so they cannot rescale).  The two modules here
follow FrEIA's ``InvertibleModule`` contract (forward returns ``log|det J|``, reverse its
negative) and are initialised only when asked (:meth:`ActNorm.start_data_init`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from FrEIA.modules import InvertibleModule
from torch import Tensor, nn


class ActNorm(InvertibleModule):
    """Per-channel affine map ``y = x * exp(log_scale) + bias`` (Kingma & Dhariwal 2018).

    Starts as the identity.  :meth:`start_data_init` arms a one-shot data-dependent
    initialisation: the next forward pass sets the parameters so that its output has
    zero mean and unit standard deviation per channel (statistics over the batch and all
    positions), then the module behaves as a plain learned affine map again.
    """

    def __init__(self, dims_in: Sequence[tuple[int, ...]], dims_c: Any = None) -> None:
        super().__init__(dims_in, dims_c)
        shape = dims_in[0]
        param_shape = (1, shape[0]) + (1,) * (len(shape) - 1)
        self.log_scale = nn.Parameter(torch.zeros(param_shape))
        self.bias = nn.Parameter(torch.zeros(param_shape))
        self._positions = int(torch.Size(shape[1:]).numel())
        self._init_pending = False

    def start_data_init(self) -> None:
        """Initialise from the statistics of the next forward (not reverse) batch."""
        self._init_pending = True

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        flat = x.transpose(0, 1).reshape(x.shape[1], -1)
        # A floor on the std: a channel that is constant in the init batch (the border of
        # 8x8 digits) must not be blown up by a huge scale.
        if flat.shape[1] > 1:
            std = flat.std(dim=1).clamp_min(1e-2)
        else:  # one value per channel: no spread to normalise
            std = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
        self.log_scale.copy_((-torch.log(std)).reshape(self.log_scale.shape))
        self.bias.copy_((-flat.mean(dim=1) / std).reshape(self.bias.shape))
        self._init_pending = False

    def forward(
        self, x: Iterable[Tensor], c: Any = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (x0,) = tuple(x)
        if self._init_pending and not rev:
            self._initialize(x0)
        log_det = (self.log_scale.sum() * self._positions).expand(x0.shape[0])
        if not rev:
            return (x0 * torch.exp(self.log_scale) + self.bias,), log_det
        return ((x0 - self.bias) * torch.exp(-self.log_scale),), -log_det

    def output_dims(self, input_dims: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Shape-preserving."""
        if len(input_dims) != 1:
            raise ValueError("ActNorm takes one input")
        return input_dims


class InvConv1x1(InvertibleModule):
    """Learned invertible 1x1 convolution in LU form (Glow, section 3.2).

    ``W = P L (U + diag(sign * exp(log_s)))`` with a fixed permutation ``P``, unit lower
    triangular ``L`` and strictly upper triangular ``U``; ``log|det W| = sum(log_s)``,
    times the number of pixels.  Initialised from a random rotation drawn from a
    generator seeded with ``seed``, so the architecture is a pure function of the config;
    ``P`` and ``sign`` are persistent buffers and travel with the checkpoint.
    """

    def __init__(
        self, dims_in: Sequence[tuple[int, ...]], dims_c: Any = None, seed: int = 0
    ) -> None:
        super().__init__(dims_in, dims_c)
        shape = dims_in[0]
        if len(shape) != 3:
            raise ValueError("InvConv1x1 needs (channels, height, width) inputs")
        n = shape[0]
        gen = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign", torch.sign(diag).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(diag.abs()).float())
        self._pixels = shape[1] * shape[2]
        self.register_buffer("_eye", torch.eye(n), persistent=False)

    def _factors(self) -> tuple[Tensor, Tensor]:
        lower = torch.tril(self.lower, -1) + self._eye
        upper = torch.triu(self.upper, 1) + torch.diag(self.sign * torch.exp(self.log_s))
        return lower, upper

    def forward(
        self, x: Iterable[Tensor], c: Any = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (x0,) = tuple(x)
        lower, upper = self._factors()
        log_det = (self.log_s.sum() * self._pixels).expand(x0.shape[0])
        if not rev:
            weight = self.perm @ lower @ upper
            return (F.conv2d(x0, weight[:, :, None, None]),), log_det
        # W^-1 = U^-1 L^-1 P^T by triangular solves: more accurate than a general inverse.
        eye = self._eye
        inv_upper = torch.linalg.solve_triangular(upper, eye, upper=True)
        inv_lower = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        weight = inv_upper @ inv_lower @ self.perm.T
        return (F.conv2d(x0, weight[:, :, None, None]),), -log_det

    def output_dims(self, input_dims: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Shape-preserving."""
        if len(input_dims) != 1:
            raise ValueError("InvConv1x1 takes one input")
        return input_dims


__all__ = ["ActNorm", "InvConv1x1"]
