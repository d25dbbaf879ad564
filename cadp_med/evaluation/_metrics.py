"""Image fidelity and linkage metrics, in plain numpy.

Fidelity (SSIM, PSNR, mean absolute difference) says how much of an image survives
privatization; it is *not* a privacy measure.  Privacy is measured by linkage: how often
an attacker holding the originals picks the right source of a privatized image.

References
----------
.. [1] Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality
   assessment: from error visibility to structural similarity", IEEE TIP 13(4), 2004.
"""

from __future__ import annotations

import numpy as np

_K1, _K2 = 0.01, 0.03


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    window = np.exp(-0.5 * (offsets / sigma) ** 2)
    return window / window.sum()


def _filter_valid(images: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of ``[N, H, W]`` images with a 1-D window."""
    size = window.shape[0]
    rows = np.lib.stride_tricks.sliding_window_view(images, size, axis=2) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ window


def ssim(
    a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> np.ndarray:
    """Per-image SSIM with the Gaussian window of Wang et al. 2004 [1]_.

    Parameters
    ----------
    a, b
        Images of the same shape ``[N, H, W]`` or ``[N, 1, H, W]``.
    data_range
        Dynamic range of the pixel values (1 for images in [0, 1]).
    window, sigma
        Side and standard deviation of the Gaussian window.  The side is reduced to the
        largest odd number not above the image side, so 8x8 digits use a 7x7 window.

    Returns
    -------
    numpy.ndarray
        ``[N]`` mean SSIM over the valid window positions of each image.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("ssim needs two image stacks of the same shape")
    if a.ndim == 4:
        a, b = a[:, 0], b[:, 0]
    side = min(window, a.shape[-1], a.shape[-2])
    side -= 1 - side % 2  # odd, so the window has a centre
    kernel = _gaussian_window(side, sigma)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, kernel), _filter_valid(b, kernel)
    var_a = _filter_valid(a * a, kernel) - mu_a**2
    var_b = _filter_valid(b * b, kernel) - mu_b**2
    cov = _filter_valid(a * b, kernel) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return (num / den).reshape(a.shape[0], -1).mean(axis=1)


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0) -> np.ndarray:
    """Per-image PSNR in dB; identical images are capped at 100 dB instead of infinity."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    mse = (diff.reshape(diff.shape[0], -1) ** 2).mean(axis=1)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, data_range**2 * 1e-10))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image mean absolute pixel difference."""
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return diff.reshape(diff.shape[0], -1).mean(axis=1)


def ncc_scores(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Normalized cross-correlation between each query and each of its candidates.

    Parameters
    ----------
    queries
        ``[Q, ...]`` images.
    candidates
        ``[Q, K, ...]``: the ``K`` candidate originals of each query.

    Returns
    -------
    numpy.ndarray
        ``[Q, K]`` scores in [-1, 1]; a constant image scores 0 against everything.
    """
    q = np.asarray(queries, dtype=np.float64).reshape(len(queries), -1)
    cand = np.asarray(candidates, dtype=np.float64).reshape(q.shape[0], -1, q.shape[1])
    q = q - q.mean(axis=1, keepdims=True)
    cand = cand - cand.mean(axis=2, keepdims=True)
    q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    cand /= np.maximum(np.linalg.norm(cand, axis=2, keepdims=True), 1e-12)
    return np.einsum("qd,qkd->qk", q, cand)


def neg_distance_scores(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``-||q - c||_2`` for ``[Q, D]`` queries and ``[Q, K, D]`` candidates (higher = closer)."""
    q = np.asarray(queries, dtype=np.float64)
    cand = np.asarray(candidates, dtype=np.float64)
    return -np.linalg.norm(cand - q[:, None, :], axis=2)


def topk_accuracy(scores: np.ndarray, true_index: np.ndarray, k: int) -> float:
    """Share of queries whose true candidate is among the ``k`` highest scores.

    Ties are broken against the attacker: a candidate tied with the true one counts as
    ranked above it, so a constant score gives no credit beyond chance.
    """
    scores = np.asarray(scores, dtype=np.float64)
    true_scores = scores[np.arange(len(scores)), true_index]
    rank = (scores >= true_scores[:, None]).sum(axis=1)  # 1 = strictly best
    return float((rank <= k).mean())


def verification_auc(scores: np.ndarray, true_index: np.ndarray) -> float:
    """ROC AUC of "same source vs not" over all (query, candidate) pairs."""
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.zeros_like(scores, dtype=bool)
    labels[np.arange(len(scores)), true_index] = True
    return float(roc_auc_score(labels.ravel(), scores.ravel()))


__all__ = [
    "mean_abs_diff",
    "ncc_scores",
    "neg_distance_scores",
    "psnr",
    "ssim",
    "topk_accuracy",
    "verification_auc",
]
