"""Data loaders: idx parsing, padding and the digits task."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cadp_med.errors import ConfigError
from cadp_med.evaluation._data import (
    _read_idx,
    crop_to,
    load_digits_data,
    load_eval_data,
    load_fashion_mnist,
    pad_to,
)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_roundtrip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    _write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    np.testing.assert_array_equal(_read_idx(tmp_path / "a-idx3-ubyte.gz"), array)


def test_fashion_layout_from_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for stem, n in (("train", 12), ("t10k", 5)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    data = load_eval_data(f"fashion-mnist:{tmp_path}")
    assert data.x_train.shape == (12, 1, 32, 32) and data.x_test.shape == (5, 1, 32, 32)
    assert data.native_size == 28 and data.x_train.max() <= 1.0
    assert data.schema.dim == 11  # ten classes + the unknown slot
    with pytest.raises(ConfigError, match="not found"):
        load_fashion_mnist(tmp_path / "missing")


def test_pad_and_crop_are_inverse() -> None:
    x = np.random.default_rng(0).random((3, 1, 28, 28))
    np.testing.assert_array_equal(crop_to(pad_to(x, 32), 28), x)


def test_digits_groups_are_the_classes() -> None:
    data = load_digits_data()
    assert data.x_train.shape[1:] == (1, 8, 8)
    groups = data.groups(data.meta_train)
    assert len(np.unique(groups)) == 10
    # Same group <=> same label.
    assert np.all((groups[:, None] == groups[None]) == (data.y_train[:, None] == data.y_train))
