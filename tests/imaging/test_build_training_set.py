"""The training-set builder on the one source every environment has (nibabel's data)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cadp_med.imaging import SliceSet

SCRIPT = Path(__file__).resolve().parents[2] / "pipelines" / "build_training_set.py"


@pytest.fixture(scope="module")
def builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("build_training_set", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is created.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


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
