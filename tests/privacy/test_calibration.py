import math

import pytest

from cadp_med.errors import PrivacyError
from cadp_med.privacy._calibration import (
    analytic_gaussian_sigma,
    classical_gaussian_sigma,
    gaussian_log_delta,
)

CASES = [(1.0, 1e-5, 1.0), (0.1, 1e-6, 2.0), (0.5, 1e-3, 0.3), (4.0, 1e-8, 2.0), (20.0, 1e-5, 1.0)]


@pytest.mark.parametrize(("eps", "delta", "sens"), CASES)
def test_condition_holds_at_sigma_and_fails_below(eps, delta, sens):
    sigma = analytic_gaussian_sigma(eps, delta, sens)
    assert gaussian_log_delta(sigma, eps, sens) <= math.log(delta)
    assert gaussian_log_delta(0.99 * sigma, eps, sens) > math.log(delta)


@pytest.mark.parametrize(("eps", "delta", "sens"), [c for c in CASES if c[0] < 1])
def test_tighter_than_classical_bound(eps, delta, sens):
    assert analytic_gaussian_sigma(eps, delta, sens) < classical_gaussian_sigma(eps, delta, sens)


def test_known_value_balle_wang():
    # Balle & Wang 2018: eps=1, delta=1e-5, Delta=1 gives sigma ~ 3.73 (classical 4.84).
    assert analytic_gaussian_sigma(1.0, 1e-5, 1.0) == pytest.approx(3.7306, abs=1e-3)


def test_condition_against_direct_formula():
    from scipy.special import ndtr

    eps, delta, sens = 1.0, 1e-3, 1.0
    s = analytic_gaussian_sigma(eps, delta, sens)
    direct = ndtr(sens / (2 * s) - eps * s / sens) - math.exp(eps) * ndtr(
        -sens / (2 * s) - eps * s / sens
    )
    assert direct == pytest.approx(delta, rel=1e-6)


def test_scales_linearly_with_sensitivity():
    assert analytic_gaussian_sigma(1.0, 1e-5, 4.0) == pytest.approx(
        4 * analytic_gaussian_sigma(1.0, 1e-5, 1.0), rel=1e-9
    )


@pytest.mark.parametrize(
    ("eps", "delta", "sens"),
    [(0.0, 1e-5, 1.0), (math.inf, 1e-5, 1.0), (1.0, 1.0, 1.0), (1, 1e-5, 0)],
)
def test_rejects_invalid(eps, delta, sens):
    with pytest.raises(PrivacyError):
        analytic_gaussian_sigma(eps, delta, sens)
