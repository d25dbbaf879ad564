"""The hierarchical prior: the finer blocks' prior reads the coarsest (released) block.

Its density and standardisation are those of the Gaussian it defines; the released
block's standardisation reads only that block and ``c``; and after a release, the output
depends on the image only through the clipped standardised release (the refill reads
the privatized block, never the image's own), so the guarantee is that of the
conditional prior.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cadp_med.errors import ModelError
from cadp_med.model.checkpoint import load_model, read_model_card, save_model
from cadp_med.model.cinn import CINN, ModelConfig
from cadp_med.privacy import LatentPrivatizer, MechanismConfig, MechanismKind
from tests.model._slices import real_batch
from tests.model.test_prior import COND_DIM, _conditions, _randomize

HIERARCHICAL = ModelConfig.preset(
    "v2",
    size=64,
    cond_dim=COND_DIM,
    stages=3,
    stage_blocks=(1, 1, 1),
    stage_widths=(8, 8, 16),
    fc_blocks=1,
    fc_width=32,
    prior="hierarchical",
    prior_width=16,
)


@pytest.fixture(scope="module")
def model() -> CINN:
    torch.manual_seed(0)
    model = CINN(HIERARCHICAL)
    _randomize(model, seed=2)
    return model.eval()


@pytest.fixture(scope="module")
def latents(model: CINN) -> tuple[torch.Tensor, torch.Tensor]:
    x, meta = real_batch(64)
    c = _conditions(meta)
    with torch.no_grad():
        z, _ = model.encode(x, c)
    return z, c


def _mixed(z: torch.Tensor, block: slice, source: torch.Tensor) -> torch.Tensor:
    out = z.clone()
    out[:, block] = source[:, block]
    return out


def test_density_and_standardisation_follow_the_coarsest_block(model: CINN, latents) -> None:
    z, c = latents
    context = model.coarsest_block
    inside = slice(context.start, context.stop)
    with torch.no_grad():
        mean_s, log_std_s = model.prior.context_params(c)
        u = model.standardize(z, c)
        u_s = (z[:, inside] - mean_s) / log_std_s.exp()
        mean, log_std = model.prior(c, u_s)
        expected = torch.distributions.Normal(mean.double(), log_std.double().exp())
        log_p = model.log_prior(z.double(), c)
        z_back = model.destandardize(u, c)
        other = z.flip(0)  # another image's latent, same conditions
        moved_rest = model.standardize(_mixed(other, inside, z), c)
        mean_given_other, _ = model.prior(c, u_s.flip(0))
    assert torch.allclose(u[:, inside], u_s, atol=1e-5)
    assert torch.allclose(u, (z - mean) / log_std.exp(), atol=1e-5)
    assert torch.allclose(log_p, expected.log_prob(z.double()).sum(1), rtol=1e-5)
    assert float((z_back - z).abs().max()) < 1e-4
    # The released block's standardised value reads that block and c, nothing else ...
    assert torch.allclose(moved_rest[:, inside], u[:, inside], atol=1e-6)
    # ... and the other blocks' prior reads it; the released block's own does not.
    assert float((mean_given_other[:, inside] - mean[:, inside]).abs().max()) == 0.0
    outside = torch.ones(z.shape[1], dtype=torch.bool)
    outside[inside] = False
    assert float((mean_given_other[:, outside] - mean[:, outside]).abs().max()) > 1e-3
    with pytest.raises(ModelError, match="hierarchical prior"):
        model.prior_params(c)


def test_the_release_reads_the_image_only_through_the_released_block(
    model: CINN, latents
) -> None:
    """Two images whose coarsest blocks agree get the same output under the same noise:
    the refill of the other blocks is drawn given the privatized block, so nothing of
    the image outside the clipped release reaches the output."""
    z, c = latents
    context = model.coarsest_block
    inside = slice(context.start, context.stop)
    twin = _mixed(z.flip(0), inside, z)  # other fine latents, same coarse block
    config = MechanismConfig(
        kind=MechanismKind.LAPLACE,
        epsilon=2.0,
        delta=None,
        clip=5.0,
        release=(context.start, context.stop),
        temperature=0.8,
    )
    coarse_differs = _mixed(z, inside, z.flip(0))
    outputs = []
    with torch.no_grad():
        for latent in (z, twin, coarse_differs):
            u = model.standardize(latent, c).double()
            private = LatentPrivatizer(config, seed=11)(u, noise_keys=range(len(u)))
            outputs.append(model.destandardize(private.float(), c))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])  # the released block does reach it


def test_hierarchical_checkpoint_roundtrip(model: CINN, latents, tmp_path: Path) -> None:
    z, c = latents
    path = tmp_path / "hierarchical.safetensors"
    card = save_model(path, model, {"privacy_defaults": {"clip_l1": 1.0, "clip_l2": 1.0}})
    assert card["latent"]["prior"] == "hierarchical"
    assert read_model_card(path)["architecture"]["prior"] == "hierarchical"
    loaded, _ = load_model(path)
    assert loaded.prior_reads_latent
    assert any(k.startswith("prior.context_trunk.") for k in loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded.standardize(z, c), model.standardize(z, c))
