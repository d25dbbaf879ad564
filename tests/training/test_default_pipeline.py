"""pipelines/train_default_model.py: packed 8-bit sets, temperature by measurement, card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cadp_med.imaging import SliceSet
from tests.conftest import pipeline_script


@pytest.fixture(scope="module")
def tdm() -> Iterator[ModuleType]:
    with pipeline_script("train_default_model") as module:
        yield module


def _slice_set(n: int = 48, size: int = 16) -> SliceSet:
    from tests.model._slices import derived_set

    x, meta = derived_set(n, 64, seed=1)
    x = x[:, :, ::4, ::4][:, :, :size, :size]
    for i, m in enumerate(meta):
        m.update(region="head", split="heldout" if i % 4 == 0 else "train")
    return SliceSet(
        x=x, metadata=meta, normalization={"kind": "test"},
        provenance={"sources": [{"id": "pydicom", "slices": n}], "domains": {"d": {"slices": n}}},
    )  # fmt: skip


def test_uint8_pack_round_trips_labels_and_pixels(tdm: ModuleType, tmp_path: Path) -> None:
    original = _slice_set()
    saved = original.save(tmp_path / "set.npz")
    packed = tdm.pack_uint8(saved, tmp_path / "set_u8.npz")
    loaded = tdm.load_training_set(packed)
    assert loaded.metadata == SliceSet.load(saved).metadata
    assert loaded.provenance == original.provenance
    assert np.abs(loaded.x - original.x).max() <= 0.5 / 255 + 1e-6
    assert packed.stat().st_size < saved.stat().st_size
    # A plain SliceSet file still loads through the same function.
    assert np.array_equal(tdm.load_training_set(saved).x, SliceSet.load(saved).x)


def test_repeat_command_drops_the_budget(tdm: ModuleType) -> None:
    argv = ["--slice-set", "s.npz", "--time-budget", "420", "--epochs", "3", "--seed", "0"]
    assert tdm._without_budget(argv) == ["--slice-set", "s.npz", "--seed", "0"]


def test_temperature_is_chosen_by_measurement_and_recorded(
    tdm: ModuleType, tmp_path: Path
) -> None:
    import torch

    slice_set = _slice_set()
    path = tmp_path / "set.npz"
    slice_set.save(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = tdm.main([
            "--slice-set", str(path), "--epochs", "1", "--device", "cpu", "--batch-size", "16",
            "--preset", "v2", "--arch", "stages=2", "--arch", "stage_blocks=[1,1]",
            "--arch", "stage_widths=[8,8]", "--arch", "fc_blocks=1", "--arch", "fc_width=16",
            "--arch", "prior_width=8", "--arch", "cond_embed=4", "--temperatures", "0,0.5,1",
            "--no-progress", "-o", str(tmp_path / "m.safetensors"),
        ])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    from cadp_med.model import load_model

    model, card = load_model(tmp_path / "m.safetensors")
    entry = card["privacy_defaults"]["temperature"]
    assert set(entry["scores"]) == {"0", "0.5", "1"}
    assert entry["value"] == float(min(entry["scores"], key=entry["scores"].get))
    assert entry["floor_real_vs_real"] >= 0 and "Frechet" in entry["how_chosen"]
    assert model.has_conditional_prior
    training = card["training"]
    assert training["command"].startswith("python pipelines/train_default_model.py ")
    assert training["slice_set"]["data"] == [{"id": "pydicom", "slices": 48}]
    assert training["augmentation"]["seed"] == 0
    assert not (tmp_path / "m.safetensors.train-state.pt").exists()


def test_model_travels_in_parts_and_is_verified_on_assembly(tmp_path: Path) -> None:
    import argparse

    from cadp_med.model.checkpoint import save_model
    from cadp_med.model.cinn import CINN
    from cadp_med.model.conditions import default_schema
    from tests.model.test_cinn import SMALL

    with pipeline_script("gpu_train_default") as gpu:
        gpu.PART_BYTES = 100_000  # force several parts
        model = tmp_path / "train" / "model.safetensors"
        card = {"conditions": default_schema().to_dict(), "privacy_defaults": {}}
        saved = save_model(model, CINN(SMALL), card)
        out = tmp_path / "out"
        out.mkdir()
        size = gpu._write_parts(model, out)
        parts = sorted(out.glob("model.safetensors.part*"))
        assert len(parts) == -(-size // 100_000) > 3
        assert all(p.stat().st_size <= 100_000 for p in parts)
        target = tmp_path / "installed.safetensors"
        assert gpu.assemble(argparse.Namespace(folder=str(out), output=str(target))) == 0
        assert target.read_bytes() == model.read_bytes()
        # A damaged part is refused by the content hash and nothing is installed.
        (out / "model.safetensors.part3").write_bytes(b"\0" * 100_000)
        bad = tmp_path / "bad.safetensors"
        from cadp_med.errors import ModelError

        with pytest.raises(ModelError):
            gpu.assemble(argparse.Namespace(folder=str(out), output=str(bad)))
        assert not bad.exists() and not list(tmp_path.glob("*.assembling"))
        assert saved["content_hash"].startswith("sha256:")
