"""The cINN is exactly invertible, its log-dets cancel and the condition matters."""

from __future__ import annotations

import pytest
import torch

from cadp_med.errors import ModelError
from cadp_med.model.cinn import CINN, ModelConfig
from cadp_med.model.conditions import default_schema
from tests.model._slices import derived_set, real_batch

COND_DIM = default_schema().dim
SMALL = ModelConfig(
    size=64,
    cond_dim=COND_DIM,
    stages=3,
    blocks_per_stage=2,
    subnet_width=16,
    fc_blocks=1,
    fc_width=64,
)


def _conditions(meta: list[dict[str, object]]) -> torch.Tensor:
    return torch.from_numpy(default_schema().encode_batch(meta))


def _randomize(model: CINN, seed: int = 1) -> CINN:
    """Give the zero-initialised output layers random weights so no block is the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope="module")
def trained_small() -> CINN:
    torch.manual_seed(0)
    model = CINN(SMALL)
    x_np, meta = derived_set(32, 64)
    x, c = torch.from_numpy(x_np), _conditions(meta)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    for step in range(15):
        idx = torch.arange(step * 8, step * 8 + 8) % 32
        z, log_det = model.encode(x[idx] + torch.rand(8, 1, 64, 64) / 256, c[idx])
        loss = (0.5 * (z**2).sum(1) - log_det).mean() / z.shape[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _roundtrip_error(model: CINN, size: int) -> tuple[float, float]:
    x, meta = real_batch(size)
    c = _conditions(meta)
    with torch.no_grad():
        z, log_det = model.encode(x, c)
        x_rec, log_det_rev = model.decode_with_logdet(z, c)
    # log-dets reach 1e4 for a trained 128x128 model: compare relative to their size.
    relative = (log_det + log_det_rev).abs() / log_det.abs().clamp_min(1.0)
    return float((x_rec - x).abs().max()), float(relative.max())


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(cond_dim=COND_DIM),  # the shipped default, 128x128
        ModelConfig(cond_dim=COND_DIM, coupling="allinone", downsample="irevnet"),
        ModelConfig(size=64, cond_dim=COND_DIM, stages=3, cond_injection="concat", fc_blocks=0),
    ],
    ids=["default", "allinone-irevnet", "concat-nofc"],
)
def test_untrained_roundtrip_exact_on_real_slices(config: ModelConfig) -> None:
    torch.manual_seed(0)
    model = _randomize(CINN(config).eval())
    err, logdet_sum = _roundtrip_error(model, config.size)
    assert err < 1e-4
    assert logdet_sum < 1e-5


def test_trained_roundtrip_exact_and_logdets_cancel(trained_small: CINN) -> None:
    err, logdet_sum = _roundtrip_error(trained_small, 64)
    assert err < 1e-4
    assert logdet_sum < 1e-5


def test_logdet_is_nonzero_after_training(trained_small: CINN) -> None:
    # Guards against a vacuous cancellation test (both sides identically zero).
    x, meta = real_batch(64)
    with torch.no_grad():
        _, log_det = trained_small.encode(x, _conditions(meta))
    assert log_det.abs().min() > 1.0


def test_condition_changes_decode(trained_small: CINN) -> None:
    x, meta = real_batch(64)
    c = _conditions(meta)
    c_other = _conditions([{"modality": "US", "plane": "sagittal", "slice_pos": 0.0}] * 2)
    with torch.no_grad():
        z, _ = trained_small.encode(x, c)
        same = trained_small.decode(z, c)
        other = trained_small.decode(z, c_other)
    assert float((same - other).abs().max()) > 1e-3


def test_latent_layout_covers_latent_and_coarsest_is_fc() -> None:
    model = CINN(SMALL)
    blocks = model.latent_layout
    assert blocks[0].start == 0 and blocks[-1].stop == model.latent_dim == 64 * 64
    for left, right in zip(blocks, blocks[1:], strict=False):
        assert left.stop == right.start
    assert [b.scale for b in blocks] == [0, 1, 2, 3]
    assert model.coarsest_block.name == "fc"
    # After 3 stages the kept trunk is 2**3 channels at 8x8 = 512 values.
    assert model.coarsest_block.stop - model.coarsest_block.start == 512


def test_same_config_same_permutations() -> None:
    a, b = CINN(SMALL), CINN(SMALL)
    perms_a = {k: v for k, v in a.state_dict().items() if k.endswith("perm")}
    perms_b = {k: v for k, v in b.state_dict().items() if k.endswith("perm")}
    assert perms_a and all(torch.equal(perms_a[k], perms_b[k]) for k in perms_a)


def test_config_roundtrip_and_validation() -> None:
    assert ModelConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ModelError, match="size"):
        ModelConfig(size=96)
    with pytest.raises(ModelError, match="unknown ModelConfig keys"):
        ModelConfig.from_dict({**SMALL.to_dict(), "bogus": 1})
    with pytest.raises(ModelError, match="condition must have shape"):
        CINN(SMALL).encode(torch.zeros(1, 1, 64, 64), torch.zeros(1, COND_DIM + 1))


def test_default_model_fits_budget() -> None:
    model = CINN(ModelConfig(cond_dim=COND_DIM))
    n_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert n_bytes <= 25_000_000
