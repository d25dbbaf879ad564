"""Training augmentation: shape and range, seed reproducibility, only anatomical flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cadp_med.errors import ConfigError
from cadp_med.training._augment import (
    Augmentation,
    augment_batch,
    batch_augmenter,
    flip_allowed,
    intensity_allowed,
)


def _slices(n: int, size: int = 16) -> torch.Tensor:
    # Asymmetric content in both axes, so any flip is visible.
    rng = np.random.default_rng(0)
    x = rng.random((n, 1, size, size)).astype(np.float32)
    x[:, :, :4, :3] = 1.0
    return torch.from_numpy(x)


def test_flip_rules_follow_anatomy() -> None:
    assert flip_allowed({"plane": "axial", "region": "head"})
    assert flip_allowed({"plane": "coronal", "region": "head"})
    assert not flip_allowed({"plane": "sagittal", "region": "head"})
    assert not flip_allowed({"plane": "axial", "region": "chest"})
    assert not flip_allowed({"plane": "coronal", "region": "abdomen"})
    assert not flip_allowed({"plane": "unknown", "region": "head"})
    assert not flip_allowed({"plane": "axial"})
    assert not intensity_allowed({"contrast": "CT"})
    assert intensity_allowed({"contrast": "MR-T1"})


def test_shape_range_and_dtype_are_kept() -> None:
    x = _slices(32)
    params = Augmentation(p=1.0, rotate_deg=10, scale=0.1, translate=0.1)
    gen = torch.Generator().manual_seed(3)
    ok = torch.ones(32, dtype=torch.bool)
    out = augment_batch(x, ok, ok, gen, params)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.equal(out, x)


def test_same_seed_same_batch_other_seed_differs() -> None:
    x = _slices(8)
    meta = [{"plane": "axial", "region": "head", "contrast": "MR-T1"}] * 8
    idx = torch.arange(8)
    first = batch_augmenter(Augmentation(seed=1), meta)(x, idx, 2, 5)
    again = batch_augmenter(Augmentation(seed=1), meta)(x, idx, 2, 5)
    other = batch_augmenter(Augmentation(seed=2), meta)(x, idx, 2, 5)
    next_batch = batch_augmenter(Augmentation(seed=1), meta)(x, idx, 2, 6)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, next_batch)


def test_no_augmentation_is_the_identity() -> None:
    x = _slices(4)
    assert batch_augmenter(None, [{}] * 4)(x, torch.arange(4), 0, 0) is x
    zero = Augmentation(p=0.0)
    ok = torch.ones(4, dtype=torch.bool)
    assert torch.allclose(augment_batch(x, ok, ok, torch.Generator(), zero), x, atol=1e-6)


def test_only_left_right_flips_and_only_where_allowed() -> None:
    # Only the flip is left on, so each output is the input, its left-right mirror, or
    # (never) anything else such as a superior-inferior mirror.
    n = 64
    x = _slices(n)
    meta = [
        {"plane": "axial", "region": "head", "contrast": "MR-T1"},
        {"plane": "coronal", "region": "head", "contrast": "CT"},
        {"plane": "sagittal", "region": "head", "contrast": "MR-T1"},
        {"plane": "axial", "region": "chest", "contrast": "CT"},
    ] * (n // 4)
    params = Augmentation(
        p=1.0, rotate_deg=0, scale=0, translate=0, intensity_scale=0, intensity_shift=0
    )
    out = batch_augmenter(params, meta)(x, torch.arange(n), 0, 0)
    flipped = 0
    for i in range(n):
        same = torch.allclose(out[i], x[i], atol=1e-5)
        mirrored = torch.allclose(out[i], x[i].flip(-1), atol=1e-5)
        assert not torch.allclose(out[i], x[i].flip(-2), atol=1e-5)
        if flip_allowed(meta[i]):
            assert same or mirrored
            flipped += int(mirrored)
        else:
            assert same, f"slice {i} ({meta[i]['plane']}, {meta[i]['region']}) was changed"
    assert 0 < flipped < n // 2  # about half of the allowed ones


def test_ct_intensities_are_never_scaled() -> None:
    x = _slices(16)
    meta = [{"plane": "sagittal", "region": "chest", "contrast": "CT"}] * 16
    params = Augmentation(p=1.0, rotate_deg=0, scale=0, translate=0, intensity_scale=0.2)
    out = batch_augmenter(params, meta)(x, torch.arange(16), 0, 0)
    assert torch.allclose(out, x, atol=1e-5)
    mr = [{"plane": "sagittal", "region": "chest", "contrast": "MR-T2"}] * 16
    assert not torch.allclose(batch_augmenter(params, mr)(x, torch.arange(16), 0, 0), x)


@pytest.mark.parametrize(
    "kwargs", [{"p": 1.5}, {"rotate_deg": 30.0}, {"scale": -0.1}, {"seed": -1}]
)
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Augmentation(**kwargs)


def test_trainer_applies_it_reproducibly_and_records_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cadp_med.model.checkpoint import load_model
    from cadp_med.model.conditions import default_schema
    from cadp_med.training import train_model
    from tests.model._slices import derived_set
    from tests.model.test_cinn import SMALL

    x, meta = derived_set(32, 64, seed=3)
    meta = [{**m, "region": "head"} for m in meta]
    kw = dict(
        schema=default_schema(), config=SMALL, epochs=1, batch_size=16, seed=5, device="cpu",
        heldout_fraction=0.25, progress=False, augmentation=Augmentation(seed=7),
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit comparison needs one summation order
    try:
        card = train_model(x, meta, out_path=tmp_path / "a.safetensors", **kw)
        again = train_model(x, meta, out_path=tmp_path / "b.safetensors", **kw)
        plain = train_model(
            x, meta, out_path=tmp_path / "c.safetensors", **{**kw, "augmentation": None}
        )
    finally:
        torch.set_num_threads(threads)
    assert card["content_hash"] == again["content_hash"]
    assert card["content_hash"] != plain["content_hash"]
    recorded = card["training"]["augmentation"]
    assert recorded["rotate_deg"] == 5.0 and recorded["seed"] == 7
    assert "superior-inferior" in recorded["rules"]["flip_lr"]
    assert plain["training"]["augmentation"] == "none"
    load_model(tmp_path / "a.safetensors")
