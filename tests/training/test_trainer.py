"""train_model: learns, is reproducible, resumes exactly and writes an honest card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from cadp_med.errors import ConfigError
from cadp_med.model.checkpoint import load_model
from cadp_med.model.conditions import default_schema
from cadp_med.training import state_path, train_model
from cadp_med.training import trainer as trainer_module
from tests.model._slices import derived_set
from tests.model.test_cinn import SMALL

SCHEMA = default_schema()
X, META = derived_set(64, 64, seed=3)
KW: dict[str, Any] = dict(
    schema=SCHEMA,
    config=SMALL,
    batch_size=16,
    lr=2e-3,
    seed=5,
    device="cpu",
    heldout_fraction=0.25,
    progress=False,
    normalization={"kind": "test"},
    sources=["pydicom"],
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Bit-for-bit comparisons need a fixed summation order: on a loaded machine MKL may
    otherwise choose its thread count per call (MKL_DYNAMIC)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("full") / "m.safetensors"
    card = train_model(X, META, epochs=2, out_path=out, **KW)
    return out, card


def test_training_reduces_heldout_bpd(full_run: tuple[Path, dict[str, Any]]) -> None:
    _, card = full_run
    history = card["training"]["history"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert card["heldout_bits_per_dim"] == history[-1]["heldout_bpd"]
    assert history[-1]["heldout_bpd"] < history[0]["heldout_bpd"] - 0.1
    assert np.isfinite(card["heldout_bits_per_dim"])


def test_card_contents(full_run: tuple[Path, dict[str, Any]]) -> None:
    path, card = full_run
    training = card["training"]
    assert training["n_train"] == 48 and training["n_heldout"] == 16
    modality_counts = training["counts"]["modality"]
    assert set(modality_counts) == {"CT", "MR-other"} and sum(modality_counts.values()) == 48
    assert training["sources"] == ["pydicom"] and training["seed"] == 5
    assert card["normalization"] == {"kind": "test"}
    defaults = card["privacy_defaults"]
    assert defaults["release"]["clip_l2"] == defaults["clip_l2"] > 0
    assert defaults["full"]["clip_l2"] > defaults["release"]["clip_l2"]
    assert defaults["full"]["clip_l1"] >= defaults["full"]["clip_l2"]
    model, _ = load_model(path)
    assert model.config == SMALL


def test_clip_defaults_match_heldout_latents(full_run: tuple[Path, dict[str, Any]]) -> None:
    path, card = full_run
    model, _ = load_model(path)
    _, held = trainer_module._split(64, 0.25, 5)
    x = torch.from_numpy(X[held])
    c = torch.from_numpy(SCHEMA.encode_batch([META[i] for i in held]))
    with torch.no_grad():
        z, _ = model.encode(x, c)
    rel = z[:, model.coarsest_block.start : model.coarsest_block.stop].double()
    expected = float(np.percentile(rel.norm(dim=1).numpy(), 95))
    assert card["privacy_defaults"]["clip_l2"] == pytest.approx(expected, rel=1e-4)


def test_same_seed_same_weights(tmp_path: Path, full_run: tuple[Path, dict[str, Any]]) -> None:
    card = train_model(X, META, epochs=2, out_path=tmp_path / "again.safetensors", **KW)
    assert card["content_hash"] == full_run[1]["content_hash"]
    other = train_model(
        X, META, epochs=2, out_path=tmp_path / "other.safetensors", **{**KW, "seed": 6}
    )
    assert other["content_hash"] != card["content_hash"]


def test_resume_continues_from_saved_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, full_run: tuple[Path, dict[str, Any]]
) -> None:
    out = tmp_path / "r.safetensors"
    original = trainer_module._save_state

    class Interrupted(Exception):
        pass

    def save_then_stop(path: Path, model: Any, optimizer: Any, epoch: int, *args: Any) -> None:
        original(path, model, optimizer, epoch, *args)
        raise Interrupted

    monkeypatch.setattr(trainer_module, "_save_state", save_then_stop)
    with pytest.raises(Interrupted):
        train_model(X, META, epochs=2, out_path=out, **KW)
    monkeypatch.setattr(trainer_module, "_save_state", original)
    assert not out.exists()
    assert torch.load(state_path(out), weights_only=True)["epoch"] == 1

    epochs_run: list[int] = []
    real_save = trainer_module._save_state

    def record(path: Path, model: Any, optimizer: Any, epoch: int, *args: Any) -> None:
        epochs_run.append(epoch)
        real_save(path, model, optimizer, epoch, *args)

    monkeypatch.setattr(trainer_module, "_save_state", record)
    card = train_model(X, META, epochs=2, out_path=out, resume=True, **KW)
    assert epochs_run == [2]  # only the second epoch was trained
    assert card["content_hash"] == full_run[1]["content_hash"]
    assert card["training"]["history"] == full_run[1]["training"]["history"]


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    out = tmp_path / "c.safetensors"
    small = dict(KW)
    train_model(X[:16], META[:16], epochs=1, out_path=out, **small)
    with pytest.raises(ConfigError, match="cannot resume"):
        train_model(X[:16], META[:16], epochs=2, out_path=out, resume=True, **{**small, "lr": 1e-2})


def test_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="cond_dim"):
        train_model(
            X[:4],
            META[:4],
            epochs=1,
            out_path="unused",
            **{**KW, "schema": default_schema(["plane"])},
        )
    with pytest.raises(ConfigError, match="one dict per slice"):
        train_model(X[:4], META[:3], epochs=1, out_path="unused", **KW)


def test_split_labels_in_metadata_are_used(tmp_path: Path) -> None:
    meta = [{**m, "split": "heldout" if i < 8 else "train"} for i, m in enumerate(META[:32])]
    card = train_model(X[:32], meta, epochs=1, out_path=tmp_path / "s.safetensors", **KW)
    assert card["training"]["n_heldout"] == 8 and card["training"]["n_train"] == 24
    assert card["training"]["split"] == "the slice set's own 'split' labels"
    assert sum(card["training"]["counts"]["modality"].values()) == 24
