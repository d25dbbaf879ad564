"""The linkage attack: which original did this privatized image come from?

The attacker holds the original images and one privatized image, and knows its released
condition.  The candidates are ``K`` originals *with the same condition* (the true source
and ``K - 1`` others drawn at random from the same condition group), so chance is ``1/K``:
the conditions are released by design, and linkage through them alone is not what the
mechanism protects.  Two attackers score every candidate:

``pixel``
    normalized cross-correlation between the privatized image and each candidate, on the
    native image window (padding cropped away);
``latent``
    the attacker owns the model: encode the privatized image and every candidate with the
    released condition and compare on the released subspace (negative L2 distance, the
    candidates clipped exactly as the mechanism clips).  Outside that subspace a release
    holds fresh N(0, 1) noise, so the released subspace is all there is to compare;
``learned``
    the attacker can privatize images of their own (the model and the mechanism are
    public), so they learn a ridge map from privatized to original pixels on pairs of
    every image except the queries, then match the mapped image by NCC.  The releases of
    those other images stand in for the attacker's own simulations: each image's noise is
    independent, so they have the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadp_med.evaluation._metrics import (
    ncc_scores,
    neg_distance_scores,
    topk_accuracy,
    verification_auc,
)


@dataclass(frozen=True)
class CandidateSets:
    """For each query ``q``: ``members[q]`` indices of its candidates, ``true_pos[q]`` the
    position of the true source among them, ``sizes[q]`` the usable candidates (a group
    smaller than ``K`` is padded by repeating the true source's index, masked as invalid)."""

    queries: np.ndarray
    members: np.ndarray
    true_pos: np.ndarray
    valid: np.ndarray

    @property
    def chance_top1(self) -> float:
        """Mean of ``1 / K_q`` over the queries."""
        return float(np.mean(1.0 / self.valid.sum(axis=1)))

    def chance_topk(self, k: int) -> float:
        """Mean of ``min(k, K_q) / K_q``."""
        sizes = self.valid.sum(axis=1)
        return float(np.mean(np.minimum(k, sizes) / sizes))


def draw_candidates(groups: np.ndarray, n_queries: int, k: int, seed: int) -> CandidateSets:
    """Draw ``n_queries`` query images and ``k`` same-group candidates for each."""
    rng = np.random.default_rng(seed)
    n = len(groups)
    queries = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
    by_group = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    members = np.zeros((len(queries), k), dtype=np.int64)
    valid = np.zeros((len(queries), k), dtype=bool)
    true_pos = np.zeros(len(queries), dtype=np.int64)
    for row, query in enumerate(queries):
        pool = by_group[groups[query]]
        others = rng.permutation(pool[pool != query])[: k - 1]
        chosen = rng.permutation(np.concatenate([[query], others]))
        members[row, : len(chosen)] = chosen
        members[row, len(chosen) :] = query
        valid[row, : len(chosen)] = True
        true_pos[row] = int(np.flatnonzero(chosen == query)[0])
    return CandidateSets(queries, members, true_pos, valid)


def _masked(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, scores, -np.inf)


def attack_summary(scores: np.ndarray, sets: CandidateSets) -> dict[str, float]:
    """Top-1, top-5 and verification AUC of one attacker's ``[Q, K]`` scores."""
    masked = _masked(scores, sets.valid)
    # AUC over valid pairs only; padded slots are not pairs.
    rows, cols = np.nonzero(sets.valid)
    flat = scores[rows, cols]
    labels = cols == sets.true_pos[rows]
    if labels.all() or not labels.any():
        auc = float("nan")
    else:
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(labels, flat))
    return {
        "top1": topk_accuracy(masked, sets.true_pos, 1),
        "top5": topk_accuracy(masked, sets.true_pos, 5),
        "auc": auc,
    }


def pixel_scores(
    private: np.ndarray, originals: np.ndarray, sets: CandidateSets, native: int
) -> np.ndarray:
    """NCC scores of each query's privatized image against its candidates' originals."""
    from cadp_med.evaluation._data import crop_to

    queries = crop_to(private, native)
    cands = crop_to(originals[sets.members], native)  # [Q, K, 1, s, s]
    return ncc_scores(queries, cands)


def learned_scores(
    private: np.ndarray,
    originals: np.ndarray,
    sets: CandidateSets,
    native: int,
    *,
    max_pairs: int = 5_000,
    seed: int = 0,
) -> np.ndarray:
    """NCC after a ridge map privatized -> original, fitted on every image but the queries.

    Parameters
    ----------
    private, originals
        ``[N, 1, S, S]`` privatized images and their originals (row-aligned).
    sets
        The candidate sets; no query is used to fit the map.
    """
    from sklearn.linear_model import Ridge

    from cadp_med.evaluation._data import crop_to

    n = len(private)
    held = np.zeros(n, dtype=bool)
    held[sets.queries] = True
    train = np.flatnonzero(~held)
    if len(train) > max_pairs:
        train = np.sort(np.random.default_rng(seed).choice(train, max_pairs, replace=False))
    flat_priv = crop_to(private, native).reshape(n, -1)
    flat_orig = crop_to(originals, native).reshape(n, -1)
    if len(train) < 2:
        mapped = flat_priv[sets.queries]
    else:
        ridge = Ridge(alpha=1.0).fit(flat_priv[train], flat_orig[train])
        mapped = ridge.predict(flat_priv[sets.queries])
    return ncc_scores(mapped, flat_orig[sets.members])


def latent_scores(
    private_latents: np.ndarray,
    candidate_latents: np.ndarray,
    release: tuple[int, int],
    clip: float,
    p: int,
) -> np.ndarray:
    """``-L2`` on the released subspace between re-encoded releases and clipped candidates.

    Parameters
    ----------
    private_latents
        ``[Q, D]``: the privatized images re-encoded under their released condition.
    candidate_latents
        ``[Q, K, D]``: each query's candidates encoded under the query's condition.
    """
    from cadp_med.evaluation._privatize import clip_rows

    start, stop = release
    q = private_latents[:, start:stop]
    cand = candidate_latents[:, :, start:stop]
    flat = clip_rows(cand.reshape(-1, stop - start), clip, p).reshape(cand.shape)
    return neg_distance_scores(q, flat)


__all__ = [
    "CandidateSets",
    "attack_summary",
    "draw_candidates",
    "latent_scores",
    "learned_scores",
    "pixel_scores",
    "verification_auc",
]
