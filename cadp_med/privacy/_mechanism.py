"""Per-image latent privatization: clip, noise, post-process, refill.

For one image's latent ``z`` (D dims), the model's prior ``p(z | c) = N(mu(c),
diag sigma(c)^2)`` (``mu = 0, sigma = 1`` for a model with the standard prior) and the
fixed released subspace S (independent of the image):

0. the latent is standardised, ``u = (z - mu(c)) / sigma(c)``: a fixed bijection given the
   public conditions c, so ``u`` is N(0, I) under the prior;
1. ``u_S`` is clipped at C (L1 for Laplace, L2 for Gaussian; norm over S only);
2. noise is added to every coordinate of S: Laplace(b = 2C/eps) or N(0, sigma^2) with
   sigma from the analytic Gaussian mechanism for Delta_2 = 2C (Balle & Wang 2018);
3. the noisy release is post-processed (posterior sample / mean under the N(0, 1) prior
   of ``u``, i.e. the conditional prior of ``z``; or kept as is);
4. every coordinate outside S is REPLACED by a fresh draw ``temperature * N(0, 1)``,
   carrying nothing of the image;
5. ``z' = mu(c) + sigma(c) * u'`` maps the result back for the decoder.

Steps 0 and 5 depend only on c, which is released anyway, so they are post-processing
of a function of the clipped ``u_S`` and its noise.  This gives (eps, delta)-DP for that
image's released latent *given its conditions c*, against replacement of the image
(sensitivity 2C of the clipped ``u_S``).  The noise of each image comes from
its own generator, derived from a root seed and a per-image key, so the output for an
image never depends on its batch companions.

Randomness: by default the root seed is 128 bits from :func:`secrets.randbits` fed to
``numpy.random.SeedSequence``; each image gets ``Generator(PCG64(SeedSequence(root,
spawn_key=(namespace, key))))``.  PCG64 is not a cryptographic generator and the
samplers use floating point (Mironov 2012 describes least-significant-bit attacks on
naive floating-point Laplace sampling); both are known limitations.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence

import numpy as np
import torch

from cadp_med.errors import PrivacyError
from cadp_med.privacy._calibration import noise_scale
from cadp_med.privacy._clip import clip_vector
from cadp_med.privacy._config import MechanismConfig, MechanismKind, PostProcess
from cadp_med.privacy._posterior import (
    gaussian_posterior_mean,
    gaussian_posterior_sample,
    laplace_posterior_mean,
    laplace_posterior_sample,
)

logger = logging.getLogger(__name__)

_EXPLICIT_KEYS = 0  # spawn-key namespace for caller-supplied noise keys
_AUTO_KEYS = 1  # spawn-key namespace for the privatizer's own counter


def _prior_arrays(
    dim: int, prior_mean: np.ndarray | None, prior_std: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray] | None:
    if prior_mean is None and prior_std is None:
        return None
    if prior_mean is None or prior_std is None:
        raise PrivacyError("give both prior_mean and prior_std, or neither")
    mean = np.asarray(prior_mean, dtype=np.float64)
    std = np.asarray(prior_std, dtype=np.float64)
    if mean.shape != (dim,) or std.shape != (dim,):
        raise PrivacyError("prior_mean and prior_std must have the latent's shape [D]")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise PrivacyError("the prior must have finite means and finite stds > 0")
    return mean, std


def _clipped_standardised(
    z: np.ndarray,
    config: MechanismConfig,
    prior: tuple[np.ndarray, np.ndarray] | None,
    start: int,
    stop: int,
) -> np.ndarray:
    u = z[start:stop]
    if prior is not None:  # u: N(0, I) under the prior
        u = (u - prior[0][start:stop]) / prior[1][start:stop]
    return clip_vector(u, config.clip, 1 if config.kind is MechanismKind.LAPLACE else 2)


def clipped_release(
    z: np.ndarray,
    config: MechanismConfig,
    *,
    prior_mean: np.ndarray | None = None,
    prior_std: np.ndarray | None = None,
) -> np.ndarray:
    """The clipped standardised release ``clip_C(u_S)``, ``u = (z - mu(c)) / sigma(c)``.

    The only image-dependent input of the noise step of :func:`privatize_vector` (which
    calls this very function); its norm is at most C, so two images' values differ by at
    most the sensitivity 2C.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1:
        raise PrivacyError("clipped_release expects one latent vector [D]")
    prior = _prior_arrays(z.shape[0], prior_mean, prior_std)
    start, stop = config.released_range(z.shape[0])
    return _clipped_standardised(z, config, prior, start, stop)


def privatize_vector(
    z: np.ndarray,
    config: MechanismConfig,
    rng: np.random.Generator,
    *,
    prior_mean: np.ndarray | None = None,
    prior_std: np.ndarray | None = None,
) -> np.ndarray:
    """Privatize one image's latent vector (pure function of its arguments).

    Parameters
    ----------
    z : numpy.ndarray
        Latent of one image, shape ``[D]``.
    config : MechanismConfig
        The mechanism.
    rng : numpy.random.Generator
        This image's own noise source; never share one across images whose outputs
        are released together.
    prior_mean, prior_std : numpy.ndarray, optional
        ``mu(c)`` and ``sigma(c)``, each ``[D]``, of the model's conditional prior for
        this image's (public) conditions.  Omitted: ``N(0, I)``.  Clip, noise and
        posterior act on ``u = (z - mu) / sigma``; the result is mapped back.

    Returns
    -------
    numpy.ndarray
        Float64 ``[D]``: post-processed noisy release on S and a fresh prior draw at
        ``temperature`` elsewhere, in the coordinates of ``z``.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1:
        raise PrivacyError("privatize_vector expects one latent vector [D]")
    prior = _prior_arrays(z.shape[0], prior_mean, prior_std)
    start, stop = config.released_range(z.shape[0])
    released = _clipped_standardised(z, config, prior, start, stop)
    size = released.shape[0]
    # Draw order is fixed so that a (seed, key) pair reproduces the output exactly.
    refill = rng.standard_normal(z.shape[0])
    if config.is_dp:
        scale = noise_scale(config)
        if config.kind is MechanismKind.LAPLACE:
            noisy = released + rng.laplace(0.0, scale, size)
        else:
            noisy = released + scale * rng.standard_normal(size)
        post = config.postprocess
        if post is PostProcess.POSTERIOR_SAMPLE:
            if config.kind is MechanismKind.LAPLACE:
                noisy = laplace_posterior_sample(noisy, scale, rng)
            else:
                noisy = gaussian_posterior_sample(noisy, scale, rng)
        elif post is PostProcess.POSTERIOR_MEAN:
            if config.kind is MechanismKind.LAPLACE:
                noisy = laplace_posterior_mean(noisy, scale)
            else:
                noisy = gaussian_posterior_mean(noisy, scale)
    else:
        noisy = released  # eps = inf: no noise, NOT DP
    # Dimensions outside S carry nothing of the image: they are drawn from the prior at
    # ``temperature`` (1 = the prior itself; lower gives smoother, more typical images,
    # as in Glow's reduced-temperature sampling). The choice is fixed in advance and
    # independent of the image, so it does not touch the guarantee.
    out = refill * config.temperature
    out[start:stop] = noisy
    if prior is not None:
        out = prior[0] + prior[1] * out  # back to z: mu(c) + sigma(c) * u
    return out


def _numpy_or_none(value: torch.Tensor | None) -> np.ndarray | None:
    return None if value is None else value.detach().cpu().double().numpy()


def _generator_entropy(generator: torch.Generator) -> int:
    words = torch.randint(0, 2**62, (3,), generator=generator, dtype=torch.int64)
    value = 0
    for word in words.tolist():
        value = (value << 62) | int(word)
    return value


class LatentPrivatizer:
    """Apply a :class:`MechanismConfig` to batches of latents, image by image.

    Parameters
    ----------
    config : MechanismConfig
        The mechanism.
    generator : torch.Generator, optional
        Derive the root seed from this generator (reproducible; ``seeded`` is True).
    seed : int, optional
        Fixed root seed, for reproducible audits only (``seeded`` is True and a warning
        is logged).  Never use a known seed for released data.

    Notes
    -----
    With neither argument the root seed is ``secrets.randbits(128)``.  Each row's noise
    comes from a child ``SeedSequence(root, spawn_key=(namespace, key))``: keys passed by
    the caller (``noise_keys``) live in one namespace, the privatizer's own counter in
    another, so they never collide.  A caller key is refused if reused by this
    privatizer: two *different* images sharing noise would release their difference.
    """

    def __init__(
        self,
        config: MechanismConfig,
        *,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(config, MechanismConfig):
            raise PrivacyError("config must be a MechanismConfig")
        if generator is not None and seed is not None:
            raise PrivacyError("pass at most one of generator and seed")
        if seed is not None:
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise PrivacyError("seed must be a non-negative integer")
            entropy = seed
            logger.warning("latent privatizer seeded explicitly: for audits only")
        elif generator is not None:
            entropy = _generator_entropy(generator)
        else:
            entropy = secrets.randbits(128)
        self.config = config
        self.seeded = seed is not None or generator is not None
        self._entropy = entropy
        self._counter = 0
        self._used_keys: set[int] = set()

    def _rng(self, namespace: int, key: int) -> np.random.Generator:
        sequence = np.random.SeedSequence(self._entropy, spawn_key=(namespace, key))
        return np.random.Generator(np.random.PCG64(sequence))

    def privatize_one(
        self,
        z_row: torch.Tensor,
        rng: np.random.Generator,
        *,
        prior_mean: torch.Tensor | None = None,
        prior_std: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Privatize one latent ``[D]`` with the caller's per-image generator ``rng``."""
        if z_row.dim() != 1:
            raise PrivacyError("privatize_one expects a [D] tensor")
        out = privatize_vector(
            z_row.detach().cpu().double().numpy(),
            self.config,
            rng,
            prior_mean=_numpy_or_none(prior_mean),
            prior_std=_numpy_or_none(prior_std),
        )
        return torch.from_numpy(out).to(dtype=z_row.dtype, device=z_row.device)

    def __call__(
        self,
        z: torch.Tensor,
        *,
        noise_keys: Sequence[int] | None = None,
        prior_mean: torch.Tensor | None = None,
        prior_std: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Privatize a batch ``[B, D]`` row by row.

        Parameters
        ----------
        z : torch.Tensor
            Latents, one row per image.
        noise_keys : sequence of int, optional
            One distinct non-negative key per row.  The output of a row depends only on
            its latent, the root seed and its key, never on the other rows.  Without
            keys the privatizer uses its own never-repeating counter.
        prior_mean, prior_std : torch.Tensor, optional
            ``[B, D]`` mean and standard deviation of the model's conditional prior for
            each row's conditions (``CINN.prior_params``); omitted: ``N(0, I)``.

        Returns
        -------
        torch.Tensor
            ``[B, D]``, same dtype and device as ``z``.
        """
        if z.dim() != 2:
            raise PrivacyError("LatentPrivatizer expects a [batch, dims] tensor")
        n_rows = z.shape[0]
        means, stds = _numpy_or_none(prior_mean), _numpy_or_none(prior_std)
        for name, value in (("prior_mean", means), ("prior_std", stds)):
            if value is not None and value.shape != tuple(z.shape):
                raise PrivacyError(f"{name} must have the shape of z, [batch, dims]")
        if noise_keys is None:
            keys = [(_AUTO_KEYS, self._counter + i) for i in range(n_rows)]
            self._counter += n_rows
        else:
            raw = [int(k) for k in noise_keys]
            if len(raw) != n_rows:
                raise PrivacyError("noise_keys must give exactly one key per row")
            if any(k < 0 for k in raw) or len(set(raw)) != n_rows:
                raise PrivacyError("noise_keys must be distinct non-negative integers")
            if self._used_keys.intersection(raw):
                raise PrivacyError("a noise key was already used by this privatizer")
            self._used_keys.update(raw)
            keys = [(_EXPLICIT_KEYS, k) for k in raw]
        values = z.detach().cpu().double().numpy()
        rows = [
            privatize_vector(
                values[i],
                self.config,
                self._rng(*keys[i]),
                prior_mean=None if means is None else means[i],
                prior_std=None if stds is None else stds[i],
            )
            for i in range(n_rows)
        ]
        out = np.stack(rows) if rows else np.empty_like(values)
        return torch.from_numpy(out).to(dtype=z.dtype, device=z.device)


def privatize_latents(
    z: torch.Tensor,
    config: MechanismConfig,
    *,
    seed: int | None = None,
    noise_keys: Sequence[int] | None = None,
    prior_mean: torch.Tensor | None = None,
    prior_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """One-shot convenience: ``LatentPrivatizer(config, seed=seed)(z, noise_keys=...)``."""
    return LatentPrivatizer(config, seed=seed)(
        z, noise_keys=noise_keys, prior_mean=prior_mean, prior_std=prior_std
    )


__all__ = ["LatentPrivatizer", "clipped_release", "privatize_latents", "privatize_vector"]
