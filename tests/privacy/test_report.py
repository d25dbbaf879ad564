import json
import math

import pytest

from cadp_med.errors import PrivacyError
from cadp_med.privacy import MechanismConfig, privacy_report
from cadp_med.privacy._calibration import analytic_gaussian_sigma


def test_laplace_report_numbers_and_snr():
    config = MechanismConfig("laplace", 2.0, None, 3.0, release=(0, 16))
    report = privacy_report(config=config, latent_dim=256, release_dims=16, n_slices=10)
    assert report.is_dp and report.clip_norm == "L1"
    assert report.noise_scale == pytest.approx(2 * 3.0 / 2.0)
    assert report.noise_std == pytest.approx(math.sqrt(2) * 3.0)
    assert report.snr_released == pytest.approx(2.0 / (2 * math.sqrt(2) * 16))
    assert report.snr_all_dims == pytest.approx(2.0 / (2 * math.sqrt(2) * 256))
    assert report.per_slice == (2.0, 0.0)
    assert report.per_study == {"basic": (20.0, 0.0)}


def test_gaussian_report_has_all_compositions():
    config = MechanismConfig("gaussian", 1.0, 1e-5, 1.0)
    report = privacy_report(config=config, latent_dim=64, release_dims=64, n_slices=100)
    sigma = analytic_gaussian_sigma(1.0, 1e-5, 2.0)
    assert report.noise_scale == pytest.approx(sigma)
    assert report.snr_released == pytest.approx((1.0 / 8.0) / sigma)
    assert set(report.per_study) == {"basic", "zcdp", "rdp"}
    assert report.per_study["zcdp"][0] < report.per_study["basic"][0]


def test_statement_and_conditions():
    config = MechanismConfig("laplace", 1.0, None, 1.0)
    text = privacy_report(config=config, latent_dim=8, release_dims=8, n_slices=1).to_text()
    for phrase in (
        "Local differential privacy per image",
        "given its conditions",
        "released unnoised",
        "not in the model's own training set",
        "composition",
        "epsilon = inf is NOT differential privacy",
    ):
        assert phrase in text
    rr = MechanismConfig("laplace", 1.0, None, 1.0, condition_rr_epsilon=0.5)
    report = privacy_report(config=rr, latent_dim=8, release_dims=8, n_slices=1)
    assert "randomized response" in report.conditions and report.per_slice == (1.5, 0.0)


def test_infinite_epsilon_labelled_not_dp():
    config = MechanismConfig("gaussian", math.inf, 1e-5, 1.0)
    report = privacy_report(config=config, latent_dim=8, release_dims=8, n_slices=2)
    assert not report.is_dp
    text = report.to_text()
    assert text.startswith("Privacy: NOT DP")
    assert "epsilon = inf (NOT DP)" in text
    data = report.to_dict()
    assert data["is_dp"] is False and "NOT DP" in data["label"]
    assert data["per_slice"]["epsilon"] == "inf"
    json.dumps(data, allow_nan=False)


def test_release_dims_must_match_config():
    config = MechanismConfig("laplace", 1.0, None, 1.0, release=(4, 12))
    with pytest.raises(PrivacyError, match="release_dims does not match"):
        privacy_report(config=config, latent_dim=64, release_dims=9, n_slices=1)
    report = privacy_report(config=config, latent_dim=64, release_dims=8, n_slices=1)
    assert report.to_dict()["release"] == [4, 12]
