"""The mechanism under a conditional prior N(mu(c), diag sigma(c)^2).

* The posterior sample it decodes is exactly the posterior of the prior times the noise
  likelihood, computed here by numerical integration on a grid (Laplace and Gaussian).
* Clipping the standardised latent keeps the sensitivity: two images' clipped releases
  (``clipped_release``, the very function ``privatize_vector`` clips with) differ by at
  most 2C in the mechanism's norm, whatever their latents and priors.
* The refill of the unreleased dims is mu(c) + temperature * sigma(c) * N(0, 1).
* ``privacy-report`` says that the guarantee is unchanged for a conditional-prior model.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from cadp_med.errors import PrivacyError
from cadp_med.privacy import MechanismConfig, noise_scale
from cadp_med.privacy._mechanism import clipped_release, privatize_vector
from cadp_med.privacy.report import privacy_report

MU, SIGMA = 1.7, 0.4  # the conditional prior of the one released dim, given c
Y = 0.9  # the noisy standardised release we condition on
N_DRAWS = 4000

# Clip and epsilon chosen so that the noise scale is about 1 and |u| never reaches C: the
# posterior then involves the prior and the noise only (the mechanism, like the paper,
# treats the clipped value as the prior variable).
MECHANISMS = {
    "laplace": {"kind": "laplace", "epsilon": 50.0, "delta": None, "clip": 25.0},
    "gaussian": {"kind": "gaussian", "epsilon": 400.0, "delta": 1e-5, "clip": 10.0},
}


def _noise_draws(config: MechanismConfig, seed: int) -> tuple[np.random.Generator, float]:
    """A generator positioned after the mechanism's refill and noise draws, and the noise.

    privatize_vector draws, in order: the refill [D], the noise [|S|], then the posterior.
    Replaying the first two tells which latent gives the release ``Y`` for this seed.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    rng.standard_normal(1)
    scale = noise_scale(config)
    if config.clip_norm == "L1":
        noise = float(rng.laplace(0.0, scale, 1)[0])
    else:
        noise = float(scale * rng.standard_normal(1)[0])
    return rng, noise


def _posterior_samples(config: MechanismConfig) -> np.ndarray:
    out = np.empty(N_DRAWS)
    for seed in range(N_DRAWS):
        _, noise = _noise_draws(config, seed)
        u = Y - noise  # so that u + noise == Y
        assert abs(u) < config.clip
        z = np.array([MU + SIGMA * u])
        rng = np.random.Generator(np.random.PCG64(seed))
        out[seed] = privatize_vector(
            z, config, rng, prior_mean=np.array([MU]), prior_std=np.array([SIGMA])
        )[0]
    return out


def _numerical_posterior(config: MechanismConfig) -> tuple[np.ndarray, np.ndarray]:
    """Grid over z and the normalised posterior density p(z | Y) by direct integration."""
    grid = np.linspace(MU - 8 * SIGMA, MU + 8 * SIGMA, 40_001)
    scale = noise_scale(config)
    u = (grid - MU) / SIGMA
    prior = stats.norm.pdf(grid, MU, SIGMA)
    if config.clip_norm == "L1":
        likelihood = stats.laplace.pdf(Y - u, scale=scale)
    else:
        likelihood = stats.norm.pdf(Y - u, scale=scale)
    density = prior * likelihood
    return grid, density / np.trapezoid(density, grid)


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_posterior_sample_matches_the_numerical_posterior(name: str) -> None:
    config = MechanismConfig(**MECHANISMS[name], release=(0, 1))
    samples = _posterior_samples(config)
    grid, density = _numerical_posterior(config)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(grid))])
    result = stats.kstest(samples, lambda v: np.interp(v, grid, cdf))
    assert result.pvalue > 1e-3, result
    mean = np.trapezoid(grid * density, grid)
    sd = np.sqrt(np.trapezoid((grid - mean) ** 2 * density, grid))
    assert abs(samples.mean() - mean) < 4 * sd / np.sqrt(N_DRAWS)
    # The posterior is not the prior: the release moved it.
    assert abs(mean - MU) > 0.5 * SIGMA * abs(Y) / 2
    assert stats.kstest(samples, stats.norm(MU, SIGMA).cdf).pvalue < 1e-6


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_posterior_mean_matches_the_numerical_posterior(name: str) -> None:
    config = MechanismConfig(**MECHANISMS[name], release=(0, 1), postprocess="posterior-mean")
    rng, noise = _noise_draws(config, 7)
    z = np.array([MU + SIGMA * (Y - noise)])
    got = privatize_vector(
        z,
        config,
        np.random.Generator(np.random.PCG64(7)),
        prior_mean=np.array([MU]),
        prior_std=np.array([SIGMA]),
    )[0]
    grid, density = _numerical_posterior(config)
    assert got == pytest.approx(np.trapezoid(grid * density, grid), abs=1e-6)


def test_refill_is_drawn_from_the_conditional_prior_at_temperature() -> None:
    dim = 6
    mean = np.linspace(-2.0, 3.0, dim)
    std = np.linspace(0.1, 2.0, dim)
    config = MechanismConfig(
        kind="laplace", epsilon=1.0, delta=None, clip=3.0, release=(4, 6), temperature=0.5
    )
    image = np.full(dim, 100.0)  # far from the prior: the refill must not see it
    rows = np.stack(
        [
            privatize_vector(
                image,
                config,
                np.random.Generator(np.random.PCG64(seed)),
                prior_mean=mean,
                prior_std=std,
            )
            for seed in range(3000)
        ]
    )
    for j in range(4):
        standardised = (rows[:, j] - mean[j]) / (0.5 * std[j])
        assert stats.kstest(standardised, "norm").pvalue > 1e-3
    # Temperature 0: the refill is the prior mean itself.
    cold = privatize_vector(
        image,
        MechanismConfig(
            kind="laplace", epsilon=1.0, delta=None, clip=3.0, release=(4, 6), temperature=0.0
        ),
        np.random.Generator(np.random.PCG64(0)),
        prior_mean=mean,
        prior_std=std,
    )
    assert np.array_equal(cold[:4], mean[:4])


def test_standard_prior_arrays_change_nothing() -> None:
    config = MechanismConfig(kind="gaussian", epsilon=2.0, delta=1e-5, clip=4.0, release=(2, 9))
    z = np.random.default_rng(3).normal(size=12) * 3
    plain = privatize_vector(z, config, np.random.Generator(np.random.PCG64(5)))
    explicit = privatize_vector(
        z,
        config,
        np.random.Generator(np.random.PCG64(5)),
        prior_mean=np.zeros(12),
        prior_std=np.ones(12),
    )
    assert np.array_equal(plain, explicit)


def test_bad_prior_arrays_are_refused() -> None:
    config = MechanismConfig(kind="laplace", epsilon=1.0, delta=None, clip=1.0)
    rng = np.random.default_rng(0)
    with pytest.raises(PrivacyError, match="both"):
        privatize_vector(np.zeros(3), config, rng, prior_mean=np.zeros(3))
    with pytest.raises(PrivacyError, match="stds > 0"):
        privatize_vector(np.zeros(3), config, rng, prior_mean=np.zeros(3), prior_std=np.zeros(3))
    with pytest.raises(PrivacyError, match="shape"):
        privatize_vector(np.zeros(3), config, rng, prior_mean=np.zeros(2), prior_std=np.ones(2))


_floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
_stds = st.floats(1e-2, 50.0, allow_nan=False, allow_infinity=False)


@st.composite
def _two_images(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    dim = draw(st.integers(1, 12))
    arrays = [
        np.asarray(draw(st.lists(strategy, min_size=dim, max_size=dim)))
        for strategy in (_floats, _floats, _floats, _stds, _floats, _stds)
    ]
    return tuple(arrays)


@settings(max_examples=300, deadline=None)
@given(
    images=_two_images(),
    kind=st.sampled_from(["laplace", "gaussian"]),
    clip=st.floats(1e-3, 1e3),
)
def test_standardised_clip_keeps_the_sensitivity(
    images: tuple[np.ndarray, ...], kind: str, clip: float
) -> None:
    """Whatever two images and priors: clipped standardised releases differ by <= 2C."""
    z1, z2, mean1, std1, mean2, std2 = images
    config = MechanismConfig(
        kind=kind, epsilon=2.0, delta=1e-5 if kind == "gaussian" else None, clip=clip
    )
    p = 1 if kind == "laplace" else 2
    released = []
    for z, mean, std in ((z1, mean1, std1), (z2, mean2, std2)):
        u = clipped_release(z, config, prior_mean=mean, prior_std=std)
        assert np.linalg.norm(u, ord=p) <= clip * (1 + 1e-9)
        expected = (z - mean) / std
        norm = np.linalg.norm(expected, ord=p)
        if norm > clip:
            expected = expected * (clip / norm)
        np.testing.assert_allclose(u, expected, rtol=1e-9, atol=1e-12 * clip)
        released.append(u)
    assert np.linalg.norm(released[0] - released[1], ord=p) <= config.sensitivity * (1 + 1e-9)


def test_privatize_vector_releases_the_clipped_standardised_latent() -> None:
    """At eps = inf (no noise) the output on S is mu + sigma * clipped_release."""
    rng = np.random.default_rng(11)
    z, mean, std = rng.normal(size=10) * 5, rng.normal(size=10), rng.uniform(0.2, 3, size=10)
    config = MechanismConfig(
        kind="laplace", epsilon=float("inf"), delta=None, clip=2.0, release=(3, 10)
    )
    out = privatize_vector(z, config, np.random.default_rng(0), prior_mean=mean, prior_std=std)
    u = clipped_release(z, config, prior_mean=mean, prior_std=std)
    np.testing.assert_allclose(out[3:], mean[3:] + std[3:] * u, rtol=1e-12)
    assert np.abs(u).sum() == pytest.approx(2.0)


def test_report_says_the_guarantee_is_unchanged_for_a_conditional_prior() -> None:
    config = MechanismConfig(kind="laplace", epsilon=2.0, delta=None, clip=30.0, release=(8, 16))
    report = privacy_report(
        config=config, latent_dim=16, release_dims=8, n_slices=4, prior="conditional"
    )
    standard = privacy_report(config=config, latent_dim=16, release_dims=8, n_slices=4)
    text = report.to_text()
    assert "standardised released latent u_S = (z_S - mu(c)) / sigma(c)" in text
    assert "guarantee above is unchanged" in text
    assert report.to_dict()["prior"] == "conditional"
    # Same numbers: the prior changes the units of C, not the accounting.
    assert report.per_slice == standard.per_slice and report.per_study == standard.per_study
    assert "standard N(0, I)" in standard.to_text()
    with pytest.raises(PrivacyError, match="prior must be one of"):
        privacy_report(config=config, latent_dim=16, release_dims=8, n_slices=4, prior="flat")


def test_privacy_report_command_reads_the_prior_from_the_card(tmp_path) -> None:
    """A tensorless safetensors file whose header holds a conditional-prior model card."""
    from cadp_med.cli._privacy_report import _resolve
    from cadp_med.model.checkpoint import CARD_FORMAT, CARD_KEY

    card = {
        "format": CARD_FORMAT,
        "architecture": {"prior": "conditional"},
        "latent": {"dim": 64, "default_release": {"start": 48, "stop": 64, "name": "fc"}},
        "privacy_defaults": {
            "release": {"clip_l1": 20.0, "clip_l2": 5.0},
            "full": {"clip_l1": 60.0, "clip_l2": 9.0},
        },
    }
    header = json.dumps({"__metadata__": {CARD_KEY: json.dumps(card)}}).encode()
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    resolved = _resolve(path, None, None, "coarsest", "laplace", None)
    assert resolved == (64, (48, 64), 20.0, "conditional")
    del card["architecture"]["prior"]  # a card from before the conditional prior
    header = json.dumps({"__metadata__": {CARD_KEY: json.dumps(card)}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    assert _resolve(path, None, None, "coarsest", "laplace", None)[3] == "standard"
