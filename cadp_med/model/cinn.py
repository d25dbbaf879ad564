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
from cadp_med.model._flows import ActNorm, InvConv1x1
from cadp_med.model._prior import ConditionalPrior, gaussian_log_prob

Coupling = Literal["glow", "allinone"]
Downsample = Literal["haar", "irevnet"]
CondInjection = Literal["film", "concat"]
Mixing = Literal["permute", "conv1x1"]
Prior = Literal["standard", "conditional"]


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
    actnorm
        Put a learned per-channel ActNorm (data-initialised by :meth:`CINN.data_init`)
        before every coupling block.
    mixing
        How the convolutional stages mix channels between coupling blocks: ``"permute"``
        (fixed seeded permutation after each block) or ``"conv1x1"`` (a learned invertible
        1x1 convolution before each block, Glow).  The FC part always permutes.
    stage_blocks
        Coupling blocks of each stage, finest first; empty: ``blocks_per_stage`` for all.
    stage_widths
        Subnet width of each stage, finest first; empty: ``subnet_width`` for all.  The
        finest stage costs most run time, the coarser ones are cheap to widen.
    cond_embed
        0: every coupling reads the raw condition vector.  ``k > 0``: a condition network
        (an MLP ``cond_dim -> 128 -> 128 -> k``) embeds ``c`` once and its embedding reaches every
        coupling block instead.
    prior
        ``"standard"``: ``z ~ N(0, I)``.  ``"conditional"``: a learned
        ``N(mu(c), diag sigma(c)^2)`` per latent block (:mod:`cadp_med.model._prior`).
    prior_width
        Hidden units of the conditional prior's network.
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
    actnorm: bool = False
    mixing: Mixing = "permute"
    stage_blocks: tuple[int, ...] = ()
    stage_widths: tuple[int, ...] = ()
    cond_embed: int = 0
    prior: Prior = "standard"
    prior_width: int = 128

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
            ("mixing", self.mixing, ("permute", "conv1x1")),
            ("prior", self.prior, ("standard", "conditional")),
        ):
            if value not in choices:
                raise ModelError(f"{name} must be one of {choices}")
        for name in ("stage_blocks", "stage_widths"):
            values = tuple(int(v) for v in getattr(self, name))
            if values and (len(values) != self.stages or min(values) < 1):
                raise ModelError(f"{name} needs one value >= 1 per stage ({self.stages})")
            object.__setattr__(self, name, values)
        if self.cond_embed < 0 or self.prior_width < 1:
            raise ModelError("cond_embed must be >= 0 and prior_width >= 1")

    def blocks_of(self, stage: int) -> int:
        """Coupling blocks of convolutional stage ``stage`` (0 = finest)."""
        return self.stage_blocks[stage] if self.stage_blocks else self.blocks_per_stage

    def width_of(self, stage: int) -> int:
        """Subnet width of convolutional stage ``stage`` (0 = finest)."""
        return self.stage_widths[stage] if self.stage_widths else self.subnet_width

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named architecture (:data:`PRESETS`) with field overrides.

        ``"v1"`` is the architecture of the packaged default model; ``"v2"`` adds
        ActNorm, learned 1x1 convolutions, wider and deeper coarse stages, a condition
        network and the conditional prior, sized to stay within 25 MB of weights and the
        speed goal at 128x128 (benchmarks/bench_cinn.py).
        """
        if name not in PRESETS:
            raise ModelError(f"unknown architecture preset {name!r}; choose from {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @property
    def latent_dim(self) -> int:
        """Dimension ``D`` of the latent vector."""
        return self.channels * self.size * self.size

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dictionary of all fields (tuples as lists, as JSON reads them)."""
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

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


def _condition_network(cond_dim: int, embed: int, hidden: int = 128) -> nn.Module:
    """The MLP that embeds ``c`` once for all coupling blocks.

    Its output stays narrow: FrEIA tiles a condition to every conv stage's resolution and
    concatenates it to the block input, so each embedding channel costs a full-size copy.
    """
    return nn.Sequential(
        nn.Linear(cond_dim, hidden),
        nn.SiLU(),
        nn.Linear(hidden, hidden),
        nn.SiLU(),
        nn.Linear(hidden, embed),
    )


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
        # What every coupling reads as its condition: c itself, or the condition network's
        # embedding of it.
        self.cond_net = _condition_network(cfg.cond_dim, cfg.cond_embed) if cfg.cond_embed else None
        cond_width = cfg.cond_embed or cfg.cond_dim

        def conv_subnet(stage: int) -> Any:
            return functools.partial(
                _ConvSubnet,
                width=cfg.width_of(stage),
                cond_dim=cond_width,
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

        def couplings(
            prev: Any, subnet: Any, cond: Any, count: int, prefix: str, conv: bool
        ) -> Any:
            """``count`` conditioned coupling blocks with their normalisation and mixing.

            The legacy layout (no ActNorm, permutations) is coupling -> permutation, node
            for node as the shipped weights expect; with ``conv1x1`` a stage is Glow's
            [ActNorm] -> 1x1 conv -> coupling.
            """
            nonlocal perm_index
            learned_mixing = conv and cfg.mixing == "conv1x1"
            for block in range(count):
                if cfg.actnorm:
                    prev = add(ff.Node(prev, ActNorm, {}, name=f"{prefix}actnorm{block}"))
                if learned_mixing:
                    seed = cfg.permutation_seed + perm_index
                    perm_index += 1
                    prev = add(
                        ff.Node(prev, InvConv1x1, {"seed": seed}, name=f"{prefix}conv1x1_{block}")
                    )
                node = ff.Node(
                    prev,
                    block_cls,
                    block_kwargs(subnet),
                    conditions=cond,
                    name=f"{prefix}block{block}",
                )
                prev = add(node)
                if not learned_mixing:
                    prev = permute(prev, f"{prefix}perm{block}")
            return prev

        for stage in range(cfg.stages):
            res //= 2
            trunk = add(ff.Node(trunk, down_cls, {}, name=f"down{stage}"))
            cond = ff.ConditionNode(cond_width, res, res, name=f"cond{stage}")
            cond_nodes.append(cond)
            self._cond_resolutions.append(res)
            trunk = couplings(
                trunk, conv_subnet(stage), cond, cfg.blocks_of(stage), f"stage{stage}_", True
            )
            split = add(ff.Node(trunk, fm.Split, {"dim": 0}, name=f"split{stage}"))
            outputs.append((f"stage{stage}", stage, (split, 1)))
            trunk = (split, 0)
        if cfg.fc_blocks:
            trunk = add(ff.Node(trunk, fm.Flatten, {}, name="flatten"))
            fc_cond = ff.ConditionNode(cond_width, name="cond_fc")
            cond_nodes.append(fc_cond)
            self._cond_resolutions.append(None)
            trunk = couplings(trunk, fc_subnet, fc_cond, cfg.fc_blocks, "fc_", False)
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
        self.prior = (
            ConditionalPrior(
                cfg.cond_dim, [block.shape for block in layout], width=cfg.prior_width
            )
            if cfg.prior == "conditional"
            else None
        )

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
        if self.cond_net is not None:
            c = self.cond_net(c)
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

    # -- the prior ------------------------------------------------------------------------
    @property
    def has_conditional_prior(self) -> bool:
        """Whether ``p(z | c)`` is the learned ``N(mu(c), diag sigma(c)^2)``."""
        return self.prior is not None

    def prior_params(self, c: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)``, each ``[B, D]``, of ``p(z | c)``; zeros for ``N(0, I)``."""
        if c.ndim != 2 or c.shape[1] != self.config.cond_dim:
            raise ModelError(f"condition must have shape [B, {self.config.cond_dim}]")
        if self.prior is None:
            zeros = c.new_zeros(c.shape[0], self.latent_dim)
            return zeros, zeros
        return self.prior(c)

    def log_prior(self, z: Tensor, c: Tensor) -> Tensor:
        """Per-row ``log p(z | c)`` in nats (the density over ``z``, not over ``u``)."""
        if self.prior is None:
            return gaussian_log_prob(z, None, None)
        mean, log_std = self.prior(c)
        return gaussian_log_prob(z, mean, log_std)

    def standardize(self, z: Tensor, c: Tensor) -> Tensor:
        """``u = (z - mu(c)) / sigma(c)``: the latent as ``N(0, I)`` under the prior."""
        if self.prior is None:
            return z
        mean, log_std = self.prior(c)
        return (z - mean.to(z.dtype)) * torch.exp(-log_std.to(z.dtype))

    def destandardize(self, u: Tensor, c: Tensor) -> Tensor:
        """Inverse of :meth:`standardize`: ``z = mu(c) + sigma(c) * u``."""
        if self.prior is None:
            return u
        mean, log_std = self.prior(c)
        return mean.to(u.dtype) + torch.exp(log_std.to(u.dtype)) * u

    def data_init(self, x: Tensor, c: Tensor) -> None:
        """Initialise every ActNorm from one forward pass over ``x`` (Glow's data init).

        A no-op without ActNorm.  The trainer calls it once, before the first step, with
        a seeded sample of training slices; a loaded checkpoint never needs it.
        """
        norms = [m for m in self.modules() if isinstance(m, ActNorm)]
        if not norms:
            return
        for module in norms:
            module.start_data_init()
        with torch.no_grad():
            self.encode(x, c)


#: Named architectures for :meth:`ModelConfig.preset` and ``cadp-med train --preset``.
PRESETS: dict[str, dict[str, Any]] = {
    "v1": {},
    "v2": {
        "stages": 4,
        # The finest stages cost most time per slice: their depth and width stay as in v1
        # (bench_cinn.py: (2, 3, 4, 4) x (32, 48, 96, 128) ran 1.8x slower than v1 at
        # batch 1, this 1.4x).
        "stage_blocks": (2, 2, 3, 3),
        "stage_widths": (32, 32, 64, 96),
        "fc_blocks": 4,
        "fc_width": 256,
        "actnorm": True,
        "mixing": "conv1x1",
        "cond_embed": 16,
        "prior": "conditional",
        "prior_width": 64,
    },
}


def build_cinn(config: ModelConfig) -> CINN:
    """Build a freshly initialised :class:`CINN` for ``config``."""
    return CINN(config)
