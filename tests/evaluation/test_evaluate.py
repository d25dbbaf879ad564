"""End to end: ``cadp-med evaluate --data digits`` on a tiny cINN (CPU, well under a minute).

The assertions are properties of real runs, not fixed numbers:

* o/o accuracy >= p/o accuracy - 0.04.  The 540 test digits give each accuracy a binomial
  standard error of about 1.3 points near 90%, so the difference of two independent
  classifiers has about 1.8 points; 0.04 is over two of those.
* latent linkage at eps = inf is far above chance (>= 4x), and at eps <= 1 within 2x of
  chance (200 queries: the standard error of top-1 at chance 5% is 1.5 points).
* SSIM at the largest eps >= SSIM at the smallest (fidelity rises with eps).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cadp_med.cli import app
from cadp_med.evaluation._report import PLOTS


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("evaluate")
    out = root / "report"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--model", str(root / "digits.safetensors"),
            "--data", "digits",
            "--eps", "0.5,1,inf",
            "--train-epochs", "4",
            "--classifier-epochs", "10",
            "--queries", "200",
            "--no-dpsgd",
            "--device", "cpu",
            "-o", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    return out, report, result.output


def _row(report: dict[str, Any], eps: str) -> dict[str, Any]:
    return next(r for r in report["results"] if r["epsilon"] == eps)


def test_utility_oo_at_least_po(digits_run: tuple[Path, dict[str, Any], str]) -> None:
    _, report, _ = digits_run
    oo = report["utility_protocol"]["oo_accuracy"]
    assert oo > 0.8  # the classifier itself works
    for row in report["results"]:
        assert oo >= row["utility"]["po_accuracy"] - 0.04
        assert row["utility"]["po_accuracy"] > 0.3  # the class survives in the release


def test_linkage_falls_to_chance(digits_run: tuple[Path, dict[str, Any], str]) -> None:
    _, report, _ = digits_run
    chance = report["attack"]["chance_top1"]
    assert chance == pytest.approx(1 / 20)
    assert _row(report, "inf")["linkage"]["latent"]["top1"] >= 4 * chance
    assert _row(report, "inf")["linkage"]["latent"]["auc"] > 0.8
    for eps in ("0.5", "1"):
        for attacker in ("pixel", "latent", "learned"):
            assert _row(report, eps)["linkage"][attacker]["top1"] <= 2 * chance


def test_fidelity_rises_with_eps(digits_run: tuple[Path, dict[str, Any], str]) -> None:
    _, report, _ = digits_run
    ssims = [r["fidelity"]["ssim"] for r in report["results"]]
    assert ssims[-1] >= ssims[0] - 0.01


def test_report_files_and_schema(digits_run: tuple[Path, dict[str, Any], str]) -> None:
    out, report, output = digits_run
    assert report["format"] == "cadp-med-evaluation/1"
    assert set(report) >= {
        "data", "model", "mechanism", "utility_protocol", "attack", "results", "turning_point"
    }  # fmt: skip
    assert report["mechanism"]["release"]["name"] == "fc"  # the card's default release
    assert [r["epsilon"] for r in report["results"]] == ["0.5", "1", "inf"]
    assert [r["dp"] for r in report["results"]] == [True, True, False]
    assert report["results"][-1]["noise_scale"] == 0.0
    assert report["results"][0]["noise_scale"] == pytest.approx(
        2 * report["mechanism"]["clip"] / 0.5
    )
    for row in report["results"]:
        for attacker in ("pixel", "latent", "learned"):
            assert set(row["linkage"][attacker]) == {"top1", "top5", "auc"}
            assert 0.0 <= row["linkage"][attacker]["top1"] <= row["linkage"][attacker]["top5"]
    markdown = (out / "report.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0].startswith("| eps | p/o acc %") and len(table) == 2 + 3 + 1
    assert all(line.count("|") == 17 for line in table)  # 16 columns: 4 + 3 x 3 + 3
    assert "inf (not DP)" in markdown
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| eps |" in output  # the table is printed too


def test_temperature_is_measured_at_training_and_used(
    tmp_path: Path, digits_run: tuple[Path, dict[str, Any], str]
) -> None:
    from cadp_med.evaluation._temperature import DEFAULT_TEMPERATURES
    from cadp_med.model import read_model_card

    out, report, _ = digits_run
    entry = read_model_card(out.parent / "digits.safetensors")["privacy_defaults"]["temperature"]
    assert set(entry["scores"]) == {f"{t:g}" for t in DEFAULT_TEMPERATURES}
    assert entry["value"] == float(min(entry["scores"], key=entry["scores"].get))
    assert entry["epsilon"] == 2.0 and "not trained on" in entry["how_chosen"]
    assert report["mechanism"]["temperature"] == entry["value"]

    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--model", str(out.parent / "digits.safetensors"), "--data", "digits",
            "--eps", "1", "--temperature", "0.3", "--no-dpsgd", "--classifier-epochs", "1",
            "--queries", "20", "--device", "cpu", "--json", "-o", str(tmp_path / "t"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["mechanism"]["temperature"] == 0.3


def test_release_all_and_bad_eps(
    tmp_path: Path, digits_run: tuple[Path, dict[str, Any], str]
) -> None:
    out, _, _ = digits_run
    model = out.parent / "digits.safetensors"
    runner = CliRunner()
    bad = runner.invoke(app, ["evaluate", "--model", str(model), "--eps", "0,1"])
    assert bad.exit_code == 2 and "> 0" in bad.output
    result = runner.invoke(
        app,
        [
            "evaluate", "--model", str(model), "--data", "digits", "--eps", "inf",
            "--release", "all", "--no-dpsgd", "--classifier-epochs", "2", "--queries", "50",
            "--device", "cpu", "--json", "-o", str(tmp_path / "all"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["mechanism"]["release"] == {"name": "all", "start": 0, "stop": 64}
    # Releasing every dimension without noise gives the image back: linkage is perfect.
    assert report["results"][0]["linkage"]["pixel"]["top1"] == 1.0
    assert report["results"][0]["fidelity"]["ssim"] > 0.99


def test_dpsgd_baseline_spends_at_most_its_epsilon() -> None:
    from cadp_med.evaluation import TrainSpec
    from cadp_med.evaluation._classifiers import train_classifier
    from cadp_med.evaluation._data import load_digits_data

    data = load_digits_data()
    x, y = data.x_train[:300], data.y_train[:300]
    _, info = train_classifier(
        x, y, 10, TrainSpec(epochs=2, batch_size=64), seed=0, dp_epsilon=1.0, dp_delta=1 / 300
    )
    assert 0 < info["epsilon"] <= 1.0 + 1e-6
    assert info["noise_multiplier"] > 0
    _, plain = train_classifier(x, y, 10, TrainSpec(epochs=1), seed=0, dp_epsilon=math.inf)
    assert plain == {"epsilon": math.inf, "noise_multiplier": 0.0}


def test_categorical_experiment(tmp_path: Path) -> None:
    from cadp_med.evaluation._categorical import run_categorical

    report = run_categorical(tmp_path, epsilons=(1.0, math.inf), epochs=150)
    assert report["ridge_r2_oo"] > 0.3
    by_eps = {r["epsilon"]: r["ridge_r2_po"] for r in report["results"]}
    # Without noise the release is the clipped record: R^2 stays close to the original's.
    assert abs(by_eps["inf"] - report["ridge_r2_oo"]) < 0.05
    assert np.isfinite(by_eps["1"])
    for label in ("1", "inf"):
        assert (tmp_path / f"categorical_eps{label}.png").stat().st_size > 1000
    assert json.loads((tmp_path / "categorical.json").read_text())["results"][0]["epsilon"] == "1"


def test_gaussian_mechanism_uses_l2_clip_and_delta_one_over_n(
    tmp_path: Path, digits_run: tuple[Path, dict[str, Any], str]
) -> None:
    from cadp_med.privacy import analytic_gaussian_sigma

    out, _, _ = digits_run
    model = out.parent / "digits.safetensors"
    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--model", str(model), "--data", "digits", "--eps", "1",
            "--mechanism", "gaussian", "--no-dpsgd", "--classifier-epochs", "1",
            "--queries", "50", "--device", "cpu", "--json", "-o", str(tmp_path / "g"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    mech = report["mechanism"]
    assert mech["kind"] == "gaussian" and mech["clip_norm"] == "L2"
    assert mech["delta"] == pytest.approx(1 / report["data"]["n_train"])
    sigma = analytic_gaussian_sigma(1.0, mech["delta"], 2 * mech["clip"])
    assert report["results"][0]["noise_scale"] == pytest.approx(sigma)
