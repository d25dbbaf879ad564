"""The conditional invertible network (cINN) of CADP, built with FrEIA.

The architecture follows Meder et al. 2022 (arXiv 2207.14625), section 3: a multi-scale
GraphINN of invertible 2x2 downsampling, conditional affine coupling blocks with 3x3
convolutional subnetworks and fixed seeded permutations, a split after every stage that
sends half of the channels to the latent, and fully connected coupling blocks on what
remains after the last stage.  Every coupling block sees the condition vector ``c``; for
the convolutional stages it is tiled to the stage's resolution, because FrEIA feeds a
condition to a conv block by concatenating channels of the same spatial size.

Two ways of using the tiled condition inside a subnetwork are offered (``cond_injection``):

``"concat"``
    The paper's way: the condition channels go through the first 3x3 convolution together
    with the image channels.
``"film"``
    The condition is constant over space, so convolving it only adds a per-channel bias
    (exactly so away from the zero-padded border).  The subnetwork therefore reads the
    condition once per image and applies a learned scale and shift (FiLM) to its first
    hidden layer.  It is as expressive for a spatially constant ``c`` and costs a fraction
    of the first convolution, which dominates run time at full resolution.

The latent ``z = f(x; c)`` is one flat vector of ``D = channels * size * size`` values: the
stage outputs from finest to coarsest, then the fully connected output (the coarsest scale).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from cadp_med.errors import ModelError

Coupling = Literal["glow", "allinone"]
Downsample = Literal["haar", "irevnet"]
CondInjection = Literal["film", "concat"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a CINN exactly (weights aside).

    Parameters
    ----------
    size
        Side length of the square input slice: 64 or 128 for medical slices; 8, 16 or 32
        for small benchmark images (digits, Fashion-MNIST) in ``cadp_med.evaluation``.
    channels
        Image channels (1 for grey-scale slices).
    cond_dim
        Length of the condition vector, ``ConditionSchema.dim``.
    stages
        Number of multi-scale convolutional stages; each halves the resolution.
    blocks_per_stage
        Coupling blocks per stage.
    subnet_width
        Hidden channels of the 3x3 convolutional subnetworks.
    fc_blocks
        Fully connected coupling blocks after the last stage (0 for none).
    fc_width
        Hidden units of the fully connected subnetworks.
    clamp
        Soft clamping of the log-scale in every affine coupling: at most ``exp(±clamp)``.
    coupling
        ``"glow"`` (FrEIA ``GLOWCouplingBlock``) or ``"allinone"`` (``AllInOneBlock``).
    downsample
        ``"haar"`` (``HaarDownsampling``) or ``"irevnet"`` (``IRevNetDownsampling``).
    permutation_seed
        Seed of the fixed random channel permutations; block ``k`` uses ``seed + k``.
    cond_injection
        ``"film"`` or ``"concat"``; see the module docstring.
    """

    size: int = 128
    channels: int = 1
    cond_dim: int = 16
    stages: int = 4
    blocks_per_stage: int = 2
    subnet_width: int = 32
    fc_blocks: int = 2
    fc_width: int = 512
    clamp: float = 2.0
    coupling: Coupling = "glow"
    downsample: Downsample = "haar"
    permutation_seed: int = 0
    cond_injection: CondInjection = "film"

    def __post_init__(self) -> None:
        if self.size not in (8, 16, 32, 64, 128):
            raise ModelError("size must be one of 8, 16, 32, 64 or 128")
        if self.channels < 1 or self.cond_dim < 0:
            raise ModelError("channels must be >= 1 and cond_dim >= 0")
        if not 1 <= self.stages or self.size % (2**self.stages) != 0:
            raise ModelError("stages must be >= 1 and 2**stages must divide size")
        if self.blocks_per_stage < 1 or self.subnet_width < 1 or self.fc_width < 1:
            raise ModelError("blocks_per_stage, subnet_width and fc_width must be >= 1")
        if self.fc_blocks < 0:
            raise ModelError("fc_blocks must be >= 0")
        if not self.clamp > 0:
            raise ModelError("clamp must be > 0")
        for name, value, choices in (
            ("coupling", self.coupling, ("glow", "allinone")),
            ("downsample", self.downsample, ("haar", "irevnet")),
            ("cond_injection", self.cond_injection, ("film", "concat")),
        ):
            if value not in choices:
                raise ModelError(f"{name} must be one of {choices}")

    @property
    def latent_dim(self) -> int:
        """Dimension ``D`` of the latent vector."""
        return self.channels * self.size * self.size

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dictionary of all fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"unknown ModelConfig keys: {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class LatentBlock:
    """One contiguous slice ``z[:, start:stop]`` of the latent, produced at one scale.

    ``scale`` counts from 0 (finest, first stage) upwards; the largest is the coarsest.
    ``shape`` is the block's shape before flattening (without the batch axis).
    """

    name: str
    start: int
    stop: int
    scale: int
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form used in the model card."""
        return {
            "name": self.name,
            "start": self.start,
            "stop": self.stop,
            "scale": self.scale,
            "shape": list(self.shape),
        }


class _ConvSubnet(nn.Module):
    """3x3 conv -> ReLU -> 1x1 conv -> ReLU -> 3x3 conv, the last one zero-initialised.

    FrEIA hands the subnetwork ``cat([x_half, c_tiled])``; the last ``cond_dim`` channels
    are the condition.  Zero initialisation makes every block start as the identity, which
    keeps early training stable.
    """

    def __init__(self, c_in: int, c_out: int, *, width: int, cond_dim: int, film: bool) -> None:
        super().__init__()
        self.cond_dim = cond_dim
        self.film = film and cond_dim > 0
        first_in = c_in - cond_dim if self.film else c_in
        self.conv1 = nn.Conv2d(first_in, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 1)
        self.conv3 = nn.Conv2d(width, c_out, 3, padding=1)
        self.cond_proj = nn.Linear(cond_dim, 2 * width) if self.film else None
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, u: Tensor) -> Tensor:
        if self.film:
            x, c_tiled = u[:, : -self.cond_dim], u[:, -self.cond_dim :]
            h = self.conv1(x)
            # The condition is constant over space: read it at one pixel.
            gamma, beta = self.cond_proj(c_tiled[:, :, 0, 0]).chunk(2, dim=1)
            h = h * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
        else:
            h = self.conv1(u)
        h = self.conv2(torch.relu(h))
        return self.conv3(torch.relu(h))


def _mlp_subnet(c_in: int, c_out: int, *, width: int) -> nn.Module:
    net = nn.Sequential(
        nn.Linear(c_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, c_out),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class CINN(nn.Module):
    """Conditional INN ``z = f(x; c)`` with an exact inverse ``x = f^{-1}(z; c)``.

    Parameters
    ----------
    config
        The architecture; see :class:`ModelConfig`.

    Notes
    -----
    Inputs are slices in [0, 1]; they are centred (``x - 0.5``, log-det 0) before the first
    layer so that the standard normal prior sits around mid-grey.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        import FrEIA.framework as ff
        import FrEIA.modules as fm

        self.config = config
        cfg = config
        block_cls = fm.GLOWCouplingBlock if cfg.coupling == "glow" else fm.AllInOneBlock
        down_cls = fm.HaarDownsampling if cfg.downsample == "haar" else fm.IRevNetDownsampling
        conv_subnet = functools.partial(
            _ConvSubnet,
            width=cfg.subnet_width,
            cond_dim=cfg.cond_dim,
            film=cfg.cond_injection == "film",
        )
        fc_subnet = functools.partial(_mlp_subnet, width=cfg.fc_width)

        def block_kwargs(subnet: Any) -> dict[str, Any]:
            if cfg.coupling == "glow":
                return {"subnet_constructor": subnet, "clamp": cfg.clamp}
            return {"subnet_constructor": subnet, "affine_clamping": cfg.clamp}

        nodes: list[Any] = [ff.InputNode(cfg.channels, cfg.size, cfg.size, name="input")]
        cond_nodes: list[Any] = []
        outputs: list[tuple[str, int, Any]] = []  # (name, scale, node or (node, index))
        self._cond_resolutions: list[int | None] = []  # None: the flat FC condition
        perm_index = 0
        res = cfg.size
        trunk: Any = nodes[0]

        def add(node: Any) -> Any:
            nodes.append(node)
            return node

        def permute(prev: Any, name: str) -> Any:
            nonlocal perm_index
            seed = cfg.permutation_seed + perm_index
            perm_index += 1
            return add(ff.Node(prev, fm.PermuteRandom, {"seed": seed}, name=name))

        def couplings(prev: Any, subnet: Any, cond: Any, count: int, prefix: str) -> Any:
            """``count`` conditioned coupling blocks, each followed by a fixed permutation."""
            for block in range(count):
                node = ff.Node(
                    prev,
                    block_cls,
                    block_kwargs(subnet),
                    conditions=cond,
                    name=f"{prefix}block{block}",
                )
                prev = permute(add(node), f"{prefix}perm{block}")
            return prev

        for stage in range(cfg.stages):
            res //= 2
            trunk = add(ff.Node(trunk, down_cls, {}, name=f"down{stage}"))
            cond = ff.ConditionNode(cfg.cond_dim, res, res, name=f"cond{stage}")
            cond_nodes.append(cond)
            self._cond_resolutions.append(res)
            trunk = couplings(trunk, conv_subnet, cond, cfg.blocks_per_stage, f"stage{stage}_")
            split = add(ff.Node(trunk, fm.Split, {"dim": 0}, name=f"split{stage}"))
            outputs.append((f"stage{stage}", stage, (split, 1)))
            trunk = (split, 0)
        if cfg.fc_blocks:
            trunk = add(ff.Node(trunk, fm.Flatten, {}, name="flatten"))
            fc_cond = ff.ConditionNode(cfg.cond_dim, name="cond_fc")
            cond_nodes.append(fc_cond)
            self._cond_resolutions.append(None)
            trunk = couplings(trunk, fc_subnet, fc_cond, cfg.fc_blocks, "fc_")
        outputs.append(("fc" if cfg.fc_blocks else "trunk", cfg.stages, trunk))
        out_nodes = [ff.OutputNode(node, name=f"out_{name}") for name, _, node in outputs]
        # GraphINN orders its condition inputs as they appear in the node list.
        self.graph = ff.GraphINN(nodes + cond_nodes + out_nodes, force_tuple_output=True)

        layout: list[LatentBlock] = []
        start = 0
        for (name, scale, _), shape in zip(outputs, self.graph.global_out_shapes, strict=True):
            n = int(torch.Size(shape).numel())
            layout.append(LatentBlock(name, start, start + n, scale, tuple(int(d) for d in shape)))
            start += n
        if start != cfg.latent_dim:
            raise ModelError("internal error: latent blocks do not cover D")
        self._layout = tuple(layout)

    # -- layout ---------------------------------------------------------------------------
    @property
    def latent_layout(self) -> list[LatentBlock]:
        """The latent blocks in the order they appear in ``z``."""
        return list(self._layout)

    @property
    def coarsest_block(self) -> LatentBlock:
        """The block at the coarsest scale: CADP's default release subspace."""
        return max(self._layout, key=lambda block: block.scale)

    @property
    def latent_dim(self) -> int:
        """``D = channels * size * size``."""
        return self.config.latent_dim

    # -- maps -----------------------------------------------------------------------------
    def _conditions(self, c: Tensor) -> list[Tensor]:
        if c.ndim != 2 or c.shape[1] != self.config.cond_dim:
            raise ModelError(f"condition must have shape [B, {self.config.cond_dim}]")
        conds = []
        for res in self._cond_resolutions:
            if res is None:
                conds.append(c)
            else:
                conds.append(c[:, :, None, None].expand(-1, -1, res, res))
        return conds

    def encode(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Map slices to latents.

        Parameters
        ----------
        x
            ``[B, channels, size, size]`` slices in [0, 1].
        c
            ``[B, cond_dim]`` condition vectors.

        Returns
        -------
        z, log_det
            ``[B, D]`` latents and ``[B]`` log |det dz/dx|.
        """
        cfg = self.config
        if tuple(x.shape[1:]) != (cfg.channels, cfg.size, cfg.size):
            raise ModelError(f"input must have shape [B, {cfg.channels}, {cfg.size}, {cfg.size}]")
        outs, log_det = self.graph(x - 0.5, c=self._conditions(c), jac=True)
        return torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1), log_det

    def decode_with_logdet(self, z: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse map; also returns log |det dx/dz| (the negative of encode's at ``x``)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ModelError(f"latent must have shape [B, {self.latent_dim}]")
        parts = []
        for block in self._layout:
            parts.append(z[:, block.start : block.stop].reshape(z.shape[0], *block.shape))
        (x,), log_det = self.graph(parts, c=self._conditions(c), rev=True, jac=True)
        return x + 0.5, log_det

    def decode(self, z: Tensor, c: Tensor) -> Tensor:
        """Map latents ``[B, D]`` with conditions ``[B, cond_dim]`` back to slices."""
        return self.decode_with_logdet(z, c)[0]

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Same as :meth:`encode` (so ``nn.Module`` hooks and ``torch.compile`` work)."""
        return self.encode(x, c)


def build_cinn(config: ModelConfig) -> CINN:
    """Build a freshly initialised :class:`CINN` for ``config``."""
    return CINN(config)
