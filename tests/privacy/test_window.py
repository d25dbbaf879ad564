"""The DP intensity window: exact exponential-mechanism probabilities, per-slice
sensitivity, and its place in the accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cadp_med.errors import PrivacyError
from cadp_med.privacy import MechanismConfig, per_slice, split_budget, split_window, study_total
from cadp_med.privacy._window import (
    bin_utilities,
    candidate_edges,
    dp_median_bin,
    dp_window,
    median_probabilities,
    slice_percentiles,
)

LAP = MechanismConfig("laplace", 2.0, None, 1.0)
GAUSS = MechanismConfig("gaussian", 1.0, 1e-6, 1.0)


def test_grid_depends_only_on_the_range_and_unit() -> None:
    edges = candidate_edges(0.0, 65535.0, 1.0)
    assert edges[0] == 0.0 and edges[-1] == 65535.0
    assert np.all(np.diff(edges) > 0)
    assert list(edges[:24]) == list(range(24))  # integer steps near 0, then 4.4 %
    ratios = edges[101:-1] / edges[100:-2]
    assert np.all(ratios < 1.06)
    signed = candidate_edges(-32768.0, 32767.0, 1.0)
    assert 0.0 in signed and -1024.0 in signed and signed[0] == -32768.0
    scaled = candidate_edges(0.0, 1.0, 1.0 / 65535.0)  # a float volume's int16 steps
    assert scaled[1] == pytest.approx(1.0 / 65535.0) and scaled[-1] == 1.0
    with pytest.raises(PrivacyError, match="high > low"):
        candidate_edges(5.0, 5.0, 1.0)


def test_utilities_by_enumeration() -> None:
    """u_j = -max(#values below the bin, #values above it), counted by hand."""
    edges = np.array([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    values = np.array([1.0, 3.0, 3.5, 7.0, 10.0])
    expected = []
    for j in range(5):
        lo, hi = edges[j], edges[j + 1]
        below = sum(v < lo for v in values)
        above = sum(v > hi if j == 4 else v >= hi for v in values)
        expected.append(-max(below, above))
    assert list(bin_utilities(values, edges)) == expected == [-4, -2, -3, -3, -4]


def test_probabilities_are_the_exponential_mechanism() -> None:
    edges = np.array([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    values = np.array([1.0, 3.0, 3.5, 7.0, 10.0])
    eps = 1.3
    weights = np.exp(eps * np.array([-4, -2, -3, -3, -4]) / 2.0)
    assert np.allclose(median_probabilities(values, edges, eps), weights / weights.sum())


def test_draws_follow_the_exact_probabilities() -> None:
    """Chi-square of 20 000 draws against the exact P(j) (fails for a wrong sampler)."""
    edges = np.array([0.0, 2.0, 4.0, 6.0, 8.0, 10.0])
    values = np.array([1.0, 3.0, 3.5, 7.0, 10.0])
    probabilities = median_probabilities(values, edges, 1.3)
    rng = np.random.default_rng(7)
    draws = [dp_median_bin(values, edges, 1.3, rng) for _ in range(20_000)]
    observed = np.bincount(draws, minlength=5)
    result = stats.chisquare(observed, 20_000 * probabilities)
    assert result.pvalue > 1e-3
    # The same test rejects the mechanism at the wrong scale (no factor 2).
    wrong = np.exp(1.3 * bin_utilities(values, edges))
    assert stats.chisquare(observed, 20_000 * wrong / wrong.sum()).pvalue < 1e-6


series = st.lists(
    st.lists(st.floats(-2000, 5000, allow_nan=False), min_size=1, max_size=30),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(series, st.integers(0, 11), st.lists(st.floats(-2000, 5000), min_size=1, max_size=30))
def test_replacing_one_slice_moves_each_utility_by_at_most_one(
    slices: list[list[float]], which: int, replacement: list[float]
) -> None:
    """Sensitivity 1 per slice: one slice is one value per list, whatever its pixels."""
    which %= len(slices)
    other = [*slices[:which], replacement, *slices[which + 1 :]]
    edges = candidate_edges(-2048.0, 6000.0, 1.0)
    eps = 0.7
    for a, b in zip(
        slice_percentiles([np.array(s) for s in slices], (0.5, 99.5)),
        slice_percentiles([np.array(s) for s in other], (0.5, 99.5)),
        strict=True,
    ):
        assert np.sum(a != b) <= 1
        assert np.max(np.abs(bin_utilities(a, edges) - bin_utilities(b, edges))) <= 1.0
        ratio = median_probabilities(a, edges, eps) / median_probabilities(b, edges, eps)
        assert np.all(np.abs(np.log(ratio)) <= eps + 1e-9)  # eps-DP, bin by bin


def test_window_concentrates_when_eps_times_slices_is_large() -> None:
    rng = np.random.default_rng(0)
    slices = [rng.normal(500.0, 100.0, 4096).clip(0.0) for _ in range(40)]
    lows, highs = slice_percentiles(slices, (0.5, 99.5))
    window = dp_window(
        lows, highs, value_range=(0.0, 65535.0), unit=1.0, epsilon=4.0, rng=rng
    )
    assert window["slices"] == 40 and window["epsilon"] == 4.0
    assert abs(window["low"] - np.median(lows)) < 0.1 * np.median(lows)
    assert abs(window["high"] - np.median(highs)) < 0.1 * np.median(highs)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_window_is_never_empty_even_at_tiny_eps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = dp_window(
        np.array([10.0]), np.array([20.0]), value_range=(-100.0, 100.0), unit=1.0,
        epsilon=1e-3, rng=rng,
    )
    assert -100.0 <= window["low"] < window["high"] <= 100.0


def test_split_window_keeps_the_slice_total() -> None:
    latent, window = split_window(LAP, 0.1)
    assert latent.epsilon == pytest.approx(1.8) and window == pytest.approx(0.2)
    assert per_slice(latent, window) == pytest.approx((2.0, 0.0))
    g_latent, g_window = split_window(GAUSS, 0.25)
    assert per_slice(g_latent, g_window) == pytest.approx((1.0, 1e-6))
    assert split_window(LAP, 0.0) == (LAP, 0.0)
    inf = MechanismConfig("laplace", math.inf, None, 1.0)
    assert split_window(inf, 0.1) == (inf, 0.0)
    with pytest.raises(PrivacyError, match="share"):
        split_window(LAP, 1.0)


def test_study_budget_with_window_sums_to_eps() -> None:
    per = split_budget(8.0, 16, base=LAP)
    latent, window = split_window(per, 0.1)
    assert study_total(latent, 16, "basic", window_epsilon=window)[0] == pytest.approx(8.0)
    g_latent, g_window = split_window(split_budget(8.0, 16, 1e-4, base=GAUSS), 0.1)
    basic = study_total(g_latent, 16, "basic", window_epsilon=g_window)
    assert basic == pytest.approx((8.0, 1e-4))
    # zcdp / rdp compose the latent; the window adds linearly (group privacy).
    zcdp = study_total(g_latent, 16, "zcdp", window_epsilon=g_window)[0]
    assert zcdp == pytest.approx(study_total(g_latent, 16, "zcdp")[0] + 16 * g_window)
    with pytest.raises(PrivacyError, match="window_epsilon"):
        per_slice(LAP, -1.0)
