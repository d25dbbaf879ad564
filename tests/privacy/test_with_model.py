"""End to end with a real (tiny, untrained) CINN from cadp_med.model."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from cadp_med.cli import app
from cadp_med.privacy import LatentPrivatizer, MechanismConfig

model_mod = pytest.importorskip("cadp_med.model", reason="cadp_med.model not available")
pytest.importorskip("FrEIA", reason="FrEIA not installed")

PRIVACY_DEFAULTS = {
    "full": {"clip_l1": 300.0, "clip_l2": 60.0},
    "release": {"clip_l1": 20.0, "clip_l2": 4.0},
    "how_chosen": "test values",
}


@pytest.fixture(scope="module")
def tiny_model():
    config = model_mod.ModelConfig(
        size=64, cond_dim=4, stages=2, blocks_per_stage=1, subnet_width=4, fc_blocks=0
    )
    torch.manual_seed(0)
    return model_mod.build_cinn(config).eval()


def test_report_reads_saved_card(tiny_model, tmp_path):
    path = tmp_path / "tiny.safetensors"
    model_mod.save_model(path, tiny_model, {"privacy_defaults": PRIVACY_DEFAULTS})
    result = CliRunner().invoke(
        app, ["privacy-report", "--eps", "1", "--model", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    block = tiny_model.coarsest_block
    assert data["latent_dim"] == tiny_model.latent_dim
    assert data["release"] == [block.start, block.stop]
    assert data["clip"] == 20.0


def test_encode_privatize_decode(tiny_model):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 64, 64, generator=gen)
    c = torch.rand(3, 4, generator=gen)
    with torch.no_grad():
        z, _ = tiny_model.encode(x, c)
        # No noise, nothing clipped, everything released: decoding gives x back (NOT DP).
        identity = MechanismConfig("gaussian", math.inf, 1e-5, 1e9, postprocess="none")
        back = tiny_model.decode(LatentPrivatizer(identity, seed=0)(z), c)
        torch.testing.assert_close(back, x, atol=1e-4, rtol=1e-4)
        block = tiny_model.coarsest_block
        config = MechanismConfig("laplace", 2.0, None, 20.0, release=(block.start, block.stop))
        private = LatentPrivatizer(config)(z)
        out = tiny_model.decode(private, c)
    assert out.shape == x.shape and torch.isfinite(out).all()
    outside = torch.ones(z.shape[1], dtype=torch.bool)
    outside[block.start : block.stop] = False
    assert not torch.equal(private[:, outside], z[:, outside])
