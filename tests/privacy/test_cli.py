import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cadp_med.cli import app

runner = CliRunner()
EXPLICIT = ["--latent-dim", "64", "--release-dims", "8", "--clip", "3"]


def _invoke(*args):
    return runner.invoke(app, ["privacy-report", *args])


def test_explicit_dims_text():
    result = _invoke("--eps", "2", *EXPLICIT, "--slices", "5")
    assert result.exit_code == 0, result.output
    assert "Mechanism: laplace, L1 clip C = 3" in result.output
    assert "Per study (5 slices, basic): epsilon = 10" in result.output


def test_json_and_not_dp():
    result = _invoke("--eps", "inf", *EXPLICIT, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["is_dp"] is False and "NOT DP" in data["label"]


def test_gaussian_needs_delta_and_study_budget_splits():
    result = _invoke("--eps", "2", "--mechanism", "gaussian", *EXPLICIT)
    assert result.exit_code == 2 and "delta" in result.output
    result = _invoke(
        "--eps", "4", "--mechanism", "gaussian", "--delta", "1e-4", *EXPLICIT,
        "--slices", "8", "--budget", "study", "--json",
    )  # fmt: skip
    data = json.loads(result.output)
    assert data["per_slice"]["epsilon"] == pytest.approx(0.5)
    assert data["per_study"]["basic"]["epsilon"] == pytest.approx(4.0)


def test_missing_clip_or_bad_release_is_a_usage_error():
    assert _invoke("--eps", "1", "--latent-dim", "64", "--release-dims", "8").exit_code == 2
    assert _invoke("--eps", "1", *EXPLICIT, "--release", "finest").exit_code == 2


def test_report_path_does_not_import_torch():
    code = (
        "import sys\n"
        "from cadp_med.cli._privacy_report import privacy_report\n"
        "privacy_report(eps=1.0, mechanism='gaussian', delta=1e-5, clip=1.0, release='all',"
        " slices=3, budget='slice', rr_eps=None, window_share=0.1, model=None,"
        " latent_dim=16, release_dims=None, as_json=True)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _write_card(path, card):
    """A tensorless safetensors file whose header metadata holds the model card."""
    import struct

    checkpoint = pytest.importorskip(
        "cadp_med.model.checkpoint", reason="cadp_med.model.checkpoint not landed yet"
    )
    if not hasattr(checkpoint, "read_model_card"):
        pytest.skip("read_model_card not available yet")
    card = {"format": checkpoint.CARD_FORMAT, **card}
    header = json.dumps({"__metadata__": {checkpoint.CARD_KEY: json.dumps(card)}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    return path


CARD = {
    "latent": {
        "dim": 128,
        "blocks": [],
        "default_release": {"start": 112, "stop": 128, "name": "coarsest"},
    },
    "privacy_defaults": {
        "full": {"clip_l1": 40.0, "clip_l2": 5.0},
        "release": {"clip_l1": 6.0, "clip_l2": 2.0},
        "how_chosen": "test",
    },
}


def test_model_card_file(tmp_path):
    model = str(_write_card(tmp_path / "m.safetensors", CARD))
    data = json.loads(_invoke("--eps", "1", "--model", model, "--json").output)
    assert data["latent_dim"] == 128 and data["release"] == [112, 128]
    assert data["release_dims"] == 16 and data["clip"] == 6.0
    data = json.loads(_invoke("--eps", "1", "--model", model, "--release", "all", "--json").output)
    assert data["clip"] == 40.0 and data["release_dims"] == 128
    args = ["--eps", "1", "--mechanism", "gaussian", "--delta", "1e-6", "--model", model]
    data = json.loads(_invoke(*args, "--clip", "0.5", "--json").output)
    assert data["clip"] == 0.5 and data["clip_norm"] == "L2"
    assert json.loads(_invoke(*args, "--json").output)["clip"] == 2.0


def test_model_card_path_does_not_import_torch(tmp_path):
    model = str(_write_card(tmp_path / "m.safetensors", CARD))
    code = (
        "import sys\n"
        "from cadp_med.cli._privacy_report import privacy_report\n"
        "privacy_report(eps=1.0, mechanism='laplace', delta=None, clip=None,"
        f" release='coarsest', slices=3, budget='slice', rr_eps=None, window_share=0.1,"
        f" model={model!r}, latent_dim=None, release_dims=None, as_json=True)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_unreadable_model_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"nope")
    result = _invoke("--eps", "1", "--model", str(bad))
    assert result.exit_code == 2 and "error:" in result.output


def test_window_share_is_reported_and_keeps_the_totals():
    result = _invoke("--eps", "2", *EXPLICIT, "--slices", "5", "--json")
    data = json.loads(result.output)
    assert data["window_share"] == pytest.approx(0.1)
    assert data["window_epsilon"] == pytest.approx(0.2)
    assert data["latent_epsilon"] == pytest.approx(1.8)
    assert data["per_slice"]["epsilon"] == pytest.approx(2.0)
    assert data["per_study"]["basic"]["epsilon"] == pytest.approx(10.0)
    assert data["noise_scale"] == pytest.approx(data["fixed_window_noise_scale"] / 0.9)
    text = _invoke("--eps", "2", *EXPLICIT, "--window-eps-share", "0.25").output
    assert "Intensity window" in text and "epsilon = 0.5 per slice (share 0.25)" in text
    assert _invoke("--eps", "2", *EXPLICIT, "--window-eps-share", "1").exit_code == 2
