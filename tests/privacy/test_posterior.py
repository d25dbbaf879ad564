import numpy as np
import pytest
from scipy import integrate, stats

from cadp_med.privacy._posterior import (
    gaussian_posterior_mean,
    gaussian_posterior_params,
    gaussian_posterior_sample,
    laplace_posterior_logpdf,
    laplace_posterior_mean,
    laplace_posterior_sample,
)

LAPLACE_CASES = [(0.3, 0.5), (3.0, 0.2), (-2.0, 4.0), (8.0, 0.05), (0.0, 50.0), (-6.0, 1.0)]


def _unnormalized_laplace(z, y, b):
    return stats.norm.pdf(z) * np.exp(-np.abs(y - z) / b)


def _integrate(f, y):
    """Relative-accuracy quadrature split at the kink y (values may be ~1e-16)."""
    lo, hi = min(-12.0, y - 12.0), max(12.0, y + 12.0)
    kw = {"epsabs": 0.0, "epsrel": 1e-11, "limit": 500}
    return integrate.quad(f, lo, y, **kw)[0] + integrate.quad(f, y, hi, **kw)[0]


@pytest.mark.parametrize(("y", "b"), LAPLACE_CASES)
def test_laplace_logpdf_is_normalized_posterior(y, b):
    norm = _integrate(lambda z: _unnormalized_laplace(z, y, b), y)
    grid = np.linspace(-5, 5, 11)
    expected = np.log(_unnormalized_laplace(grid, y, b) / norm)
    np.testing.assert_allclose(laplace_posterior_logpdf(grid, y, b), expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("y", "b"), LAPLACE_CASES)
def test_laplace_sampler_matches_numerical_cdf(y, b):
    grid = np.linspace(-12, 12, 200_001)
    density = np.exp(laplace_posterior_logpdf(grid, y, b))
    cdf = integrate.cumulative_trapezoid(density, grid, initial=0.0)
    cdf /= cdf[-1]
    samples = laplace_posterior_sample(np.full(20_000, y), b, np.random.default_rng(1))
    assert stats.kstest(samples, lambda x: np.interp(x, grid, cdf)).pvalue > 1e-3


@pytest.mark.parametrize(("y", "b"), LAPLACE_CASES)
def test_laplace_posterior_mean_matches_integration(y, b):
    f = lambda z: _unnormalized_laplace(z, y, b)  # noqa: E731
    norm = _integrate(f, y)
    first = _integrate(lambda z: z * f(z), y)
    assert laplace_posterior_mean(np.array([y]), b)[0] == pytest.approx(first / norm, abs=1e-8)


@pytest.mark.parametrize(("y", "s"), [(0.5, 0.3), (-3.0, 2.0), (7.0, 10.0)])
def test_gaussian_closed_form_matches_integration(y, s):
    f = lambda z: stats.norm.pdf(z) * stats.norm.pdf(y, loc=z, scale=s)  # noqa: E731
    norm = integrate.quad(f, -50, 50, limit=200)[0]
    mean = integrate.quad(lambda z: z * f(z), -50, 50, limit=200)[0] / norm
    var = integrate.quad(lambda z: (z - mean) ** 2 * f(z), -50, 50, limit=200)[0] / norm
    m, std = gaussian_posterior_params(np.array([y]), s)
    assert m[0] == pytest.approx(mean, abs=1e-8)
    assert std == pytest.approx(np.sqrt(var), abs=1e-8)
    assert gaussian_posterior_mean(np.array([y]), s)[0] == pytest.approx(mean, abs=1e-8)
    draws = gaussian_posterior_sample(np.full(20_000, y), s, np.random.default_rng(2))
    assert stats.kstest(draws, stats.norm(mean, np.sqrt(var)).cdf).pvalue > 1e-3


def test_posterior_of_prior_release_is_prior():
    """Release y of z ~ N(0,1); posterior draws given y are again N(0, 1) marginally."""
    rng = np.random.default_rng(3)
    b = 0.8
    y = rng.standard_normal(20_000) + rng.laplace(0, b, 20_000)
    draws = laplace_posterior_sample(y, b, rng)
    assert stats.kstest(draws, "norm").pvalue > 1e-3
