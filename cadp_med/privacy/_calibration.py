"""Noise calibration: Laplace scale and the analytic Gaussian mechanism.

References
----------
.. [1] B. Balle and Y.-X. Wang, "Improving the Gaussian Mechanism for Differential
   Privacy: Analytical Calibration and Optimal Denoising", ICML 2018, Algorithm 1 and
   Theorem 8.
.. [2] C. Dwork and A. Roth, "The Algorithmic Foundations of Differential Privacy",
   2014, Theorem A.1 (the classical bound sigma >= Delta sqrt(2 ln(1.25/delta)) / eps,
   valid only for eps < 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import log_ndtr

from cadp_med.errors import PrivacyError
from cadp_med.privacy._config import MechanismConfig, MechanismKind


def gaussian_log_delta(sigma: float, epsilon: float, sensitivity: float) -> float:
    """Natural log of the exact delta of the Gaussian mechanism at ``sigma``.

    ``delta(sigma) = Phi(D/(2s) - e s/D) - exp(e) Phi(-D/(2s) - e s/D)`` ([1]_, Thm 8),
    evaluated in log space with ``log_ndtr`` so that tiny deltas do not underflow.

    Parameters
    ----------
    sigma : float
        Noise standard deviation, > 0.
    epsilon : float
        Target epsilon, > 0 and finite.
    sensitivity : float
        L2 sensitivity Delta, > 0.

    Returns
    -------
    float
        ``log(delta(sigma))``; ``-inf`` if delta(sigma) underflows to 0.
    """
    a = sensitivity / (2.0 * sigma) - epsilon * sigma / sensitivity
    b = -sensitivity / (2.0 * sigma) - epsilon * sigma / sensitivity
    log_pa = float(log_ndtr(a))
    log_ratio = epsilon + float(log_ndtr(b)) - log_pa  # < 0 always (exact condition)
    if log_ratio >= 0.0:
        return -math.inf
    return log_pa + math.log(-math.expm1(log_ratio))


def analytic_gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Smallest sigma for which the Gaussian mechanism is (epsilon, delta)-DP.

    Binary search on the exact condition of Balle & Wang ([1]_, Algorithm 1), valid for
    every epsilon > 0 (unlike the classical bound [2]_).  The returned sigma satisfies
    the condition (the search keeps the upper, feasible end of the bracket) and is
    within a relative 1e-12 of the infimum.

    Parameters
    ----------
    epsilon : float
        > 0 and finite.
    delta : float
        In (0, 1).
    sensitivity : float
        L2 sensitivity Delta > 0 (here 2C for replacement of a clipped latent).

    Returns
    -------
    float
        The noise standard deviation sigma.

    Raises
    ------
    PrivacyError
        For parameters outside these ranges.
    """
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise PrivacyError("analytic Gaussian calibration needs a finite epsilon > 0")
    if not 0.0 < delta < 1.0:
        raise PrivacyError("analytic Gaussian calibration needs delta in (0, 1)")
    if not (math.isfinite(sensitivity) and sensitivity > 0):
        raise PrivacyError("sensitivity must be a finite number > 0")
    log_delta = math.log(delta)

    def feasible(sigma: float) -> bool:
        return gaussian_log_delta(sigma, epsilon, sensitivity) <= log_delta

    hi = sensitivity
    while not feasible(hi):
        hi *= 2.0
    lo = hi / 2.0
    while feasible(lo) and lo > 1e-300:
        hi, lo = lo, lo / 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if feasible(mid):
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


def classical_gaussian_sigma(epsilon: float, delta: float, sensitivity: float) -> float:
    """Classical bound ``Delta sqrt(2 ln(1.25/delta)) / epsilon`` ([2]_; needs eps < 1)."""
    return sensitivity * math.sqrt(2.0 * math.log(1.25 / delta)) / epsilon


def noise_scale(config: MechanismConfig) -> float:
    """Per-dimension noise parameter: Laplace scale b = 2C/eps or Gaussian sigma.

    Returns 0.0 when ``epsilon`` is infinite (no noise, NOT DP).
    """
    if not config.is_dp:
        return 0.0
    if config.kind is MechanismKind.LAPLACE:
        return config.sensitivity / config.epsilon
    assert config.delta is not None
    return analytic_gaussian_sigma(config.epsilon, config.delta, config.sensitivity)


def noise_std(config: MechanismConfig) -> float:
    """Per-dimension noise standard deviation (sqrt(2) b for Laplace, sigma for Gaussian)."""
    scale = noise_scale(config)
    return float(np.sqrt(2.0) * scale) if config.kind is MechanismKind.LAPLACE else scale


__all__ = [
    "analytic_gaussian_sigma",
    "classical_gaussian_sigma",
    "gaussian_log_delta",
    "noise_scale",
    "noise_std",
]
