"""Realism of released images: a cross-validated real-vs-released discriminator and the
Frechet distance between feature sets.

Both work on feature vectors (for images: the penultimate layer of a classifier, as in
FID [1]_), so they say how far the released images sit from real ones in the space the
classifier uses to read anatomy. Neither is a privacy measure.

The floor of either is two disjoint samples of real images: a discriminator then has AUC
near 0.5, and the Frechet distance is the sampling noise of the estimate, which grows as
the samples shrink; compare a released set against real images only with samples of the
same sizes.

References
----------
.. [1] M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler and S. Hochreiter, "GANs trained
   by a two time-scale update rule converge to a local Nash equilibrium", NeurIPS 2017.
"""

from __future__ import annotations

import numpy as np


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    Parameters
    ----------
    a, b
        ``[N, D]`` and ``[M, D]`` features (N, M >= 2).

    Returns
    -------
    float
        The distance (>= 0; 0 for identical sets up to rounding).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError("frechet_distance needs two [N, D] feature sets of the same D")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("frechet_distance needs at least two samples per set")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    # tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric
    # PSD matrix: eigh stays exact where features are constant (singular covariances),
    # where a general matrix square root is unstable.
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a)
    trace_root = float(np.sqrt(np.clip(inner, 0.0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root)
    return max(value, 0.0)


def discriminator_auc(
    real: np.ndarray, fake: np.ndarray, *, folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """Cross-validated ROC AUC of a logistic-regression real-vs-fake discriminator.

    Features are standardised inside each training fold (no test statistics leak in).

    Parameters
    ----------
    real, fake
        ``[N, D]`` and ``[M, D]`` features.
    folds
        Stratified folds; each sample is scored once, by the model that did not see it.
    seed
        Seeds the fold assignment.

    Returns
    -------
    dict
        ``{"auc": pooled out-of-fold AUC, "auc_folds_mean", "auc_folds_std"}``. 0.5 is
        indistinguishable, 1.0 perfectly separable.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real), dtype=int), np.ones(len(fake), dtype=int)])
    scores = np.zeros(len(x))
    per_fold = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2_000))
        model.fit(x[train], y[train])
        scores[test] = model.decision_function(x[test])
        per_fold.append(roc_auc_score(y[test], scores[test]))
    return {
        "auc": float(roc_auc_score(y, scores)),
        "auc_folds_mean": float(np.mean(per_fold)),
        "auc_folds_std": float(np.std(per_fold)),
    }


__all__ = ["discriminator_auc", "frechet_distance"]
