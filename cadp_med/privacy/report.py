"""A plain-words privacy report for a latent mechanism configuration.

Signal-to-noise ratio (SNR), as reported
----------------------------------------
Per released dimension, the ratio of the largest *typical* signal magnitude the clip
allows to the noise standard deviation:

* Laplace (L1 clip C over |S| dims): the mean |z_i| over S is at most C/|S|; the noise
  std is sqrt(2) b with b = 2C/eps, so ``SNR = (C/|S|) / (sqrt(2) 2C/eps)
  = eps / (2 sqrt(2) |S|)``.
* Gaussian (L2 clip C over |S| dims): the RMS of z_i over S is at most C/sqrt(|S|);
  the noise std is sigma, so ``SNR = (C/sqrt(|S|)) / sigma``.

Both are upper bounds reached when the clipped latent sits on the clip boundary with
its mass spread evenly.  ``snr_all_dims`` is the same quantity had all D dimensions been
released with the same C and epsilon, to show what restricting the release buys.

Intensity window
----------------
With ``window_share`` f > 0, every image of a series whose window is estimated (relative
units: MR and all modalities without a fixed window) spends ``f`` of its epsilon on that
window (:mod:`cadp_med.privacy._window`) and the latent gets ``1 - f``; the noise numbers
are the latent's. Fixed-window modalities (CT in HU) spend nothing on the window; their
latent gets the whole epsilon (``fixed_window_noise_scale``). The per-slice and per-study
totals are the same for both.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cadp_med.errors import PrivacyError
from cadp_med.privacy._calibration import noise_scale, noise_std
from cadp_med.privacy._config import MechanismConfig, MechanismKind
from cadp_med.privacy.accounting import Composition, per_slice, split_window, study_total

NOT_DP_LABEL = "NOT DP (epsilon = inf: no noise is added)"

_STATEMENT = (
    "Local differential privacy per image (slice), given its conditions: the released "
    "latent of each image satisfies the per-slice guarantee against replacing that "
    "image. {conditions} The guarantee holds only for images that were not in the "
    "model's own training set. The per-study total follows by composition over the "
    "study's slices. epsilon = inf is NOT differential privacy."
)


_PRIOR_STATEMENTS = {
    "standard": "standard N(0, I): clip and noise act on the released latent z_S itself",
    "conditional": (
        "learned conditional N(mu(c), diag sigma(c)^2): clip and noise act on the "
        "standardised released latent u_S = (z_S - mu(c)) / sigma(c), and the posterior "
        "post-processing and the refill of the other dims (mu(c) + temperature * sigma(c) "
        "* N(0, 1)) use the same prior. mu and sigma depend only on the conditions c, "
        "which are released with the image, so standardising and mapping back are "
        "post-processing: the guarantee above is unchanged"
    ),
}


def _snr(config: MechanismConfig, dims: int) -> float:
    std = noise_std(config)
    if std == 0.0:
        return math.inf
    if config.kind is MechanismKind.LAPLACE:
        return (config.clip / dims) / std
    return (config.clip / math.sqrt(dims)) / std


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class PrivacyReport:
    """What a mechanism configuration guarantees, in numbers and in words.

    ``per_study`` maps a composition method to ``(epsilon, delta)``; methods that do not
    apply are absent.  ``is_dp`` is False (and ``label`` says NOT DP) when eps = inf.
    """

    mechanism: str
    is_dp: bool
    label: str
    clip: float
    clip_norm: str
    noise_scale: float
    noise_std: float
    latent_dim: int
    release_dims: int
    release: tuple[int, int]
    snr_released: float
    snr_all_dims: float
    n_slices: int
    per_slice: tuple[float, float]
    per_study: dict[str, tuple[float, float]]
    conditions: str
    statement: str
    prior: str = "standard"
    window_share: float = 0.0
    window_epsilon: float = 0.0
    latent_epsilon: float = math.inf
    fixed_window_noise_scale: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (infinities become the string ``"inf"``)."""
        data = dataclasses.asdict(self)
        data["per_slice"] = {"epsilon": self.per_slice[0], "delta": self.per_slice[1]}
        data["per_study"] = {k: {"epsilon": e, "delta": d} for k, (e, d) in self.per_study.items()}
        data["prior_statement"] = _PRIOR_STATEMENTS[self.prior]
        data["snr_definition"] = (
            "per released dimension: max typical |signal| allowed by the clip (L1: C/|S|, "
            "L2: C/sqrt(|S|)) divided by the noise standard deviation"
        )
        return _json_safe(data)

    def to_text(self) -> str:
        """Human-readable multi-line report."""

        def fmt(eps: float, delta: float) -> str:
            eps_s = "inf (NOT DP)" if math.isinf(eps) else f"{eps:.4g}"
            return f"epsilon = {eps_s}, delta = {delta:.3g}"

        lines = [
            f"Privacy: {self.label}",
            f"Mechanism: {self.mechanism}, {self.clip_norm} clip C = {self.clip:.4g}",
            f"Released subspace: dims [{self.release[0]}, {self.release[1]}) = "
            f"{self.release_dims} of {self.latent_dim}; the rest is a fresh prior draw",
            f"Noise per released dim: scale {self.noise_scale:.4g}, std {self.noise_std:.4g}",
            f"SNR per dim (bound): released {self.snr_released:.4g}, "
            f"if all {self.latent_dim} dims {self.snr_all_dims:.4g}",
            f"Per slice: {fmt(*self.per_slice)}",
        ]
        for method, (eps, delta) in self.per_study.items():
            lines.append(f"Per study ({self.n_slices} slices, {method}): {fmt(eps, delta)}")
        if self.window_epsilon > 0:
            lines[5:5] = [
                f"Intensity window (relative units: MR and every modality without a fixed "
                f"window): DP median by the exponential mechanism, epsilon = "
                f"{self.window_epsilon:.4g} per slice (share {self.window_share:.4g}); the "
                f"latent gets epsilon = {self.latent_epsilon:.4g} (the noise above)",
                f"Fixed-window modalities (CT in HU): no window budget; the latent gets the "
                f"whole epsilon, noise scale {self.fixed_window_noise_scale:.4g}",
            ]
        elif self.is_dp:
            lines.insert(5, "Intensity window: fixed, or the header's range; no budget")
        lines.append(f"Conditions: {self.conditions}")
        lines.append(f"Prior: {_PRIOR_STATEMENTS[self.prior]}.")
        lines.append(self.statement)
        return "\n".join(lines)


def privacy_report(
    *,
    config: MechanismConfig,
    latent_dim: int,
    release_dims: int,
    n_slices: int,
    prior: str = "standard",
    window_share: float = 0.0,
) -> PrivacyReport:
    """Build the :class:`PrivacyReport` of ``config`` for a latent of ``latent_dim``.

    Parameters
    ----------
    config : MechanismConfig
        The per-slice mechanism.
    latent_dim : int
        D, the latent dimension of the model.
    release_dims : int
        |S|; must equal the size of ``config.release`` (or D when it is None).
    n_slices : int
        Slices per study, for the per-study totals.
    window_share : float
        Share of each slice's epsilon spent on a relative-unit series' DP intensity
        window (see the module doc); 0: none. ``config`` carries the slice's whole epsilon.
    prior : {"standard", "conditional"}
        The model's latent prior (``architecture.prior`` in its card); with
        ``"conditional"`` the units of the clip are the standardised latent.

    Raises
    ------
    PrivacyError
        If the dimensions are inconsistent.
    """
    start, stop = config.released_range(latent_dim)
    if release_dims != stop - start:
        raise PrivacyError("release_dims does not match the configured release range")
    if not isinstance(n_slices, int) or n_slices < 1:
        raise PrivacyError("n_slices must be an integer >= 1")
    if prior not in _PRIOR_STATEMENTS:
        raise PrivacyError(f"prior must be one of {sorted(_PRIOR_STATEMENTS)}")
    whole = config
    config, window_eps = split_window(whole, window_share)
    per_study = {
        Composition.BASIC.value: study_total(config, n_slices, "basic", window_epsilon=window_eps)
    }
    if config.kind is MechanismKind.GAUSSIAN:
        for method in (Composition.ZCDP, Composition.RDP):
            per_study[method.value] = study_total(
                config, n_slices, method, window_epsilon=window_eps
            )
    if config.condition_rr_epsilon is None:
        conditions = "released unnoised (NOT protected by the guarantee)"
    else:
        conditions = (
            f"released by k-ary randomized response at epsilon = "
            f"{config.condition_rr_epsilon:.4g}, included in the per-slice epsilon"
        )
    sentence = (
        "The conditions are released unnoised and are not protected."
        if config.condition_rr_epsilon is None
        else "The conditions are protected by randomized response, counted above."
    )
    all_dims = dataclasses.replace(config, release=None)
    return PrivacyReport(
        mechanism=config.kind.value,
        is_dp=config.is_dp,
        label="differentially private" if config.is_dp else NOT_DP_LABEL,
        clip=config.clip,
        clip_norm=config.clip_norm,
        noise_scale=noise_scale(config),
        noise_std=noise_std(config),
        latent_dim=latent_dim,
        release_dims=release_dims,
        release=(start, stop),
        snr_released=_snr(config, release_dims),
        snr_all_dims=_snr(all_dims, latent_dim),
        n_slices=n_slices,
        per_slice=per_slice(config, window_eps),
        per_study=per_study,
        conditions=conditions,
        statement=_STATEMENT.format(conditions=sentence),
        prior=prior,
        window_share=float(window_share) if window_eps > 0 else 0.0,
        window_epsilon=window_eps,
        latent_epsilon=config.epsilon,
        fixed_window_noise_scale=noise_scale(whole),
    )


__all__ = ["NOT_DP_LABEL", "PrivacyReport", "privacy_report"]
