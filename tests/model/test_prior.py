"""The conditional prior, ActNorm, 1x1 convolutions and the condition network.

Exact inversion with the new blocks, the prior's density and standardisation, the
checkpoint round trip of a conditional model, and the packaged default model (standard
prior, legacy layout) unchanged to the last bit against outputs of the code before them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cadp_med.errors import ModelError
from cadp_med.model._flows import ActNorm, InvConv1x1
from cadp_med.model._prior import ConditionalPrior
from cadp_med.model.checkpoint import load_model, read_model_card, save_model
from cadp_med.model.cinn import CINN, ModelConfig
from cadp_med.model.conditions import default_schema
from tests.model._default_reference import DEFAULT, reference_outputs
from tests.model._slices import derived_set, real_batch

COND_DIM = default_schema().dim
V2_SMALL = ModelConfig.preset(
    "v2",
    size=64,
    cond_dim=COND_DIM,
    stages=3,
    stage_blocks=(1, 2, 2),
    stage_widths=(8, 16, 24),
    fc_blocks=2,
    fc_width=32,
    prior_width=16,
)
REFERENCE = Path(__file__).parent / "data" / "default_model_reference.json"


def _conditions(meta: list[dict[str, object]]) -> torch.Tensor:
    return torch.from_numpy(default_schema().encode_batch(meta))


def _randomize(model: torch.nn.Module, seed: int = 1) -> None:
    """Perturb every weight so that no zero-initialised layer stays the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="module")
def v2_model() -> CINN:
    torch.manual_seed(0)
    model = CINN(V2_SMALL)
    x_np, meta = derived_set(16, 64)
    model.data_init(torch.from_numpy(x_np), _conditions(meta))
    _randomize(model)
    return model.eval()


def test_v2_blocks_invert_exactly_on_real_slices(v2_model: CINN) -> None:
    kinds = {type(m) for m in v2_model.modules()}
    assert {ActNorm, InvConv1x1, ConditionalPrior} <= kinds and v2_model.cond_net is not None
    x, meta = real_batch(64)
    c = _conditions(meta)
    with torch.no_grad():
        z, log_det = v2_model.encode(x, c)
        x_rec, log_det_rev = v2_model.decode_with_logdet(z, c)
    assert float((x_rec - x).abs().max()) < 1e-4
    assert float(((log_det + log_det_rev).abs() / log_det.abs().clamp_min(1.0)).max()) < 1e-5
    # The conditions are used: another plane gives another latent.
    other = _conditions([{**m, "plane": "sagittal"} for m in meta])
    with torch.no_grad():
        assert float((v2_model.encode(x, other)[0] - z).abs().max()) > 1e-3


def test_invconv_log_det_is_the_matrix_log_det() -> None:
    module = InvConv1x1([(6, 5, 5)], seed=3)
    _randomize(module, seed=4)
    x = torch.randn(2, 6, 5, 5, generator=torch.Generator().manual_seed(0))
    torch.set_grad_enabled(False)
    try:
        (y,), log_det = module([x])
        (x_back,), log_det_rev = module([y], rev=True)
    finally:
        torch.set_grad_enabled(True)
    weight = module.perm @ (torch.tril(module.lower, -1) + torch.eye(6))
    weight = weight @ (torch.triu(module.upper, 1) + torch.diag(module.sign * module.log_s.exp()))
    expected = torch.linalg.slogdet(weight.detach().double())[1] * 25
    assert torch.allclose(log_det.double(), expected.expand(2), rtol=1e-5)
    assert torch.allclose(y, torch.einsum("oc,bchw->bohw", weight.detach(), x), atol=1e-5)
    assert float((x_back - x).abs().max()) < 1e-5 and torch.allclose(log_det_rev, -log_det)


def test_actnorm_data_init_standardises_each_channel() -> None:
    module = ActNorm([(3, 8, 8)])
    gen = torch.Generator().manual_seed(0)
    x = 5.0 + 3.0 * torch.randn(16, 3, 8, 8, generator=gen)
    (y,), _ = module([x])
    assert torch.equal(y, x)  # identity until initialised
    module.start_data_init()
    (y,), log_det = module([x])
    flat = y.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(flat.mean(1), torch.zeros(3), atol=1e-4)
    assert torch.allclose(flat.std(1), torch.ones(3), atol=1e-4)
    std = x.transpose(0, 1).reshape(3, -1).std(1)
    assert torch.allclose(log_det, -torch.log(std).sum().expand(16) * 64)
    (y2,), _ = module([x])  # one-shot: the next batch does not re-initialise
    assert torch.equal(y, y2)


def test_conditional_prior_density_and_standardisation(v2_model: CINN) -> None:
    x, meta = real_batch(64)
    c = _conditions(meta)
    with torch.no_grad():
        z, _ = v2_model.encode(x, c)
        mean, log_std = v2_model.prior_params(c)
        expected = torch.distributions.Normal(mean.double(), log_std.double().exp())
        log_p = v2_model.log_prior(z.double(), c)
        u = v2_model.standardize(z, c)
        z_back = v2_model.destandardize(u, c)
    assert mean.shape == z.shape and float(log_std.std()) > 0  # not a constant sigma
    assert torch.allclose(log_p, expected.log_prob(z.double()).sum(1), rtol=1e-6)
    assert torch.allclose(u, (z - mean) / log_std.exp(), atol=1e-5)
    assert float((z_back - z).abs().max()) < 1e-4
    # The prior depends on c: two conditions, two means.
    assert float((mean[0] - mean[1]).abs().max()) > 1e-4


def test_nll_uses_the_density_of_the_conditional_prior(v2_model: CINN) -> None:
    """bits/dim: -log p(x) = -log N(z; mu(c), sigma(c)) - log|det|, nothing else."""
    from cadp_med.training.metrics import bits_per_dim, model_nll

    x, meta = real_batch(64)
    c = _conditions(meta)
    with torch.no_grad():
        z, log_det = v2_model.encode(x, c)
        mean, log_std = v2_model.prior_params(c)
        nll = model_nll(v2_model, z, log_det, c)
    normal = torch.distributions.Normal(mean.double(), log_std.double().exp())
    expected = -normal.log_prob(z.double()).sum(1) - log_det.double()
    assert torch.allclose(nll.double(), expected, rtol=1e-5)
    dim = z.shape[1]
    assert torch.allclose(
        bits_per_dim(nll, dim).double(), (expected + dim * math.log(256)) / (dim * math.log(2))
    )


def test_fresh_prior_is_standard_normal_and_legacy_has_none() -> None:
    model = CINN(V2_SMALL)
    c = _conditions(real_batch(64)[1])
    with torch.no_grad():
        mean, log_std = model.prior_params(c)
    assert float(mean.abs().max()) == 0.0 and float(log_std.abs().max()) == 0.0
    legacy = CINN(ModelConfig(size=64, cond_dim=COND_DIM, stages=3, fc_width=32))
    assert not legacy.has_conditional_prior
    assert not any(k.startswith(("prior.", "cond_net.")) for k in legacy.state_dict())
    with pytest.raises(ModelError, match="prior must be one of"):
        ModelConfig(prior="flat")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="one value >= 1 per stage"):
        ModelConfig(stage_blocks=(2, 2))


def test_conditional_checkpoint_roundtrip(v2_model: CINN, tmp_path: Path) -> None:
    path = tmp_path / "v2.safetensors"
    card = save_model(path, v2_model, {"privacy_defaults": {"clip_l1": 1.0, "clip_l2": 1.0}})
    assert card["latent"]["prior"] == "conditional"
    assert read_model_card(path)["architecture"]["prior"] == "conditional"
    loaded, _ = load_model(path)
    assert any(k.startswith("prior.") for k in loaded.state_dict())
    x, meta = real_batch(64)
    c = _conditions(meta)
    with torch.no_grad():
        assert torch.equal(loaded.prior_params(c)[0], v2_model.prior_params(c)[0])
        assert torch.equal(loaded.encode(x, c)[0], v2_model.encode(x, c)[0])


@pytest.mark.skipif(not DEFAULT.is_file(), reason="no default model shipped")
def test_default_model_loads_with_its_prior_and_decodes_identically() -> None:
    card = read_model_card(DEFAULT)
    model, _ = load_model(DEFAULT)
    assert model.config.prior == card["architecture"].get("prior", "standard")
    assert model.has_conditional_prior == (model.config.prior == "conditional")
    expected = json.loads(REFERENCE.read_text(encoding="utf-8"))
    got = reference_outputs()
    for key in ("z", "log_det", "z_private", "decoded"):
        a, b = torch.tensor(expected[key]), torch.tensor(got[key])
        scale = max(1.0, float(a.abs().max()))
        assert float((a - b).abs().max()) <= 1e-5 * scale, key
    assert not math.isnan(float(torch.tensor(got["decoded"]).mean()))
