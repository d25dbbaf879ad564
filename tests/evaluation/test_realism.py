"""Realism metrics on real images (scikit-learn's digits): floor, ceiling and monotonicity."""

from __future__ import annotations

import numpy as np
import pytest

from cadp_med.evaluation._realism import discriminator_auc, frechet_distance


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The 1,797 real 8x8 digits as 64-d pixel features in [0, 1], shuffled."""
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0
    return x[np.random.default_rng(0).permutation(len(x))]


def test_discriminator_cannot_tell_two_halves_of_real_images(digits: np.ndarray) -> None:
    half = len(digits) // 2
    result = discriminator_auc(digits[:half], digits[half:], seed=1)
    assert abs(result["auc"] - 0.5) < 0.08


def test_discriminator_separates_real_images_from_noise(digits: np.ndarray) -> None:
    half = len(digits) // 2
    noise = np.random.default_rng(2).uniform(0, 1, size=digits[half:].shape)
    assert discriminator_auc(digits[:half], noise, seed=1)["auc"] > 0.99


def test_discriminator_auc_grows_with_the_degradation(digits: np.ndarray) -> None:
    # Dimming the second half of the real images by 5, 10 and 20 % is ever easier to see;
    # none of them is as obvious as noise.
    half = len(digits) // 2
    aucs = [
        discriminator_auc(digits[:half], digits[half:] * s, seed=1)["auc"] for s in (0.95, 0.9, 0.8)
    ]
    assert 0.55 < aucs[0] < aucs[1] < aucs[2] < 0.99


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift(
    digits: np.ndarray,
) -> None:
    assert frechet_distance(digits, digits) == pytest.approx(0.0, abs=1e-6)
    half = len(digits) // 2
    floor = frechet_distance(digits[:half], digits[half:])
    shifted = [frechet_distance(digits[:half], digits[half:] + s) for s in (0.1, 0.2, 0.4)]
    assert floor < shifted[0] < shifted[1] < shifted[2]
    # A mean shift of s in every one of the 64 dims adds 64 s^2 exactly.
    assert shifted[2] - floor == pytest.approx(64 * 0.4**2, rel=0.05)


def test_frechet_distance_rejects_mismatched_features(digits: np.ndarray) -> None:
    with pytest.raises(ValueError):
        frechet_distance(digits[:10], digits[:10, :5])


def test_frechet_distance_matches_the_matrix_square_root_formula(digits: np.ndarray) -> None:
    # On well-conditioned features (the digits' top 10 principal components) the eigh
    # route agrees with the textbook tr(S_a + S_b - 2 sqrtm(S_a S_b)).
    from scipy import linalg

    centred = digits - digits.mean(axis=0)
    features = centred @ np.linalg.svd(centred, full_matrices=False)[2][:10].T
    a, b = features[:900], features[900:] * 1.3 + 0.2
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
