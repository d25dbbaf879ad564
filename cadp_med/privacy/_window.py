"""A differentially private intensity window for series whose units are relative (MR).

The pixel stage maps each series to [0, 1] with one window ``[low, high]``. For absolute
units (CT in HU) the window is a fixed table entry and costs nothing. For relative units
the window must come from the pixels, and it is released with every output of the
series (in the pixel values and the provenance), so it is estimated here with the
exponential mechanism [1]_ and its epsilon is part of every image's budget.

Unit of privacy
---------------
The guarantee of the pixel stage is per image (slice or frame): the output must be
eps-DP against replacing that one image. The window is one release per *series* that
depends on all its (sampled) slices, so what matters is how much one slice can move it.

What is estimated, and why not voxel ranks
------------------------------------------
Each of the series' m sampled slices contributes exactly one number per window end:
its own percentile ``p_low`` (the card's lower percentile, 0.5) and ``p_high`` (99.5) of
its voxels. The window is the DP *median* of the m lower values and the DP median of the
m upper values. A slice therefore changes one value of each list, whatever its pixels.

The obvious alternative, the exponential mechanism on the rank of the pooled voxels with
utility ``-|rank(x) - q n|`` and sensitivity k (the voxels one slice contributes), fails
at the window's extreme quantiles: every candidate above the data maximum has utility
``-(1 - q) n``, only ``(1 - q) m k`` voxels (0.005 m slices' worth for q = 0.995) away from
the best. Their probability ratio to the true quantile is ``exp(eps (1 - q) m / 2)``, near
1 for any m below a few thousand slices, so the released high end would be spread over
the whole empty range above the data. A median sits m/2 slices from either end, so the
same mechanism resolves it as soon as ``eps m`` is large against ``2 ln B``.

The mechanism
-------------
Candidates are B bins ``[e_j, e_{j+1})`` of a grid fixed before any pixel is read: the
edges are 0 and ``+-unit * ceil(r^i)`` (``unit`` is one stored step of the header's
Modality LUT, r = 2^(1/16): integer steps near 0, then 4.4 % steps), cut to the range
``[lo, hi]`` that the header's BitsStored, Pixel Representation and rescale can
represent, with lo and hi as the outer edges. The grid depends on those header
attributes only (they are written to the output unchanged), never on pixel values.

For values v_1..v_m (clamped to [lo, hi]), bin j has

    L_j = #{i : v_i < e_j},   R_j = #{i : v_i >= e_{j+1}}   (last bin: v_i > e_B),
    u_j = -max(L_j, R_j),

the number of values that lie outside the bin on its more crowded side; the bins that
hold a median have the largest utility. Replacing one value v by v' changes L_j by at
most 1 and R_j by at most 1, so ``|u_j(v) - u_j(v')| <= 1`` for every j: the
sensitivity is Delta u = 1. (u is not monotone in the data, L and R move in opposite
directions, so the factor 2 below is needed.) The bin is drawn with

    P(j) = exp(eps_q u_j / 2) / sum_l exp(eps_q u_l / 2),

which is eps_q-DP against replacing one value (McSherry and Talwar [1]_, Theorem 6), i.e.
against replacing one slice. The released number is a fixed point of the drawn bin (its
lower edge for ``low``, its upper edge for ``high``): post-processing.

Budget
------
The two medians each get ``eps_q = eps_w / 2``; by basic composition [2]_ the window is
eps_w-DP per slice. A slice's output is then (adaptive composition) DP at
``eps_latent + eps_w``: the window first, then its own latent release given the window;
the other slices' outputs depend on it only through the window. The pixel stage sets
``eps_w = share * eps`` and ``eps_latent = (1 - share) * eps`` so that ``--eps`` stays the
total per image. Slices that were not sampled for the window spend only ``eps_latent``.
Replacing all m slices of a series changes the window by at most m eps_w (group privacy
of a pure mechanism), so a study total is the sum of its images' totals.

Accuracy
--------
The drawn bin's utility is, with probability at least 1 - beta, within
``2 (ln B + ln(1/beta)) / eps_q`` of the best [1]_: the median's rank error is that many
slices, to compare with m / 2. With B ~ 400 and beta = 0.1 that is about 16 / eps_q
slices: eps_q = 0.1 (eps = 2 with the default share of 10 %) needs several hundred slices
before the window carries information; below that the window is close to a draw from the
grid, i.e. from the header's representable range, and carries little of the image.

References
----------
.. [1] F. McSherry and K. Talwar, "Mechanism Design via Differential Privacy", FOCS 2007.
.. [2] C. Dwork and A. Roth, "The Algorithmic Foundations of Differential Privacy", 2014,
   Theorem 3.16 (basic composition) and Theorem 3.10 (exponential mechanism).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from cadp_med.errors import PrivacyError

#: What the provenance calls this mechanism.
WINDOW_MECHANISM = "exponential-mechanism median of per-slice percentiles"
#: Default share of each image's epsilon spent on the window of a relative-unit series.
DEFAULT_WINDOW_SHARE = 0.1
# Grid ratio between consecutive edges away from 0: 2^(1/16), steps of 4.4 %.
_RATIO = 2.0 ** (1.0 / 16.0)


def candidate_edges(low: float, high: float, unit: float) -> np.ndarray:
    """The bin edges of the candidate grid on ``[low, high]`` (see the module doc).

    Parameters
    ----------
    low, high : float
        The representable range of modality values (from the header), ``low < high``.
    unit : float
        One stored step in modality units (``|RescaleSlope|``), > 0.

    Returns
    -------
    numpy.ndarray
        Sorted, distinct edges, ``edges[0] == low`` and ``edges[-1] == high``.
    """
    low, high, unit = float(low), float(high), float(unit)
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise PrivacyError("the window range must be finite with high > low")
    if not (math.isfinite(unit) and unit > 0):
        raise PrivacyError("the window grid unit must be a finite number > 0")
    reach = max(abs(low), abs(high)) / unit
    steps = [0.0]
    i = 0
    while True:
        step = float(math.ceil(_RATIO**i - 1e-9))
        if step > reach:
            break
        steps.append(step)
        i += 1
    magnitudes = np.unique(np.asarray(steps)) * unit
    grid = np.concatenate([-magnitudes[1:], magnitudes])
    inside = grid[(grid > low) & (grid < high)]
    return np.unique(np.concatenate([[low], inside, [high]]))


def bin_utilities(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``u_j = -max(L_j, R_j)`` of every bin for the median of ``values`` (module doc)."""
    v = np.sort(np.clip(np.asarray(values, dtype=np.float64).ravel(), edges[0], edges[-1]))
    m = v.size
    below = np.searchsorted(v, edges[:-1], side="left")  # L_j: values < e_j
    above = m - np.searchsorted(v, edges[1:], side="left")  # R_j: values >= e_{j+1}
    above[-1] = m - np.searchsorted(v, edges[-1], side="right")  # the last bin is closed
    return -np.maximum(below, above).astype(np.float64)


def median_probabilities(values: np.ndarray, edges: np.ndarray, epsilon: float) -> np.ndarray:
    """The exponential mechanism's exact probability of each bin, ``P(j)`` of the module doc."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise PrivacyError("the window epsilon must be a finite number > 0")
    logits = epsilon * bin_utilities(values, edges) / 2.0
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()


def dp_median_bin(
    values: np.ndarray, edges: np.ndarray, epsilon: float, rng: np.random.Generator
) -> int:
    """Draw a bin index by the exponential mechanism (eps-DP per value of ``values``)."""
    probabilities = median_probabilities(values, edges, epsilon)
    return int(rng.choice(probabilities.size, p=probabilities))


def slice_percentiles(
    slices: Iterable[np.ndarray], percentiles: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Each slice's own (lower, upper) percentile: the one number per slice and end.

    ``slices`` is read once, one slice at a time (it may be a generator).

    Non-finite voxels are ignored; a slice with none left contributes 0 (a fixed value,
    so the per-slice sensitivity is unchanged).
    """
    lows, highs = [], []
    for values in slices:
        finite = np.asarray(values, dtype=np.float64).ravel()
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            lows.append(0.0)
            highs.append(0.0)
            continue
        p_low, p_high = np.percentile(finite, percentiles)
        lows.append(float(p_low))
        highs.append(float(p_high))
    return np.asarray(lows), np.asarray(highs)


def dp_window(
    lows: np.ndarray,
    highs: np.ndarray,
    *,
    value_range: tuple[float, float],
    unit: float,
    epsilon: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The eps-DP (per slice) window of a series from its slices' own percentiles.

    Parameters
    ----------
    lows, highs : numpy.ndarray
        One value per sampled slice: its lower and upper percentile
        (:func:`slice_percentiles`), in modality units.
    value_range : (float, float)
        The representable range of the header, the outer edges of the grid.
    unit : float
        One stored step in modality units.
    epsilon : float
        The window's epsilon per slice, eps_w; each end gets eps_w / 2.
    rng : numpy.random.Generator
        The randomness of the two draws.

    Returns
    -------
    dict
        ``low``, ``high`` (modality units, ``high > low``), ``epsilon`` and ``slices`` (m).
    """
    lows, highs = np.asarray(lows, dtype=np.float64), np.asarray(highs, dtype=np.float64)
    if lows.size == 0 or lows.shape != highs.shape:
        raise PrivacyError("a DP window needs one lower and one upper value per slice")
    edges = candidate_edges(value_range[0], value_range[1], unit)
    half = float(epsilon) / 2.0
    j_low = dp_median_bin(lows, edges, half, rng)
    j_high = dp_median_bin(highs, edges, half, rng)
    low, high = float(edges[j_low]), float(edges[j_high + 1])
    if not high > low:
        # Post-processing of the two draws: the span of both bins, never empty.
        low = float(min(edges[j_low], edges[j_high]))
        high = float(max(edges[j_low + 1], edges[j_high + 1]))
    return {"low": low, "high": high, "epsilon": float(epsilon), "slices": int(lows.size)}


__all__ = [
    "DEFAULT_WINDOW_SHARE",
    "WINDOW_MECHANISM",
    "bin_utilities",
    "candidate_edges",
    "dp_median_bin",
    "dp_window",
    "median_probabilities",
    "slice_percentiles",
]
