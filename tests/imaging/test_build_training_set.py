"""The training-set builder on the one source every environment has (nibabel's data)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cadp_med.imaging import SliceSet
from tests.conftest import pipeline_script


@pytest.fixture(scope="module")
def builder():  # type: ignore[no-untyped-def]
    with pipeline_script("build_training_set") as module:
        yield module


def test_builds_from_available_sources_only(builder, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    keep = "nibabel-anatomical-t1"
    exclude = [a for s in builder.sources(tmp_path) if s.id != keep for a in ("--exclude", s.id)]
    out = tmp_path / "set.npz"
    assert builder.main(["--size", "32", "-o", str(out), "--wheels", str(tmp_path), *exclude]) == 0
    slice_set = SliceSet.load(out)
    assert slice_set.x.shape == (99, 1, 32, 32)
    assert {m["source"] for m in slice_set.metadata} == {keep}
    assert {m["contrast"] for m in slice_set.metadata} == {"MR-T1"}
    assert Counter(m["plane"] for m in slice_set.metadata) == {
        "sagittal": 33,
        "coronal": 41,
        "axial": 25,
    }
    assert {m["split"] for m in slice_set.metadata} == {"train", "heldout"}
    assert "split_rule" in slice_set.provenance
    assert "99 slices, 32x32" in capsys.readouterr().out


def test_missing_source_prints_install_hint(builder, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    source = builder.Source(
        "absent", "nifti", lambda _cache: None, "apt-get install -y nothing", "MIT", "MR-T1"
    )
    builder_sources = builder.sources
    try:
        builder.sources = lambda wheels: [source]
        assert builder.main(["--size", "16", "-o", str(tmp_path / "x.npz")]) == 2
    finally:
        builder.sources = builder_sources
    assert "apt-get install -y nothing" in capsys.readouterr().out


def test_split_is_deterministic_and_blockwise(builder) -> None:  # type: ignore[no-untyped-def]
    meta = [{"source": "s", "axis": 2, "slice_index": i} for i in range(400)]
    flags = builder.split_flags(meta)
    assert flags == builder.split_flags(meta)
    for start in range(0, 400, builder.BLOCK):
        assert len(set(flags[start : start + builder.BLOCK])) == 1
    held = np.mean([f == "heldout" for f in flags])
    assert 0.05 < held < 0.3
    assert builder.split_flags([{"source": "png", "slice_index": 0}]) == ["train"]


def _only(builder, tmp_path: Path, keep: set[str]) -> list[str]:  # type: ignore[no-untyped-def]
    return [a for s in builder.sources(tmp_path) if s.id not in keep for a in ("--exclude", s.id)]


def test_dicom_sources_get_header_labels_and_a_region(builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    keep = {"pydicom-ct-small", "pydicom-mr-small", "pydicom-dicomdir-ct-brain"}
    out = tmp_path / "dicom.npz"
    args = ["--size", "32", "-o", str(out), "--wheels", str(tmp_path)]
    args += _only(builder, tmp_path, keep)
    assert builder.main(args) == 0
    slice_set = SliceSet.load(out)
    by_source = {m["source"]: m for m in slice_set.metadata}
    # The 16x16 dicomdirtests thumbnails are below the default --min-side.
    assert set(by_source) == {"pydicom-ct-small", "pydicom-mr-small"}
    ct, mr = by_source["pydicom-ct-small"], by_source["pydicom-mr-small"]
    labels = (ct["contrast"], ct["plane"], ct["region"], ct["slice_pos"])
    assert labels == ("CT", "axial", "spine", 0.5)
    assert (mr["contrast"], mr["region"]) == ("MR-T2", "unknown")  # TR 4000 ms, TE 240 ms
    assert {m["split"] for m in slice_set.metadata} == {"train"}
    prov = slice_set.provenance
    assert [s["id"] for s in prov["sources"]] == ["pydicom-ct-small", "pydicom-mr-small"]
    assert prov["sources"][0]["package"] == "pydicom" and prov["sources"][0]["licence"] == "MIT"
    assert prov["sources"][0]["file"].endswith("CT_small.dcm")
    assert prov["domains"]["CT x spine x axial"] == {"slices": 1, "train": 1}
    assert prov["counts"]["region"] == {"spine": 1, "unknown": 1}
    skipped = {s["id"]: s["reason"] for s in prov["skipped"]}
    assert "smaller than --min-side 32" in skipped["pydicom-dicomdir-ct-brain"]


def test_min_side_lets_thumbnails_in_with_their_series_order(builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "thumbs.npz"
    args = ["--size", "16", "-o", str(out), "--wheels", str(tmp_path), "--min-side", "16"]
    args += _only(builder, tmp_path, {"pydicom-dicomdir-ct-brain"})
    assert builder.main(args) == 0
    metadata = SliceSet.load(out).metadata
    assert len(metadata) == 4
    assert {(m["contrast"], m["plane"], m["region"]) for m in metadata} == {("CT", "axial", "head")}
    assert sorted(m["slice_pos"] for m in metadata) == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])


def test_volume_slices_carry_region_and_domain_counts(builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "vol.npz"
    data_list = tmp_path / "data.json"
    args = ["--size", "16", "-o", str(out), "--data-list", str(data_list)]
    args += ["--wheels", str(tmp_path), *_only(builder, tmp_path, {"nibabel-anatomical-t1"})]
    assert builder.main(args) == 0
    metadata = SliceSet.load(out).metadata
    assert {m["region"] for m in metadata} == {"head"}
    import json

    prov = json.loads(data_list.read_text())
    assert sum(d["slices"] for d in prov["domains"].values()) == len(metadata) == 99
    assert prov["domains"]["MR-T1 x head x coronal"]["slices"] == 41
    train = sum(m["split"] == "train" for m in metadata)
    assert sum(d["train"] for d in prov["domains"].values()) == train


def test_every_region_label_is_in_the_schema_vocabulary(builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from cadp_med.model.conditions import default_schema

    schema = default_schema(["region"])
    vocabulary = set(schema.fields[0].vocabulary) | {"unknown"}
    assert {s.region for s in builder.sources(tmp_path)} <= vocabulary
