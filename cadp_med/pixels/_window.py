"""The intensity window of a series in the pixel stage: which kind, from what, released how.

* Absolute units (CT in HU): the fixed window of the model card or, where the card has
  none, of ``cadp_med/imaging/data/fixed_windows.json``. No pixel is read, nothing spent.
* Relative units (MR and every other modality), eps finite: the DP median of per-slice
  percentiles (:mod:`cadp_med.privacy._window`) from ``share`` of each image's epsilon, on
  a grid given by the header's representable range. Share 0: that whole range, no budget.
* eps = inf (NOT DP): the exact medians of the per-slice percentiles.

The window's randomness is derived from ``--seed`` (audits) or else from the run key
(HMAC-SHA256), never from fresh entropy: a rerun, a resumed run or a retried study
recomputes the same window from the same slices instead of releasing a second one
(which would spend the window's epsilon twice). It is as secret as the key.

Non-fixed windows also replace the output's Window Center / Width (top level and per
frame): the scanner's values were computed from the original pixels.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

# Voxels read per sampled slice (every n-th) for its percentiles.
WINDOW_STRIDE = 4
# Instances read per series for its window (evenly spaced; all of a smaller series).
WINDOW_INSTANCES = 256
_VOI_TEXT = ("WindowCenterWidthExplanation", "VOILUTSequence")


def value_range(ds: Dataset) -> tuple[float, float, float]:
    """(low, high, unit): the modality values the header can represent, one stored step.

    From BitsStored, Pixel Representation and the first frame's Rescale Slope and
    Intercept (colour: the luminance range the reader produces). Header attributes
    only, written to the output unchanged; never the pixel values.
    """
    from cadp_med.pixels._codec import is_colour, luminance_bits, rescale_of, stored_range

    if is_colour(ds):
        bits, scale = luminance_bits(ds)
        return 0.0, (2.0**bits - 1.0) / scale, 1.0 / scale
    signed = ds.get("PixelRepresentation") == 1
    low, high = stored_range(int(ds.get("BitsStored", 16) or 16), signed)
    slope, intercept = rescale_of(ds, 0)
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return float(ends[0]), float(ends[1]), abs(float(slope))


def slice_values(path: Any) -> list[np.ndarray]:
    """Subsampled modality values of each frame of one instance (for the series window)."""
    import pydicom

    from cadp_med.imaging import slices_from_dicom_series

    try:
        ds = pydicom.dcmread(path)
        records = slices_from_dicom_series([ds])
    except Exception:  # unreadable files are quarantined by the main pass
        return []
    return [np.ravel(r.pixels)[::WINDOW_STRIDE].astype(np.float64) for r in records]


def window_rng(seed: int | None, secret: bytes | None, series_uid: str) -> np.random.Generator:
    """The window's generator: from the seed, else the run key, else the OS (see above)."""
    if seed is not None:
        digest = hashlib.sha256(f"{seed}:window:{series_uid}".encode()).digest()
    elif secret is not None:
        digest = hmac.new(secret, series_uid.encode(), hashlib.sha256).digest()
    else:  # library use without a key: fresh entropy
        return np.random.default_rng()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def window_secret(key: bytes) -> bytes:
    """The run key's subkey for window randomness (the key itself is not kept)."""
    return hmac.new(key, b"cadp-med privacy window", hashlib.sha256).digest()


def fit_window(
    slices: Iterable[np.ndarray],
    *,
    normalizer: Any,
    modality: str | None,
    header: Dataset,
    epsilon: float,
    share: float,
    rng: np.random.Generator | None,
) -> dict[str, Any]:
    """The window of one series (module doc). ``epsilon``: the window's eps per slice."""
    from cadp_med.privacy._window import WINDOW_MECHANISM, dp_window, slice_percentiles

    fixed = normalizer.fixed_window(modality)
    if fixed is not None:
        return {**fixed, "epsilon": 0.0, "share": 0.0, "mechanism": "none"}
    low, high, unit = value_range(header)
    key = (modality or "").split("-")[0].upper() or None
    if share == 0.0 and np.isfinite(epsilon):
        return {
            "low": low,
            "high": high,
            "method": "range",
            "modality": key,
            "epsilon": 0.0,
            "share": 0.0,
            "mechanism": "none",
        }
    lows, highs = slice_percentiles(slices, normalizer.percentiles)
    if not np.isfinite(epsilon):  # NOT DP: exact medians
        w_low, w_high = float(np.median(lows)), float(np.median(highs))
        if not w_high > w_low:
            w_high = w_low + 1.0
        return {
            "low": w_low,
            "high": w_high,
            "method": "percentile",
            "modality": key,
            "epsilon": "inf",
            "share": share,
            "mechanism": "none (NOT DP)",
            "slices": int(lows.size),
        }
    assert rng is not None
    drawn = dp_window(
        lows, highs, value_range=(low, high), unit=unit, epsilon=epsilon, rng=rng
    )
    return {
        **drawn,
        "method": "dp-median",
        "modality": key,
        "share": share,
        "mechanism": WINDOW_MECHANISM,
        "percentiles": list(normalizer.percentiles),
    }


def provenance(window: dict[str, Any]) -> dict[str, Any]:
    """The window as written into the private block (no header value of the input)."""
    keys = ("low", "high", "method", "mechanism", "epsilon", "share", "slices", "percentiles")
    record = {k: window[k] for k in keys if k in window}
    if isinstance(record.get("epsilon"), float):
        record["epsilon"] = round(record["epsilon"], 9)
    return record


def window_note(window: dict[str, Any]) -> str:
    """One sentence on what the released window is."""
    method = window.get("method")
    if method == "fixed":
        return "fixed window of the modality's absolute units; no image data, no budget"
    if method == "range":
        return "the header's representable range; no image data, no budget"
    if method == "dp-median":
        return (
            "differentially private (exponential mechanism, medians of per-slice "
            "percentiles); its epsilon is part of epsilon_slice"
        )
    return "NOT DP: exact medians of per-slice percentiles, released unnoised (eps = inf)"


def set_voi(out: Dataset, window: dict[str, Any]) -> None:
    """Window Center / Width of a non-fixed window, replacing the scanner's values.

    The output's values lie in ``[low, high]``; the scanner's window was computed from
    the original pixels. Only windows the header has are replaced (top level and each
    Frame VOI LUT item); their explanations and VOI LUT Sequences are removed. Fixed
    (CT) windows keep the header's presets.
    """
    if window.get("method") == "fixed":
        return
    low, high = float(window["low"]), float(window["high"])
    center, width = f"{(low + high) / 2:.6g}", f"{high - low:.6g}"
    for item in _voi_items(out):
        if "WindowCenter" in item or "WindowWidth" in item:
            item.WindowCenter, item.WindowWidth = center, width
        for keyword in _VOI_TEXT:
            if keyword in item:
                delattr(item, keyword)


def _voi_items(out: Dataset) -> list[Dataset]:
    items = [out]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for frame in out.get(group, None) or []:
            items.extend(frame.get("FrameVOILUTSequence", None) or [])
    return items
