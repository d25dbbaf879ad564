"""Per-modality intensity windows that map modality units to [0, 1], exactly invertibly.

The mapping is MONAI's ``ScaleIntensityRange(a_min=low, a_max=high, b_min=0, b_max=1,
clip=True)``; for non-CT images the window is the ``[p0.5, p99.5]`` percentile range of
``ScaleIntensityRangePercentiles`` but computed once per *series or volume*, not per slice,
so that slices of one series share one scale. The window numbers are kept explicitly
(MONAI's transforms do not return them) because the inverse needs them.

Privacy note: :meth:`Normalizer.fit` computes exact percentiles, an image statistic. The
privatizing pixel stage uses it only at eps = inf (NOT DP); for a DP run it takes the
fixed window of an absolute-unit modality (``data/fixed_windows.json``, or the model
card's) or estimates the window with the DP median of ``cadp_med.privacy._window``.
"""

from __future__ import annotations

import functools
import json
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from cadp_med.errors import ConfigError

_DEFAULT_PERCENTILES = (0.5, 99.5)


@functools.lru_cache(maxsize=1)
def packaged_fixed_windows() -> dict[str, tuple[float, float]]:
    """Modality code → ``(low, high)`` of the absolute-unit modalities (``data/``, cached)."""
    raw = pkgutil.get_data("cadp_med.imaging", "data/fixed_windows.json")
    if raw is None:  # pragma: no cover - a broken installation
        raise ConfigError("the packaged fixed-window table is missing")
    table = json.loads(raw.decode("utf-8"))["windows"]
    return {key: (float(row["low"]), float(row["high"])) for key, row in table.items()}


def _modality_key(modality: str | None) -> str:
    # "MR-T1" and "MR" share the MR rule; fixed windows are looked up by modality code.
    return (modality or "").split("-")[0].upper()


class Normalizer:
    """Intensity windows per modality.

    Parameters
    ----------
    fixed_windows : mapping, optional
        Modality code → ``(low, high)`` in modality units. Default: the packaged table
        :func:`packaged_fixed_windows` (CT -1024..3071 HU, the 12-bit HU range).
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
        windows = dict(packaged_fixed_windows() if fixed_windows is None else fixed_windows)
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

    def with_packaged_windows(self) -> Normalizer:
        """A copy that adds the packaged fixed windows for modalities this one lacks.

        A model card's own windows take precedence; the table fills in only where the
        card has none, so an absolute-unit modality never spends privacy budget.
        """
        merged = {**packaged_fixed_windows(), **self.fixed_windows}
        return Normalizer(fixed_windows=merged, percentiles=self.percentiles)

    def fixed_window(self, modality: str | None) -> dict[str, Any] | None:
        """The fixed window of ``modality`` ("MR-T1" uses the "MR" rule), or None."""
        key = _modality_key(modality)
        if key not in self.fixed_windows:
            return None
        low, high = self.fixed_windows[key]
        return {"low": low, "high": high, "method": "fixed", "modality": key}

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
        fixed = self.fixed_window(key)
        if fixed is not None:
            return fixed
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
