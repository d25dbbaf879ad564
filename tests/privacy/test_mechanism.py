import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import stats

from cadp_med.errors import PrivacyError
from cadp_med.privacy import LatentPrivatizer, MechanismConfig, clip_l1, clip_l2
from cadp_med.privacy._calibration import noise_scale

D, S = 64, (8, 24)


def _config(kind="laplace", eps=2.0, post="none", release=S, clip=4.0):
    delta = 1e-5 if kind == "gaussian" else None
    return MechanismConfig(kind, eps, delta, clip, release=release, postprocess=post)


@pytest.mark.parametrize("post", ["none", "posterior-sample", "posterior-mean"])
@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_same_image_same_key_independent_of_companions(kind, post):
    config = _config(kind, post=post)
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, D, generator=gen) * 3
    batch_a = torch.cat([torch.randn(3, D, generator=gen), image, torch.randn(2, D, generator=gen)])
    batch_b = torch.cat([image, 100 * torch.randn(5, D, generator=gen)])
    out_a = LatentPrivatizer(config, seed=7)(batch_a, noise_keys=[10, 11, 12, 42, 13, 14])
    out_b = LatentPrivatizer(config, seed=7)(batch_b, noise_keys=[42, 1, 2, 3, 4, 5])
    assert torch.equal(out_a[3], out_b[0])
    out_c = LatentPrivatizer(config, seed=8)(batch_b, noise_keys=[42, 1, 2, 3, 4, 5])
    assert not torch.equal(out_c[0], out_b[0])


def test_privatize_one_matches_generator_contract():
    config = _config("gaussian", post="posterior-sample")
    priv = LatentPrivatizer(config)
    z = torch.randn(D)
    a = priv.privatize_one(z, np.random.default_rng(5))
    b = priv.privatize_one(z, np.random.default_rng(5))
    assert torch.equal(a, b) and a.shape == (D,) and a.dtype == z.dtype


def test_noise_keys_must_be_fresh_and_distinct():
    priv = LatentPrivatizer(_config(), seed=1)
    z = torch.zeros(2, D)
    with pytest.raises(PrivacyError, match="distinct"):
        priv(z, noise_keys=[3, 3])
    priv(z, noise_keys=[3, 4])
    with pytest.raises(PrivacyError, match="already used"):
        priv(z, noise_keys=[5, 4])
    with pytest.raises(PrivacyError, match="one key per row"):
        priv(z, noise_keys=[9])


def test_default_source_is_unseeded_and_varies():
    priv = LatentPrivatizer(_config())
    assert not priv.seeded
    z = torch.zeros(1, D)
    assert not torch.equal(priv(z), LatentPrivatizer(_config())(z))
    assert LatentPrivatizer(_config(), seed=3).seeded
    assert LatentPrivatizer(_config(), generator=torch.Generator().manual_seed(1)).seeded
    # Auto keys never repeat within one privatizer.
    assert not torch.equal(priv(z), priv(z))


def _noise_samples(kind, rows=1250):
    config = _config(kind, post="none")
    z_s = torch.linspace(-0.2, 0.2, S[1] - S[0], dtype=torch.float64)  # inside the clip ball
    z = torch.zeros(rows, D, dtype=torch.float64)
    z[:, S[0] : S[1]] = z_s
    out = LatentPrivatizer(config, seed=11)(z)
    return config, (out[:, S[0] : S[1]] - z_s).numpy().ravel()


def test_laplace_noise_statistics():
    config, noise = _noise_samples("laplace")
    b = 2 * config.clip / config.epsilon
    assert noise.size >= 20_000
    assert np.mean(np.abs(noise)) == pytest.approx(b, rel=0.03)
    assert stats.kstest(noise, stats.laplace(scale=b).cdf).pvalue > 1e-3
    assert stats.kstest(noise, stats.norm(scale=math.sqrt(2) * b).cdf).pvalue < 1e-3


def test_gaussian_noise_statistics():
    config, noise = _noise_samples("gaussian")
    sigma = noise_scale(config)
    assert np.std(noise) == pytest.approx(sigma, rel=0.03)
    assert stats.kstest(noise, stats.norm(scale=sigma).cdf).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_dims_outside_release_are_fresh_standard_normal(kind):
    config = _config(kind, post="posterior-sample")
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.normal(size=(1000, D)) * 5)
    out = LatentPrivatizer(config, seed=2)(z).numpy()
    mask = np.ones(D, bool)
    mask[S[0] : S[1]] = False
    outside, inputs = out[:, mask].ravel(), z.numpy()[:, mask].ravel()
    assert stats.kstest(outside, "norm").pvalue > 1e-3
    r = np.corrcoef(outside, inputs)[0, 1]
    assert abs(r) < 4 / math.sqrt(outside.size)


@pytest.mark.parametrize("temperature", [0.0, 0.5])
def test_temperature_scales_only_the_fresh_draws(temperature):
    config = dataclasses.replace(_config("laplace"), temperature=temperature)
    reference = _config("laplace")
    z = torch.from_numpy(np.random.default_rng(1).normal(size=(200, D)) * 5)
    out = LatentPrivatizer(config, seed=3)(z).numpy()
    base = LatentPrivatizer(reference, seed=3)(z).numpy()
    mask = np.ones(D, bool)
    mask[S[0] : S[1]] = False
    # Same draws, scaled outside S; the released (noised) dims are untouched.
    np.testing.assert_allclose(out[:, mask], temperature * base[:, mask])
    np.testing.assert_array_equal(out[:, ~mask], base[:, ~mask])


@pytest.mark.parametrize("temperature", [-0.1, 1.5, float("nan")])
def test_temperature_outside_unit_interval_is_refused(temperature):
    with pytest.raises(PrivacyError, match="temperature"):
        dataclasses.replace(_config("laplace"), temperature=temperature)


@pytest.mark.parametrize("kind", ["laplace", "gaussian"])
def test_infinite_epsilon_releases_clipped_latent(kind):
    config = _config(kind, eps=math.inf, release=None)
    z = torch.randn(4, D, dtype=torch.float64) * 3
    expected = (clip_l1 if kind == "laplace" else clip_l2)(z, config.clip)
    torch.testing.assert_close(LatentPrivatizer(config, seed=0)(z), expected)


def test_laplace_privacy_loss_bounded_by_epsilon():
    """Neighbours at L1 distance 2C: the exact log density ratio at samples is <= eps."""
    eps, clip = 1.5, 2.0
    config = MechanismConfig("laplace", eps, None, clip, postprocess="none")
    b = 2 * clip / eps
    d = 4
    z = torch.zeros(20_000, d, dtype=torch.float64)
    z[:, 0] = clip
    neighbour = np.zeros(d)
    neighbour[0] = -clip
    y = LatentPrivatizer(config, seed=5)(z).numpy()
    loss = (np.abs(y - neighbour).sum(1) - np.abs(y - z.numpy()).sum(1)) / b
    assert loss.max() <= eps + 1e-9
    assert loss.min() >= -eps - 1e-9
    assert loss.max() > 0.99 * eps  # the bound is attained: the calibration is not loose
    # Empirical histogram of the first coordinate under both neighbours.
    y_prime = LatentPrivatizer(config, seed=6)(torch.from_numpy(np.tile(neighbour, (20_000, 1))))
    edges = np.linspace(-2 * clip, 2 * clip, 9)
    h, _ = np.histogram(y[:, 0], edges)
    h_prime, _ = np.histogram(y_prime.numpy()[:, 0], edges)
    ratio = np.log(h / h_prime)
    assert np.all(np.abs(ratio) <= eps + 0.15)


def test_privatizer_validates_inputs():
    priv = LatentPrivatizer(_config())
    with pytest.raises(PrivacyError, match="exceeds the latent dimension"):
        priv(torch.zeros(2, 16))
    with pytest.raises(PrivacyError, match=r"\[batch, dims\]"):
        priv(torch.zeros(16))
    with pytest.raises(PrivacyError, match="at most one"):
        LatentPrivatizer(_config(), seed=1, generator=torch.Generator())
