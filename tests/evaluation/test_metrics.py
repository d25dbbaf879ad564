"""Unit tests of the fidelity and linkage metrics."""

from __future__ import annotations

import numpy as np
import pytest

from cadp_med.evaluation._linkage import attack_summary, draw_candidates, pixel_scores
from cadp_med.evaluation._metrics import (
    mean_abs_diff,
    ncc_scores,
    psnr,
    ssim,
    topk_accuracy,
    verification_auc,
)


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).random((6, 1, 16, 16))


def test_ssim_of_identical_images_is_one(images: np.ndarray) -> None:
    np.testing.assert_allclose(ssim(images, images), 1.0, atol=1e-12)


def test_ssim_falls_with_noise_and_handles_8x8(images: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    light = np.clip(images + 0.05 * rng.standard_normal(images.shape), 0, 1)
    heavy = np.clip(images + 0.5 * rng.standard_normal(images.shape), 0, 1)
    assert np.all(ssim(images, light) > ssim(images, heavy))
    small = images[:, :, :8, :8]
    assert ssim(small, small).shape == (6,)  # 7x7 window on 8x8 images


def test_psnr_and_mad() -> None:
    a = np.zeros((2, 1, 4, 4))
    b = np.full((2, 1, 4, 4), 0.1)
    np.testing.assert_allclose(psnr(a, b), 20.0)  # mse 0.01 -> 20 dB
    np.testing.assert_allclose(mean_abs_diff(a, b), 0.1)
    assert psnr(a, a)[0] == pytest.approx(100.0)


def test_ncc_linkage_picks_the_identical_image(images: np.ndarray) -> None:
    groups = np.zeros(len(images), dtype=np.int64)
    sets = draw_candidates(groups, n_queries=6, k=5, seed=3)
    scores = pixel_scores(images, images, sets, native=16)
    np.testing.assert_allclose(scores[np.arange(6), sets.true_pos], 1.0)
    summary = attack_summary(scores, sets)
    assert summary == {"top1": 1.0, "top5": 1.0, "auc": 1.0}


def test_candidates_share_the_query_group() -> None:
    groups = np.repeat(np.arange(3), 10)
    sets = draw_candidates(groups, n_queries=12, k=4, seed=0)
    for query, members, pos in zip(sets.queries, sets.members, sets.true_pos, strict=True):
        assert members[pos] == query
        assert len(set(members)) == 4
        assert np.all(groups[members] == groups[query])
    assert sets.chance_top1 == pytest.approx(0.25)


def test_small_group_pads_and_masks() -> None:
    groups = np.array([0, 0, 1, 1, 1, 1])
    sets = draw_candidates(groups, n_queries=6, k=4, seed=0)
    assert sets.valid.sum(axis=1).tolist() == [2, 2, 4, 4, 4, 4]
    assert sets.chance_top1 == pytest.approx((2 * 0.5 + 4 * 0.25) / 6)


def test_topk_ties_count_against_the_attacker() -> None:
    constant = np.zeros((4, 10))
    assert topk_accuracy(constant, np.zeros(4, dtype=int), 1) == 0.0
    scores = np.eye(4, 10)
    assert topk_accuracy(scores, np.arange(4), 1) == 1.0


def test_auc_of_a_perfect_and_a_reversed_score() -> None:
    scores = np.eye(5)
    assert verification_auc(scores, np.arange(5)) == 1.0
    assert verification_auc(-scores, np.arange(5)) == 0.0


def test_ncc_is_invariant_to_brightness_and_contrast(images: np.ndarray) -> None:
    scores = ncc_scores(images[:1], (0.5 * images[:1] + 0.2)[:, None])
    np.testing.assert_allclose(scores, 1.0)


def test_learned_attacker_links_a_learnable_distortion() -> None:
    from cadp_med.evaluation._linkage import learned_scores

    rng = np.random.default_rng(0)
    originals = rng.random((200, 1, 8, 8))
    sets = draw_candidates(np.zeros(200, dtype=np.int64), n_queries=10, k=5, seed=1)
    # A release that is a fixed linear distortion of the original: the map is learnable
    # from the other images, so the learned attacker links every query.
    private = originals[:, :, ::-1, :] * 0.5 + 0.25
    scores = learned_scores(private, originals, sets, native=8)
    assert attack_summary(scores, sets)["top1"] == 1.0
    # Pure noise releases carry nothing: no better than chance on average.
    noise = rng.random((200, 1, 8, 8))
    sets_big = draw_candidates(np.zeros(200, dtype=np.int64), n_queries=40, k=5, seed=2)
    assert attack_summary(learned_scores(noise, originals, sets_big, 8), sets_big)["top1"] < 0.5
