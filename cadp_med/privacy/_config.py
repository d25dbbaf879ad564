"""The configuration of a per-image latent privacy mechanism.

A :class:`MechanismConfig` cannot be built in an invalid state: every field is checked
in ``__post_init__`` and a :class:`~cadp_med.errors.PrivacyError` names the valid choices
or ranges.  ``epsilon = math.inf`` is accepted and means *no noise*; such a configuration
is **not differentially private** and :attr:`MechanismConfig.is_dp` is ``False``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from cadp_med.errors import PrivacyError


class MechanismKind(enum.StrEnum):
    """The additive noise mechanism applied to the released latent dimensions."""

    LAPLACE = "laplace"
    GAUSSIAN = "gaussian"


class PostProcess(enum.StrEnum):
    """What is decoded from the noisy release (post-processing keeps the guarantee)."""

    POSTERIOR_SAMPLE = "posterior-sample"
    POSTERIOR_MEAN = "posterior-mean"
    NONE = "none"


def _look_up(value: object, enum_type: type[enum.Enum], what: str) -> enum.Enum:
    if isinstance(value, enum_type):
        return value
    choices = [member.value for member in enum_type]
    if isinstance(value, str):
        for member in enum_type:
            if member.value == value.strip().lower():
                return member
    raise PrivacyError(f"invalid {what}; valid choices are {choices}")


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class MechanismConfig:
    """Parameters of the per-image clip-and-noise mechanism on the latent code.

    Parameters
    ----------
    kind : MechanismKind or {"laplace", "gaussian"}
        ``laplace``: L1 clipping, pure epsilon-DP.  ``gaussian``: L2 clipping, analytic
        Gaussian mechanism, (epsilon, delta)-DP (Balle & Wang 2018).
    epsilon : float
        Per-image privacy parameter, > 0.  ``math.inf`` disables the noise and the
        result is NOT differentially private.
    delta : float or None
        Required in (0, 1) for ``gaussian``; must be ``None`` for ``laplace``.
    clip : float
        Clipping norm C > 0 (L1 for Laplace, L2 for Gaussian), computed over the
        released dimensions only.  The replacement sensitivity is 2C.
    release : tuple of int or None
        The released subspace S as a ``[start, stop)`` range of latent dimensions,
        fixed independently of any image.  ``None`` releases all dimensions.
    postprocess : PostProcess or str
        ``posterior-sample`` (default), ``posterior-mean`` or ``none``.
    condition_rr_epsilon : float or None
        If set, categorical conditions are released with k-ary randomized response at
        this epsilon, accounted as extra per-slice epsilon.  ``None``: the conditions
        are released unnoised and are *not* protected.
    temperature : float
        Scale of the fresh N(0, 1) draws that replace every dimension outside S: 1 draws
        from the prior, 0 writes its mode. Fixed in advance, independent of the image:
        it changes how the output looks, never the guarantee.
    """

    kind: MechanismKind
    epsilon: float
    delta: float | None
    clip: float
    release: tuple[int, int] | None = None
    postprocess: PostProcess = PostProcess.POSTERIOR_SAMPLE
    condition_rr_epsilon: float | None = None
    temperature: float = 1.0

    def __post_init__(self) -> None:
        kind = _look_up(self.kind, MechanismKind, "mechanism kind")
        object.__setattr__(self, "kind", kind)
        post = _look_up(self.postprocess, PostProcess, "postprocess")
        object.__setattr__(self, "postprocess", post)

        if not _is_real(self.epsilon) or math.isnan(self.epsilon) or self.epsilon <= 0:
            raise PrivacyError("epsilon must be a number > 0 (math.inf means no noise, not DP)")
        object.__setattr__(self, "epsilon", float(self.epsilon))

        if kind is MechanismKind.GAUSSIAN:
            if self.delta is None or not _is_real(self.delta) or not 0.0 < self.delta < 1.0:
                raise PrivacyError("the gaussian mechanism needs delta in the open range (0, 1)")
            object.__setattr__(self, "delta", float(self.delta))
        elif self.delta is not None:
            raise PrivacyError("the laplace mechanism is pure epsilon-DP: delta must be None")

        if not _is_real(self.clip) or not math.isfinite(self.clip) or self.clip <= 0:
            raise PrivacyError("clip must be a finite number > 0")
        object.__setattr__(self, "clip", float(self.clip))

        if self.release is not None:
            try:
                start, stop = (int(v) for v in self.release)
            except (TypeError, ValueError):
                raise PrivacyError("release must be None or a (start, stop) pair") from None
            if not 0 <= start < stop:
                raise PrivacyError("release must satisfy 0 <= start < stop")
            object.__setattr__(self, "release", (start, stop))

        t = self.temperature
        if not _is_real(t) or not 0.0 <= t <= 1.0:
            raise PrivacyError("temperature must be a number in [0, 1]")
        object.__setattr__(self, "temperature", float(t))

        rr = self.condition_rr_epsilon
        if rr is not None and (not _is_real(rr) or not 0.0 < rr < math.inf):
            raise PrivacyError("condition_rr_epsilon must be None or a finite number > 0")
        if rr is not None:
            object.__setattr__(self, "condition_rr_epsilon", float(rr))

    @property
    def is_dp(self) -> bool:
        """``False`` when ``epsilon`` is infinite (no noise): such output is NOT DP."""
        return math.isfinite(self.epsilon)

    @property
    def clip_norm(self) -> str:
        """``"L1"`` for Laplace, ``"L2"`` for Gaussian."""
        return "L1" if self.kind is MechanismKind.LAPLACE else "L2"

    @property
    def sensitivity(self) -> float:
        """Replacement sensitivity 2C of the clipped released latent."""
        return 2.0 * self.clip

    def released_range(self, latent_dim: int) -> tuple[int, int]:
        """The released ``[start, stop)`` for a latent of ``latent_dim`` dimensions.

        Raises
        ------
        PrivacyError
            If the configured range does not fit in ``latent_dim``.
        """
        if latent_dim < 1:
            raise PrivacyError("latent_dim must be >= 1")
        if self.release is None:
            return (0, latent_dim)
        start, stop = self.release
        if stop > latent_dim:
            raise PrivacyError("release range exceeds the latent dimension")
        return (start, stop)


__all__ = ["MechanismConfig", "MechanismKind", "PostProcess"]
