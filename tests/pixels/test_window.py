"""The intensity window in real privatizing runs: fixed for CT, DP and counted for MR."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.pixels import PixelOptions, PixelStage, read_parameters
from cadp_med.privacy._window import candidate_edges
from tests.conftest import SAMPLE_DATA, TEST_KEY

MR_SERIES = SAMPLE_DATA / "multi_series" / "98892003" / "MR700"  # 7 real MR slices
CT_SERIES = SAMPLE_DATA / "ct_small"  # a real CT slice (pydicom's CT_small)


def _copy(series: Path, tmp_path: Path) -> Path:
    src = tmp_path / "in"
    shutil.copytree(series, src)
    return src


# The window does not depend on the model's domains (tested elsewhere): let every input in.
_ANY_DOMAIN = (
    {"allow_outside_domain": True}
    if "allow_outside_domain" in PixelOptions.__dataclass_fields__
    else {}
)


def _run(
    src: Path, out: Path, model: Path, key: str = TEST_KEY, **pixel: Any
) -> list[pydicom.Dataset]:
    stage = PixelStage(PixelOptions(model=model, device="cpu", **_ANY_DOMAIN, **pixel))
    summary = anonymize_study(
        src, out, key=key.encode(), options=AnonymizeOptions(pixel_stage=stage)
    )
    assert summary.exit_code == 0, summary.quarantine_reasons
    return [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]


def test_ct_uses_the_fixed_hu_window_and_spends_nothing(tmp_path: Path, model_path: Path) -> None:
    outputs = _run(_copy(CT_SERIES, tmp_path), tmp_path / "out", model_path)
    assert len(outputs) == 1
    for ds in outputs:
        params = read_parameters(ds)
        window = params["window"]
        assert (window["method"], window["low"], window["high"]) == ("fixed", -1024.0, 3071.0)
        assert window["epsilon"] == 0.0 and params["epsilon_window"] == 0.0
        assert params["epsilon_latent"] == params["epsilon_slice"] == 2.0
        assert "WindowCenter" not in ds  # none in the input, none made up for CT


def test_mr_window_is_dp_counted_and_replaces_the_voi(tmp_path: Path, model_path: Path) -> None:
    src = _copy(MR_SERIES, tmp_path)
    outputs = _run(src, tmp_path / "out", model_path, seed=3)
    assert len(outputs) == 7
    windows = set()
    for ds in outputs:
        params = read_parameters(ds)
        window = params["window"]
        assert window["method"] == "dp-median" and window["slices"] == 7
        assert window["share"] == 0.1 and window["epsilon"] == pytest.approx(0.2)
        assert params["epsilon_window"] == pytest.approx(0.2)
        assert params["epsilon_latent"] == pytest.approx(1.8)
        # --eps stays the total per image: latent + window.
        total = params["epsilon_latent"] + params["epsilon_window"]
        assert params["epsilon_slice"] == pytest.approx(total) == pytest.approx(2.0)
        assert params["epsilon_study"] == pytest.approx(7 * 2.0)
        assert "differentially private" in params["window_note"]
        windows.add((window["low"], window["high"]))
        # The scanner's Window Center / Width (from the original pixels) are replaced.
        low, high = window["low"], window["high"]
        assert float(ds.WindowCenter) == pytest.approx((low + high) / 2, rel=1e-5)
        assert float(ds.WindowWidth) == pytest.approx(high - low, rel=1e-5)
    [(low, high)] = windows  # one window per series
    edges = candidate_edges(-32768.0, 32767.0, 1.0)  # signed 16-bit, no rescale
    assert low in edges and high in edges and low < high


def test_latent_gets_the_rest_of_the_budget(tmp_path: Path, model_path: Path) -> None:
    from cadp_med.deid import Deidentifier, Profile

    src = _copy(MR_SERIES, tmp_path)
    paths = sorted(p for p in src.iterdir() if p.is_file())
    stage = PixelStage(PixelOptions(model=model_path, device="cpu", epsilon=4.0, **_ANY_DOMAIN))
    stage.prepare(paths)
    original = pydicom.dcmread(paths[0])
    result = Deidentifier(Profile(), TEST_KEY.encode())(original)
    pending = stage.prepare_instance(original, result)
    assert pending.config.epsilon == pytest.approx(3.6)
    assert pending.privatizer.config.epsilon == pytest.approx(3.6)
    assert pending.window["epsilon"] == pytest.approx(0.4)


def test_seeded_and_keyed_runs_reproduce_the_window(tmp_path: Path, model_path: Path) -> None:
    src = _copy(MR_SERIES, tmp_path)
    first = _run(src, tmp_path / "a", model_path, seed=11)
    second = _run(src, tmp_path / "b", model_path, seed=11)
    for a, b in zip(first, second, strict=True):
        assert read_parameters(a)["window"] == read_parameters(b)["window"]
        assert a.PixelData == b.PixelData
    # Unseeded: the window's draw is keyed, so a rerun (or resumed run) releases the same
    # window once; the latent noise is fresh.
    keyed = [_run(src, tmp_path / f"k{i}", model_path) for i in range(2)]
    assert read_parameters(keyed[0][0])["window"] == read_parameters(keyed[1][0])["window"]
    assert any(a.PixelData != b.PixelData for a, b in zip(*keyed, strict=True))


def test_study_budget_and_share_zero(tmp_path: Path, model_path: Path) -> None:
    src = _copy(MR_SERIES, tmp_path)
    for ds in _run(src, tmp_path / "study", model_path, budget="study"):
        params = read_parameters(ds)
        assert params["epsilon_slice"] == pytest.approx(2.0 / 7, abs=1e-6)
        assert params["epsilon_window"] == pytest.approx(0.1 * 2.0 / 7, abs=1e-6)
        assert params["epsilon_study"] == pytest.approx(2.0)
    for ds in _run(src, tmp_path / "zero", model_path, window_eps_share=0.0):
        params = read_parameters(ds)
        window = params["window"]
        assert (window["method"], window["low"], window["high"]) == ("range", -32768.0, 32767.0)
        assert params["epsilon_window"] == 0.0 and params["epsilon_latent"] == 2.0


def test_eps_inf_window_is_exact_and_labelled_not_dp(tmp_path: Path, model_path: Path) -> None:
    src = _copy(MR_SERIES, tmp_path)
    outputs = _run(src, tmp_path / "out", model_path, epsilon=float("inf"))
    params = read_parameters(outputs[0])
    assert params["window"]["method"] == "percentile" and "NOT DP" in params["window_note"]
    medians = []
    for path in sorted(p for p in src.iterdir() if p.is_file()):
        pixels = pydicom.dcmread(path).pixel_array.astype(np.float64).ravel()[::4]
        medians.append(np.percentile(pixels, [0.5, 99.5]))
    low, high = np.median(np.asarray(medians), axis=0)
    assert params["window"]["low"] == pytest.approx(low)
    assert params["window"]["high"] == pytest.approx(high)


def test_window_share_is_validated() -> None:
    from cadp_med.errors import ConfigError

    with pytest.raises(ConfigError, match="window eps share"):
        PixelOptions(window_eps_share=1.0)
    assert PixelOptions(window_eps_share=0.25).to_dict()["window_eps_share"] == 0.25
