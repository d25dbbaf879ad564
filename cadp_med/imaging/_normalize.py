"""Per-modality intensity windows that map modality units to [0, 1], exactly invertibly.

The mapping is MONAI's ``ScaleIntensityRange(a_min=low, a_max=high, b_min=0, b_max=1,
clip=True)``; for non-CT images the window is the ``[p0.5, p99.5]`` percentile range of
``ScaleIntensityRangePercentiles`` but computed once per *series or volume*, not per slice,
so that slices of one series share one scale. The window numbers are kept explicitly
(MONAI's transforms do not return them) because the inverse needs them.

Privacy note: a percentile window is derived from the image. It is released unnoised with
the output, like the conditions; it is two numbers per series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cadp_med.errors import ConfigError

_DEFAULT_FIXED = {"CT": (-1024.0, 3071.0)}
_DEFAULT_PERCENTILES = (0.5, 99.5)


def _modality_key(modality: str | None) -> str:
    # "MR-T1" and "MR" share the MR rule; fixed windows are looked up by modality code.
    return (modality or "").split("-")[0].upper()


class Normalizer:
    """Intensity windows per modality.

    Parameters
    ----------
    fixed_windows : mapping, optional
        Modality code → ``(low, high)`` in modality units. Default ``{"CT": (-1024, 3071)}``
        (the 12-bit HU range: air to dense bone/metal).
    percentiles : tuple of float, optional
        Lower and upper percentile for every other modality. Default ``(0.5, 99.5)``.

    Notes
    -----
    Contract: ``inverse(forward(p, w), w) == p`` (to float32 rounding) for every ``p`` in
    ``[w["low"], w["high"]]``; values outside the window are clipped by ``forward``.
    """

    def __init__(
        self,
        fixed_windows: Mapping[str, tuple[float, float]] | None = None,
        percentiles: tuple[float, float] = _DEFAULT_PERCENTILES,
    ) -> None:
        windows = dict(_DEFAULT_FIXED if fixed_windows is None else fixed_windows)
        self.fixed_windows: dict[str, tuple[float, float]] = {}
        for modality, (low, high) in windows.items():
            if not float(high) > float(low):
                raise ConfigError(f"fixed window for {modality} must have high > low")
            self.fixed_windows[_modality_key(modality)] = (float(low), float(high))
        p_low, p_high = (float(p) for p in percentiles)
        if not 0.0 <= p_low < p_high <= 100.0:
            raise ConfigError("percentiles must satisfy 0 <= low < high <= 100")
        self.percentiles = (p_low, p_high)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Normalizer:
        """Rebuild a normalizer from :meth:`to_spec` output."""
        try:
            fixed = {k: (float(v[0]), float(v[1])) for k, v in spec["fixed_windows"].items()}
            percentiles = (float(spec["percentiles"][0]), float(spec["percentiles"][1]))
        except (KeyError, TypeError, IndexError) as exc:
            raise ConfigError("invalid normalizer spec") from exc
        return cls(fixed_windows=fixed, percentiles=percentiles)

    def to_spec(self) -> dict[str, Any]:
        """JSON-ready description for the model card."""
        return {
            "kind": "window",
            "output_range": [0.0, 1.0],
            "fixed_windows": {k: list(v) for k, v in self.fixed_windows.items()},
            "percentiles": list(self.percentiles),
            "percentile_scope": "series",
        }

    def fit(self, volume_or_slices: Any, modality: str | None = None) -> dict[str, Any]:
        """Compute the window of one series or volume.

        Parameters
        ----------
        volume_or_slices : array-like or iterable of SliceRecord
            All voxels of one series: an array of any shape, or its slices.
        modality : str, optional
            Modality or contrast ("CT", "MR", "MR-T1", ...). Taken from the first slice's
            ``metadata["modality"]`` when slices are given and this is None.

        Returns
        -------
        dict
            ``{"low", "high", "method", "modality"}`` in modality units; ``method`` is
            ``"fixed"`` or ``"percentile"``.
        """
        values, inferred = _collect(volume_or_slices)
        key = _modality_key(modality if modality is not None else inferred)
        if key in self.fixed_windows:
            low, high = self.fixed_windows[key]
            return {"low": low, "high": high, "method": "fixed", "modality": key}
        if values.size == 0:
            raise ConfigError("cannot fit a window to an empty series")
        low, high = (float(v) for v in np.percentile(values, self.percentiles))
        if not high > low:
            # A constant image: any unit-wide window inverts exactly and maps it to 0.
            high = low + 1.0
        return {"low": low, "high": high, "method": "percentile", "modality": key or None}

    @staticmethod
    def forward(pixels: np.ndarray, window: Mapping[str, Any]) -> np.ndarray:
        """Map modality units to [0, 1] (clipped).

        Returns float64 for float64 input and float32 otherwise: float32 resolves about
        2.5e-4 HU at the top of the CT window, so callers that need a round trip exact to
        1e-4 in modality units keep float64.
        """
        low, high = float(window["low"]), float(window["high"])
        scaled = (np.asarray(pixels, dtype=np.float64) - low) / (high - low)
        return np.clip(scaled, 0.0, 1.0).astype(_out_dtype(pixels))

    @staticmethod
    def inverse(normalized: np.ndarray, window: Mapping[str, Any]) -> np.ndarray:
        """Map [0, 1] back to modality units (float64 for float64 input, else float32)."""
        low, high = float(window["low"]), float(window["high"])
        restored = np.asarray(normalized, dtype=np.float64) * (high - low) + low
        return restored.astype(_out_dtype(normalized))


def _out_dtype(array: Any) -> type[np.floating[Any]]:
    return np.float64 if np.asarray(array).dtype == np.float64 else np.float32


def _collect(volume_or_slices: Any) -> tuple[np.ndarray, str | None]:
    if isinstance(volume_or_slices, np.ndarray):
        return volume_or_slices.ravel(), None
    if isinstance(volume_or_slices, Iterable):
        items = list(volume_or_slices)
        if items and hasattr(items[0], "pixels"):
            modality = items[0].metadata.get("modality")
            return np.concatenate([np.ravel(r.pixels) for r in items]), modality
        return np.asarray(items, dtype=np.float64).ravel(), None
    return np.asarray(volume_or_slices, dtype=np.float64).ravel(), None
