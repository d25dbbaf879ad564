"""Single-slice instances share model batches; seeded output never depends on batching."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.pixels import PixelOptions, PixelStage
from tests.conftest import TEST_KEY
from tests.pixels._helpers import instances, synthetic_ct_series

N_SLICES = 20


@pytest.fixture
def study(tmp_path: Path) -> Path:
    src = synthetic_ct_series(tmp_path / "in", N_SLICES)
    (src / "truncated.dcm").write_bytes((src / "slice0003.dcm").read_bytes()[:-4000])
    return src


def _stage(model_path: Path, *, batch_size: int, seed: int | None = 7) -> PixelStage:
    return PixelStage(
        PixelOptions(model=model_path, seed=seed, device="cpu", batch_size=batch_size)
    )


def _run(src: Path, out: Path, stage: PixelStage) -> Any:
    summary = anonymize_study(
        src, out, key=TEST_KEY.encode(), options=AnonymizeOptions(pixel_stage=stage)
    )
    assert summary.written == N_SLICES and summary.quarantined == 1, summary.to_dict()
    return summary


def _record_batches(stage: PixelStage) -> list[int]:
    """Rows of every model encode call of ``stage``."""
    sizes: list[int] = []
    stage._load()
    encode = stage._model.encode

    def counting(x: Any, c: Any) -> Any:
        sizes.append(int(x.shape[0]))
        return encode(x, c)

    stage._model.encode = counting
    return sizes


def _without_timestamps(ds: pydicom.Dataset) -> dict[str, Any]:
    """The dataset as JSON, minus date-time values (the provenance's time of writing)."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("vr") == "DT":
                return None
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(ds.to_json_dict(bulk_data_threshold=1 << 30))


def _pixels(out: Path) -> dict[str, np.ndarray]:
    return {name: pydicom.dcmread(p).pixel_array for name, p in instances(out).items()}


def test_seeded_output_is_identical_for_batch_size_1_and_16(
    tmp_path: Path, model_path: Path, study: Path
) -> None:
    one, sixteen = tmp_path / "b1", tmp_path / "b16"
    _run(study, one, _stage(model_path, batch_size=1))
    _run(study, sixteen, _stage(model_path, batch_size=16))
    a, b = instances(one), instances(sixteen)
    assert sorted(a) == sorted(b) and len(a) == N_SLICES
    for name, path in a.items():
        x, y = pydicom.dcmread(path), pydicom.dcmread(b[name])
        assert x.PixelData == y.PixelData, name
        assert _without_timestamps(x) == _without_timestamps(y), name


def test_unseeded_run_sends_slices_of_several_instances_per_batch(
    tmp_path: Path, model_path: Path, study: Path
) -> None:
    stage = _stage(model_path, batch_size=8, seed=None)
    sizes = _record_batches(stage)
    _run(study, tmp_path / "out", stage)
    assert sum(sizes) == N_SLICES
    assert max(sizes) == 8  # one pass per 8 slices, not one per file


class _ForcedBatching(PixelStage):
    """Batches across instances even with a seed, to check the row bookkeeping."""

    batches_across_instances = True  # type: ignore[assignment]


def test_batched_rows_keep_their_instance_privatizer(
    tmp_path: Path, model_path: Path, study: Path
) -> None:
    forced = _ForcedBatching(PixelOptions(model=model_path, seed=7, device="cpu", batch_size=16))
    sizes = _record_batches(forced)
    _run(study, tmp_path / "forced", forced)
    assert max(sizes) == 16
    _run(study, tmp_path / "seed7", _stage(model_path, batch_size=1))
    _run(study, tmp_path / "seed8", _stage(model_path, batch_size=1, seed=8))
    batched, alone, other = (_pixels(tmp_path / name) for name in ("forced", "seed7", "seed8"))
    for name, pixels in alone.items():
        # Float rounding of batched kernels only: far closer than another seed's noise.
        rounding = np.abs(batched[name].astype(float) - pixels).mean()
        noise = np.abs(other[name].astype(float) - pixels).mean()
        assert rounding < 0.1 * noise, (name, rounding, noise)


def test_a_failing_instance_is_quarantined_alone(
    tmp_path: Path, model_path: Path, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cadp_med.pixels._stage as stage_module

    stage = _stage(model_path, batch_size=8, seed=None)
    encode_frames = stage_module.encode_frames
    calls = {"n": 0}

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("encoder broke")
        return encode_frames(*args, **kwargs)

    monkeypatch.setattr(stage_module, "encode_frames", failing_once)
    summary = anonymize_study(
        study, tmp_path / "out", key=TEST_KEY.encode(), options=AnonymizeOptions(pixel_stage=stage)
    )
    assert summary.written == N_SLICES - 1
    # The broken encoder costs one file; the truncated input is quarantined too.
    assert summary.quarantined == 2
    assert summary.quarantine_reasons.get("unexpected-error") == 1
