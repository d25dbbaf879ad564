"""Options of the pixel privatization stage, validated when they are built."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cadp_med.errors import ConfigError

DEFAULT_MODEL_PATH = (
    Path(__file__).resolve().parent.parent / "model" / "default" / "model.safetensors"
)
_MECHANISMS = ("laplace", "gaussian")
_RELEASES = ("coarsest", "all")
_POSTPROCESS = ("posterior-sample", "posterior-mean", "none")
_BUDGETS = ("slice", "study")
_DEVICES = ("auto", "cpu", "cuda")
_GRIDS = ("original", "model")
_FORMATS = ("dicom", "nifti")


def card_temperature(card: dict[str, Any]) -> float:
    """The default temperature of a model: its card's ``privacy_defaults.temperature``
    (chosen by measurement in ``pipelines/train_default_model.py``), else 1 (the prior)."""
    entry = card.get("privacy_defaults", {}).get("temperature")
    value = entry.get("value") if isinstance(entry, dict) else entry
    return 1.0 if value is None else float(value)


def _choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ConfigError(f"{what} must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class PixelOptions:
    """How pixels are privatized.

    Parameters
    ----------
    epsilon : float
        Per-slice epsilon (``budget="slice"``) or the study total (``budget="study"``).
        ``math.inf`` disables the noise: the output is then NOT differentially private.
    mechanism : {"laplace", "gaussian"}
        Laplace (L1 clip, pure eps-DP) or analytic Gaussian (L2 clip, needs ``delta``).
    delta : float, optional
        Gaussian only; per slice, or the study total with ``budget="study"``.
    clip : float, optional
        Clip norm C; default the model card's ``privacy_defaults`` for the norm and
        released subspace.
    release : {"coarsest", "all"}
        Released latent subspace: the card's ``latent.default_release`` block, or all.
    postprocess : {"posterior-sample", "posterior-mean", "none"}
        Post-processing of the noisy release under the model's prior (N(0, I) or conditional).
    budget : {"slice", "study"}
        ``study`` splits ``epsilon`` (and ``delta``) over the slices of each study by
        basic composition.
    model : Path, optional
        Model file; default the packaged model.
    seed : int, optional
        Fixed noise seed for reproducible audits only; recorded in the provenance.
    device : {"auto", "cpu", "cuda"}
        Where the model runs.
    output_grid : {"original", "model"}
        Write the original matrix, or the model grid with honest geometry.
    batch_size : int
        Frames sent to the model at once.
    temperature : float, optional
        Scale of the fresh prior draws that replace the latent dimensions outside the
        released subspace (1 = the prior; 0 = its mode, smoother images). Fixed in
        advance and independent of the image, so the guarantee is unchanged. ``None``:
        the model card's measured default (:func:`card_temperature`).
    window_eps_share : float
        Share of each image's epsilon spent on the DP intensity window of its series,
        for modalities without a fixed window (MR and every other relative-unit
        modality; CT uses its fixed HU window and spends nothing). ``epsilon`` stays the
        total per image: the latent gets ``1 - window_eps_share`` of it. 0 spends
        nothing and uses the header's whole representable range as the window.
    allow_outside_domain : bool
        Privatize images outside the domains (modality/contrast x body region x plane)
        that the model card declares, instead of quarantining them as
        ``pixels-outside-model-domain``; each such image is recorded in its provenance
        and gets an audit warning.
    """

    epsilon: float = 2.0
    mechanism: str = "laplace"
    delta: float | None = None
    clip: float | None = None
    release: str = "coarsest"
    postprocess: str = "posterior-sample"
    budget: str = "slice"
    model: Path | None = None
    seed: int | None = None
    device: str = "auto"
    output_grid: str = "original"
    output_format: str = "dicom"
    batch_size: int = 16
    temperature: float | None = None
    window_eps_share: float = 0.1
    allow_outside_domain: bool = False

    def __post_init__(self) -> None:
        _choice(self.mechanism, _MECHANISMS, "mechanism")
        _choice(self.release, _RELEASES, "release")
        _choice(self.postprocess, _POSTPROCESS, "postprocess")
        _choice(self.budget, _BUDGETS, "budget")
        _choice(self.device, _DEVICES, "device")
        _choice(self.output_grid, _GRIDS, "output grid")
        _choice(self.output_format, _FORMATS, "format")
        eps = float(self.epsilon)
        if math.isnan(eps) or eps <= 0:
            raise ConfigError("eps must be > 0 (inf only when asked for explicitly: NOT DP)")
        if math.isinf(eps) and self.budget == "study":
            raise ConfigError("a study budget needs a finite eps")
        if self.mechanism == "gaussian" and (self.delta is None or not 0 < self.delta < 1):
            raise ConfigError("the gaussian mechanism needs --delta in (0, 1)")
        if self.mechanism == "laplace" and self.delta is not None:
            raise ConfigError("the laplace mechanism is pure eps-DP: do not pass --delta")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip > 0):
            raise ConfigError("clip must be a finite number > 0")
        if self.seed is not None and self.seed < 0:
            raise ConfigError("seed must be a non-negative integer")
        if self.output_format != "dicom":
            # NIfTI output is chosen per run through cadp_med.nifti.NiftiOptions (the CLI's
            # --format); the pixel stage itself always writes DICOM frames.
            raise ConfigError(
                "the pixel stage writes DICOM; NIfTI output is set with NiftiOptions (--format)"
            )
        if self.batch_size < 1:
            raise ConfigError("batch size must be at least 1")
        if self.temperature is not None and not 0.0 <= float(self.temperature) <= 1.0:
            raise ConfigError("temperature must be in [0, 1]")
        if not 0.0 <= float(self.window_eps_share) < 1.0:
            raise ConfigError("window eps share must be in [0, 1)")

    @property
    def model_path(self) -> Path:
        """The model file to load."""
        return Path(self.model) if self.model is not None else DEFAULT_MODEL_PATH

    @property
    def is_dp(self) -> bool:
        """False for ``eps = inf``: such output is NOT differentially private."""
        return math.isfinite(float(self.epsilon))

    def label(self) -> str:
        """Short label for Series Description, e.g. ``eps=2`` or ``eps=inf NOT DP``."""
        return f"eps={float(self.epsilon):g}" if self.is_dp else "eps=inf NOT DP"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (the model path is not included: it may name a person's folder)."""
        return {
            "epsilon": float(self.epsilon) if self.is_dp else "inf",
            "mechanism": self.mechanism,
            "delta": self.delta,
            "clip": self.clip,
            "release": self.release,
            "postprocess": self.postprocess,
            "temperature": None if self.temperature is None else float(self.temperature),
            "window_eps_share": float(self.window_eps_share),
            "budget": self.budget,
            "seeded": self.seed is not None,
            "output_grid": self.output_grid,
            "allow_outside_domain": bool(self.allow_outside_domain),
        }
