"""Privacy accounting: per slice, per study, budget splitting, randomized response.

Every slice (image) of a study is privatized independently; a study's total loss is
obtained by composition over its ``n_slices`` slices.

References
----------
.. [1] C. Dwork and A. Roth, "The Algorithmic Foundations of Differential Privacy",
   2014, Theorem 3.16 (basic composition).
.. [2] M. Bun and T. Steinke, "Concentrated Differential Privacy: Simplifications,
   Extensions, and Lower Bounds", TCC 2016 (Gaussian is Delta^2/(2 sigma^2)-zCDP,
   Prop. 1.6; eps-DP implies eps^2/2-zCDP, Prop. 1.4; conversion
   eps = rho + 2 sqrt(rho ln(1/delta)), Prop. 1.3).
.. [3] I. Mironov, "Renyi Differential Privacy", CSF 2017 (Gaussian RDP
   alpha Delta^2/(2 sigma^2); conversion eps = eps_alpha + ln(1/delta)/(alpha - 1),
   Prop. 3; eps-DP implies (alpha, eps)-RDP).
.. [4] S. Warner, "Randomized Response", JASA 1965; k-ary RR as in Kairouz, Oh and
   Viswanath, "Extremal Mechanisms for Local Differential Privacy", 2014.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence

import numpy as np

from cadp_med.errors import PrivacyError
from cadp_med.privacy._calibration import noise_scale
from cadp_med.privacy._config import MechanismConfig, MechanismKind

#: Renyi orders searched by the RDP conversion.
RDP_ORDERS: tuple[float, ...] = tuple(
    sorted(
        {1.0 + x / 100.0 for x in range(1, 100)}
        | {2.0 + x / 4.0 for x in range(0, 60)}
        | {float(a) for a in range(17, 128)}
        | {128.0, 192.0, 256.0, 512.0, 1024.0, 4096.0}
    )
)


class Composition(enum.StrEnum):
    """How per-slice guarantees compose over a study."""

    BASIC = "basic"
    ZCDP = "zcdp"
    RDP = "rdp"


def _composition(method: Composition | str) -> Composition:
    if isinstance(method, Composition):
        return method
    for member in Composition:
        if isinstance(method, str) and member.value == method.strip().lower():
            return member
    choices = [m.value for m in Composition]
    raise PrivacyError(f"invalid composition method; valid choices are {choices}")


def per_slice(config: MechanismConfig, window_epsilon: float = 0.0) -> tuple[float, float]:
    """(epsilon, delta) of one slice, including randomized response on conditions.

    ``window_epsilon`` is the slice's share spent on its series' DP intensity window
    (:func:`split_window`; pure DP, so it adds to epsilon only). Returns ``(inf, delta)``
    for a configuration without noise (NOT DP); delta is 0.0 for the pure Laplace
    mechanism.
    """
    eps = config.epsilon + (config.condition_rr_epsilon or 0.0) + _window_eps(window_epsilon)
    return eps, (config.delta or 0.0)


def _window_eps(value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise PrivacyError("window_epsilon must be a finite number >= 0")
    return float(value)


def split_window(config: MechanismConfig, share: float) -> tuple[MechanismConfig, float]:
    """Spend ``share`` of a slice's epsilon on its series' intensity window.

    The slice's total (mechanism plus randomized response) stays what it was: the window
    gets ``share * total`` and the mechanism and randomized response keep ``1 - share`` of
    theirs, so ``per_slice(latent, window) == per_slice(config)``. A configuration without
    noise (NOT DP) or a share of 0 spends nothing on the window.

    Returns
    -------
    tuple
        ``(latent config, window epsilon)``.
    """
    if not (isinstance(share, int | float) and 0.0 <= share < 1.0):
        raise PrivacyError("the window share must be in [0, 1)")
    if share == 0.0 or not config.is_dp:
        return config, 0.0
    total = per_slice(config)[0]
    rr = config.condition_rr_epsilon
    latent = dataclasses.replace(
        config,
        epsilon=config.epsilon * (1.0 - share),
        condition_rr_epsilon=None if rr is None else rr * (1.0 - share),
    )
    return latent, total - per_slice(latent)[0]


def _rho_per_slice(config: MechanismConfig) -> float:
    """zCDP rho of one slice: Gaussian Delta^2/(2 sigma^2) [2]_, pure eps -> eps^2/2."""
    if config.kind is MechanismKind.GAUSSIAN:
        rho = config.sensitivity**2 / (2.0 * noise_scale(config) ** 2)
    else:
        rho = config.epsilon**2 / 2.0
    rr = config.condition_rr_epsilon
    return rho + (rr**2 / 2.0 if rr is not None else 0.0)


def _rdp_per_slice(config: MechanismConfig, alpha: np.ndarray) -> np.ndarray:
    """RDP epsilon(alpha) of one slice [3]_ (pure eps-DP: min(eps, alpha eps^2/2))."""
    if config.kind is MechanismKind.GAUSSIAN:
        curve = alpha * config.sensitivity**2 / (2.0 * noise_scale(config) ** 2)
    else:
        eps = config.epsilon
        curve = np.minimum(eps, alpha * eps**2 / 2.0)
    rr = config.condition_rr_epsilon
    if rr is not None:
        curve = curve + np.minimum(rr, alpha * rr**2 / 2.0)
    return curve


def study_total(
    config: MechanismConfig,
    n_slices: int,
    method: Composition | str = "basic",
    *,
    target_delta: float | None = None,
    window_epsilon: float = 0.0,
) -> tuple[float, float]:
    """(epsilon, delta) of a study of ``n_slices`` slices, each privatized by ``config``.

    Parameters
    ----------
    config : MechanismConfig
        Per-slice mechanism.
    n_slices : int
        Number of slices k >= 1 released from the study.
    method : {"basic", "zcdp", "rdp"}
        ``basic``: (k eps, k delta) [1]_.  ``zcdp``: total rho = k rho_slice converted
        at ``target_delta`` [2]_.  ``rdp``: k eps(alpha) converted at ``target_delta``,
        minimised over :data:`RDP_ORDERS` [3]_.
    target_delta : float, optional
        The delta of the zcdp / rdp conversion; defaults to the per-slice delta of a
        Gaussian config and is required for Laplace.  Ignored by ``basic``.
    window_epsilon : float
        Each slice's epsilon spent on its series' DP window (pure DP). It adds
        ``k * window_epsilon`` to every method's total: replacing all m sampled slices
        of a series moves its window by at most m eps_w (group privacy), which is not
        the sum of m independent releases, so zcdp / rdp are not applied to it.

    Returns
    -------
    tuple of float
        ``(epsilon, delta)``; epsilon is inf for a no-noise configuration (NOT DP).
        For ``basic`` the delta may reach 1, which is vacuous.
    """
    method = _composition(method)
    if not isinstance(n_slices, int) or isinstance(n_slices, bool) or n_slices < 1:
        raise PrivacyError("n_slices must be an integer >= 1")
    window = n_slices * _window_eps(window_epsilon)
    eps, delta = per_slice(config)
    if method is Composition.BASIC:
        return n_slices * eps + window, min(1.0, n_slices * delta)
    if target_delta is None:
        if config.delta is None:
            raise PrivacyError(f"{method.value} composition of a pure mechanism needs target_delta")
        target_delta = config.delta
    if not 0.0 < target_delta < 1.0:
        raise PrivacyError("target_delta must be in (0, 1)")
    if not config.is_dp:
        return math.inf, target_delta
    log_inv_delta = math.log(1.0 / target_delta)
    if method is Composition.ZCDP:
        rho = n_slices * _rho_per_slice(config)
        return rho + 2.0 * math.sqrt(rho * log_inv_delta) + window, target_delta
    alpha = np.asarray(RDP_ORDERS)
    curve = n_slices * _rdp_per_slice(config, alpha)
    return float(np.min(curve + log_inv_delta / (alpha - 1.0))) + window, target_delta


def split_budget(
    total_eps: float,
    n_slices: int,
    total_delta: float | None = None,
    *,
    base: MechanismConfig,
) -> MechanismConfig:
    """Per-slice config whose basic composition over ``n_slices`` meets a study budget.

    Each slice gets ``total_eps / k`` (and ``total_delta / k``).  If ``base`` uses
    randomized response on the conditions, the slice's epsilon is divided between the
    mechanism and randomized response in ``base``'s proportion.

    Parameters
    ----------
    total_eps : float
        Study epsilon, finite and > 0.
    n_slices : int
        k >= 1.
    total_delta : float, optional
        Study delta in (0, 1); required for a Gaussian ``base``, None for Laplace.
    base : MechanismConfig
        Supplies kind, clip, release, post-processing and the RR share.

    Returns
    -------
    MechanismConfig
        The per-slice configuration.
    """
    if not isinstance(n_slices, int) or isinstance(n_slices, bool) or n_slices < 1:
        raise PrivacyError("n_slices must be an integer >= 1")
    if not (isinstance(total_eps, int | float) and math.isfinite(total_eps) and total_eps > 0):
        raise PrivacyError("a study budget needs a finite total epsilon > 0")
    slice_eps = total_eps / n_slices
    rr = base.condition_rr_epsilon
    mech_eps, rr_eps = slice_eps, None
    if rr is not None:
        share = rr / (rr + base.epsilon) if base.is_dp else 0.5
        mech_eps, rr_eps = slice_eps * (1.0 - share), slice_eps * share
    slice_delta = None if total_delta is None else total_delta / n_slices
    return dataclasses.replace(
        base, epsilon=mech_eps, delta=slice_delta, condition_rr_epsilon=rr_eps
    )


def rr_keep_probability(epsilon: float, k: int) -> float:
    """Probability e^eps / (e^eps + k - 1) that k-ary randomized response keeps a value."""
    return 1.0 / (1.0 + (k - 1) * math.exp(-epsilon))


def randomized_response(
    values: Sequence[str],
    vocabulary: Sequence[str],
    epsilon: float,
    rng: np.random.Generator,
) -> list[str]:
    """k-ary randomized response on categorical conditions (eps-DP per value) [4]_.

    Each value is kept with probability ``e^eps / (e^eps + k - 1)`` and otherwise
    replaced by one of the other ``k - 1`` vocabulary entries, uniformly.

    Raises
    ------
    PrivacyError
        If epsilon is not finite and > 0, the vocabulary has fewer than two distinct
        entries, or a value is outside it (the value itself is never quoted).
    """
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise PrivacyError("randomized response needs a finite epsilon > 0")
    vocab = list(dict.fromkeys(vocabulary))
    k = len(vocab)
    if k < 2:
        raise PrivacyError("randomized response needs a vocabulary of at least 2 values")
    index = {v: i for i, v in enumerate(vocab)}
    keep = rr_keep_probability(epsilon, k)
    out: list[str] = []
    for position, value in enumerate(values):
        if value not in index:
            raise PrivacyError(f"condition value at position {position} is not in the vocabulary")
        if rng.random() < keep:
            out.append(value)
        else:
            other = int(rng.integers(k - 1))
            out.append(vocab[other + (other >= index[value])])
    return out


__all__ = [
    "RDP_ORDERS",
    "Composition",
    "per_slice",
    "randomized_response",
    "rr_keep_probability",
    "split_budget",
    "split_window",
    "study_total",
]
