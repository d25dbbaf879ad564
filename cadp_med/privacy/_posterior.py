"""Posterior post-processing of a noisy latent release under a N(0, 1) prior.

The decoder expects latents distributed like the INN prior N(0, I), whereas the raw
release ``y = clip(z) + noise`` is over-dispersed.  We decode a draw (or the mean) of
the posterior of each released coordinate given ``y``, treating the prior of that
coordinate as N(0, 1).  This is an approximation — the clipped value is not exactly the
prior variable — but post-processing never weakens differential privacy, so the
guarantee holds regardless; only utility depends on the approximation.

Gaussian noise (std s): the posterior is N(y / (1 + s^2), s^2 / (1 + s^2)).

Laplace noise (scale b): the posterior density is proportional to
``phi(z) exp(-|y - z| / b)``.  Since ``phi(z) exp(+-z/b) = exp(1/(2b^2)) phi(z -+ 1/b)``
it is the two-piece mixture

* A: N(1/b, 1) truncated to (-inf, y), weight ``w_A ~ exp(-y/b) Phi(y - 1/b)``
* B: N(-1/b, 1) truncated to (y, inf), weight ``w_B ~ exp(y/b) Phi(-y - 1/b)``

sampled exactly by inverse CDF in log space (``log_ndtr`` / ``ndtri_exp``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_ndtr, ndtri_exp

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


def gaussian_posterior_params(y: np.ndarray, noise_std: float) -> tuple[np.ndarray, float]:
    """Mean array and (common) std of the Gaussian-noise posterior."""
    s2 = noise_std**2
    return np.asarray(y, dtype=float) / (1.0 + s2), float(np.sqrt(s2 / (1.0 + s2)))


def gaussian_posterior_sample(
    y: np.ndarray, noise_std: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw from N(y/(1+s^2), s^2/(1+s^2)) elementwise."""
    mean, std = gaussian_posterior_params(y, noise_std)
    return mean + std * rng.standard_normal(mean.shape)


def gaussian_posterior_mean(y: np.ndarray, noise_std: float) -> np.ndarray:
    """Posterior mean y/(1+s^2)."""
    return gaussian_posterior_params(y, noise_std)[0]


def _laplace_pieces(y: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inv_b = 1.0 / scale
    t_a = y - inv_b  # standardized upper bound of piece A
    t_b = -y - inv_b  # standardized (negated) lower bound of piece B
    log_w_a = -y * inv_b + log_ndtr(t_a)
    log_w_b = y * inv_b + log_ndtr(t_b)
    prob_a = expit(log_w_a - log_w_b)
    return prob_a, t_a, t_b


def laplace_posterior_logpdf(z: np.ndarray, y: float, scale: float) -> np.ndarray:
    """Normalized log posterior density of z given a Laplace release y (for tests)."""
    inv_b = 1.0 / scale
    log_w_a = -y * inv_b + log_ndtr(y - inv_b)
    log_w_b = y * inv_b + log_ndtr(-y - inv_b)
    log_norm = np.logaddexp(log_w_a, log_w_b) + 0.5 * inv_b**2
    z = np.asarray(z, dtype=float)
    return -0.5 * z**2 - _LOG_SQRT_2PI - np.abs(y - z) * inv_b - log_norm


def laplace_posterior_sample(y: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Exact elementwise draw from the posterior ``phi(z) exp(-|y - z|/b)``.

    Parameters
    ----------
    y : numpy.ndarray
        Noisy release.
    scale : float
        Laplace scale b > 0.
    rng : numpy.random.Generator
        Source of randomness.
    """
    y = np.asarray(y, dtype=float)
    inv_b = 1.0 / scale
    prob_a, t_a, t_b = _laplace_pieces(y, scale)
    pick_a = rng.random(y.shape) < prob_a
    log_u = np.log1p(-rng.random(y.shape))  # log of U(0, 1], never -inf
    # A: 1/b + X, X ~ N(0,1) | X < t_a   -> X = ndtri_exp(log u + log Phi(t_a))
    z_a = inv_b + ndtri_exp(log_u + log_ndtr(t_a))
    # B: -1/b + X, X ~ N(0,1) | X > -t_b  -> -X ~ N(0,1) | -X < t_b
    z_b = -inv_b - ndtri_exp(log_u + log_ndtr(t_b))
    out = np.where(pick_a, z_a, z_b)
    # Guard against rounding a hair outside the piece supports.
    return np.where(pick_a, np.minimum(out, y), np.maximum(out, y))


def laplace_posterior_mean(y: np.ndarray, scale: float) -> np.ndarray:
    """Closed-form posterior mean from the truncated-normal mixture.

    ``E_A = 1/b - phi(t_a)/Phi(t_a)``, ``E_B = -1/b + phi(t_b)/Phi(t_b)``.
    """
    y = np.asarray(y, dtype=float)
    inv_b = 1.0 / scale
    prob_a, t_a, t_b = _laplace_pieces(y, scale)
    mills_a = np.exp(-0.5 * t_a**2 - _LOG_SQRT_2PI - log_ndtr(t_a))
    mills_b = np.exp(-0.5 * t_b**2 - _LOG_SQRT_2PI - log_ndtr(t_b))
    return prob_a * (inv_b - mills_a) + (1.0 - prob_a) * (-inv_b + mills_b)


__all__ = [
    "gaussian_posterior_mean",
    "gaussian_posterior_params",
    "gaussian_posterior_sample",
    "laplace_posterior_logpdf",
    "laplace_posterior_mean",
    "laplace_posterior_sample",
]
