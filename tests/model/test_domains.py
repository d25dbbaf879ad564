"""Declared domains: the default card's, the matching rule, and a card update that keeps
the weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cadp_med.errors import ModelError
from cadp_med.model import read_model_card
from cadp_med.model._domains import covered, domain_counts, domain_key, is_inside
from cadp_med.model.checkpoint import update_model_card
from cadp_med.pixels import DEFAULT_MODEL_PATH

needs_default = pytest.mark.skipif(
    not DEFAULT_MODEL_PATH.is_file(), reason="the packaged model is not installed"
)


@needs_default
def test_default_card_declares_head_domains_with_counts() -> None:
    card = read_model_card(DEFAULT_MODEL_PATH)
    domains = card["domains"]
    assert domains["axes"] == ["modality", "region", "plane"]
    entries = domains["entries"]
    # Counted on the training split: they add up to the card's own training counts.
    assert sum(e["slices"] for e in entries) == card["training"]["n_train"]
    for name in ("modality", "plane"):
        tally: dict[str, int] = {}
        for entry in entries:
            tally[entry[name]] = tally.get(entry[name], 0) + entry["slices"]
        assert tally == card["training"]["counts"][name]
    # Every covered domain is a head: the other regions have a single training image.
    assert {e["region"] for e in covered(domains)} == {"head"}
    assert {e["region"] for e in entries} > {"head"}
    keys = {(e["modality"], e["plane"]) for e in covered(domains)}
    assert ("CT", "axial") in keys and ("MR-T1", "sagittal") in keys
    assert ("MR-PD", "axial") not in keys  # one training slice: listed, not covered


@needs_default
def test_default_card_domains_decide_head_vs_spine() -> None:
    domains = read_model_card(DEFAULT_MODEL_PATH)["domains"]

    def inside(region: str | None, plane: str = "axial") -> bool:
        key = domain_key({"modality": "CT", "contrast": "CT", "region": region, "plane": plane})
        return is_inside(domains, key)

    assert inside("head")
    assert not inside("spine")
    assert not inside(None)  # no region in the header: cannot be shown to be a head
    assert not inside("head", "oblique")


def test_unknown_region_entries_declare_no_region() -> None:
    meta = [{"modality": "CT", "contrast": "CT", "plane": "axial"}] * 12
    domains = domain_counts(meta)
    assert domains["entries"] == [
        {"modality": "CT", "region": "unknown", "plane": "axial", "slices": 12}
    ]
    for region in ("spine", "head", None):
        key = domain_key({"modality": "CT", "region": region, "plane": "axial"})
        assert is_inside(domains, key)
    mr = domain_key({"modality": "MR", "contrast": "MR-T1", "region": "head", "plane": "axial"})
    assert not is_inside(domains, mr)


def test_unknown_region_entries_admit_nothing_once_a_region_is_declared() -> None:
    ct = {"modality": "CT", "contrast": "CT", "plane": "axial"}
    meta = [{**ct, "region": "head"}] * 12 + [ct] * 12
    domains = domain_counts(meta)
    assert is_inside(domains, domain_key({**ct, "region": "head"}))
    assert not is_inside(domains, domain_key(ct))
    assert not is_inside(domains, domain_key({**ct, "region": "spine"}))


def test_min_slices() -> None:
    meta = [{"modality": "CT", "region": "head", "plane": "axial"}] * 3
    domains = domain_counts(meta, min_slices=4)
    key = domain_key(meta[0])
    assert not is_inside(domains, key)
    assert is_inside(domain_counts(meta, min_slices=3), key)


@needs_default
def test_update_model_card_keeps_the_weights(tmp_path: Path) -> None:
    from cadp_med.model import load_model

    path = tmp_path / "model.safetensors"
    shutil.copyfile(DEFAULT_MODEL_PATH, path)
    before = read_model_card(path)
    after = update_model_card(path, {"domains": {"entries": []}})
    assert after["content_hash"] == before["content_hash"]
    assert read_model_card(path)["domains"] == {"entries": []}
    assert read_model_card(path)["training"] == before["training"]
    _, loaded = load_model(path)  # the hash is checked against the weights
    assert loaded["domains"] == {"entries": []}
    with pytest.raises(ModelError, match="architecture"):
        update_model_card(path, {"architecture": {}})
