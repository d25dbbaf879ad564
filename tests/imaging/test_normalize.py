from __future__ import annotations

import numpy as np
import pytest

from cadp_med.errors import ConfigError
from cadp_med.imaging import Normalizer, SliceRecord


def test_ct_window_is_fixed_whatever_the_image() -> None:
    norm = Normalizer()
    window = norm.fit(np.array([-50.0, 0.0, 40.0]), modality="CT")
    assert (window["low"], window["high"], window["method"]) == (-1024.0, 3071.0, "fixed")
    assert norm.fit(np.array([500.0, 900.0]), modality="CT") == window


def test_forward_inverse_exact_inside_window_in_modality_units() -> None:
    norm = Normalizer()
    window = norm.fit(np.zeros(3), modality="CT")
    hu = np.linspace(-1024.0, 3071.0, 10001)
    back = norm.inverse(norm.forward(hu, window), window)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, hu, rtol=0, atol=1e-4)
    # float32 (what the model sees) keeps the error below 1e-4 of the window width.
    back32 = norm.inverse(norm.forward(hu.astype(np.float32), window), window)
    assert back32.dtype == np.float32
    assert np.max(np.abs(back32 - hu)) <= 1e-4 * (3071.0 + 1024.0)


def test_forward_clips_outside_window() -> None:
    window = Normalizer().fit(np.zeros(1), modality="CT")
    out = Normalizer.forward(np.array([-3000.0, 5000.0]), window)
    np.testing.assert_array_equal(out, [0.0, 1.0])


def test_forward_matches_monai_scale_intensity_range() -> None:
    from monai.transforms import ScaleIntensityRange

    window = {"low": -100.0, "high": 400.0}
    pixels = np.random.default_rng(0).uniform(-300, 600, size=(32, 32)).astype(np.float32)
    monai_out = ScaleIntensityRange(a_min=-100.0, a_max=400.0, b_min=0.0, b_max=1.0, clip=True)(
        pixels
    )
    np.testing.assert_allclose(Normalizer.forward(pixels, window), np.asarray(monai_out), atol=1e-6)


def test_mr_window_is_per_series_percentiles_not_per_slice() -> None:
    rng = np.random.default_rng(1)
    dim = SliceRecord(rng.uniform(0, 100, (16, 16)), (1.0, 1.0), {"modality": "MR"})
    bright = SliceRecord(rng.uniform(0, 1000, (16, 16)), (1.0, 1.0), {"modality": "MR"})
    window = Normalizer().fit([dim, bright])
    values = np.concatenate([dim.pixels.ravel(), bright.pixels.ravel()])
    assert window["method"] == "percentile"
    assert window["low"] == pytest.approx(np.percentile(values, 0.5))
    assert window["high"] == pytest.approx(np.percentile(values, 99.5))
    # The dim slice stays dim: one scale for the series.
    assert Normalizer.forward(dim.pixels, window).max() < 0.2


def test_spec_round_trip_and_validation() -> None:
    norm = Normalizer(fixed_windows={"CT": (-1000, 2000)}, percentiles=(1, 99))
    again = Normalizer.from_spec(norm.to_spec())
    assert again.to_spec() == norm.to_spec()
    with pytest.raises(ConfigError):
        Normalizer(percentiles=(99, 1))
    with pytest.raises(ConfigError):
        Normalizer(fixed_windows={"CT": (10, 10)})
    with pytest.raises(ConfigError):
        Normalizer.from_spec({"percentiles": [0.5, 99.5]})


def test_constant_series_gets_an_invertible_window() -> None:
    window = Normalizer().fit(np.full((4, 4), 7.0), modality="MR")
    assert window["high"] > window["low"]
    assert Normalizer.inverse(Normalizer.forward(np.array([7.0]), window), window)[0] == 7.0
