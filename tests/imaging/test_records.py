from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadp_med.errors import InputError
from cadp_med.imaging import SliceRecord, SliceSet


def test_slice_set_save_load_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, size=(5, 1, 16, 16)).astype(np.float32)
    x[0, 0, 0, :2] = [0.0, 1.0]
    meta = [{"contrast": "MR-T1", "slice_pos": i / 4, "series": "volume-000"} for i in range(5)]
    norm = {"spec": {"kind": "window"}, "windows": {"volume-000": {"low": 0.0, "high": 9.0}}}
    original = SliceSet(x=x, metadata=meta, normalization=norm, provenance={"seed": 3})
    path = original.save(tmp_path / "sub" / "set.npz")
    loaded = SliceSet.load(path)
    assert loaded.x.shape == (5, 1, 16, 16) and loaded.x.dtype == np.float32
    assert np.max(np.abs(loaded.x - x)) <= 1 / 65535
    assert loaded.x[0, 0, 0, 0] == 0.0 and loaded.x[0, 0, 0, 1] == 1.0
    assert loaded.metadata == meta
    assert loaded.normalization == norm
    assert loaded.provenance == {"seed": 3}
    assert len(loaded) == 5 and loaded.size == 16


def test_slice_set_validates_shape_and_metadata() -> None:
    with pytest.raises(InputError):
        SliceSet(x=np.zeros((2, 1, 8, 4)), metadata=[{}, {}], normalization={})
    with pytest.raises(InputError):
        SliceSet(x=np.zeros((2, 1, 8, 8)), metadata=[{}], normalization={})


def test_load_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError):
        SliceSet.load(bad)


def test_slice_record_coerces_and_validates() -> None:
    record = SliceRecord(np.ones((3, 4), np.int16), (1, 2), {})
    assert record.pixels.dtype == np.float32 and record.spacing == (1.0, 2.0)
    with pytest.raises(InputError):
        SliceRecord(np.ones((3, 4, 5)), (1, 1), {})
