from __future__ import annotations

import numpy as np
import pytest

from cadp_med.errors import InputError
from cadp_med.imaging import GridInfo, from_model_grid, to_model_grid


def _blob(shape: tuple[int, int], spacing: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    rows *= spacing[0]
    cols *= spacing[1]
    cy, cx = shape[0] * spacing[0] / 2, shape[1] * spacing[1] / 2
    sigma = min(shape[0] * spacing[0], shape[1] * spacing[1]) / 6
    return np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2)).astype(np.float32)


def test_non_square_round_trip_shape_and_padding() -> None:
    image = _blob((512, 400))
    grid, info = to_model_grid(image, 128)
    assert grid.shape == (128, 128) and grid.dtype == np.float32
    assert info.shape == (512, 400)
    assert info.padding == (0, 0, 56, 56)
    assert info.padded_shape == (512, 512)
    back = from_model_grid(grid, info)
    assert back.shape == (512, 400)
    assert np.max(np.abs(back - image)) < 0.01


def test_padding_is_background_zero() -> None:
    grid, info = to_model_grid(np.ones((40, 80), np.float32), 32)
    assert info.padding == (20, 20, 0, 0)
    assert np.all(grid[:6] == 0.0) and np.all(grid[-6:] == 0.0)
    assert np.allclose(grid[10:22], 1.0)


def test_anisotropic_pixels_pad_to_square_physical_extent() -> None:
    # 100 rows at 2 mm = 200 mm tall, 100 columns at 1 mm = 100 mm wide → pad columns.
    image = _blob((100, 100), (2.0, 1.0))
    grid, info = to_model_grid(image, 64, spacing=(2.0, 1.0))
    assert info.padding == (0, 0, 50, 50)
    assert info.grid_spacing == pytest.approx((200 / 64, 200 / 64))
    back = from_model_grid(grid, info)
    assert back.shape == (100, 100)
    assert np.max(np.abs(back - image)) < 0.02


def test_upsampling_small_input_round_trips() -> None:
    image = _blob((20, 31))
    grid, info = to_model_grid(image, 64)
    back = from_model_grid(grid, info)
    assert back.shape == (20, 31)
    # The way back shrinks 64 → 31 pixels and so is anti-aliased (sigma ~0.5 px): a blob
    # only ~3 px wide loses a little of its peak.
    assert np.max(np.abs(back - image)) < 0.03


def test_downsampling_is_antialiased() -> None:
    # A one-pixel checkerboard must become flat grey, not a moiré pattern.
    checker = (np.indices((256, 256)).sum(axis=0) % 2).astype(np.float32)
    grid, _ = to_model_grid(checker, 64)
    assert np.std(grid[8:-8, 8:-8]) < 0.02
    assert np.mean(grid[8:-8, 8:-8]) == pytest.approx(0.5, abs=0.02)


def test_grid_info_dict_round_trip_and_errors() -> None:
    _, info = to_model_grid(np.zeros((30, 50), np.float32), 16, spacing=(0.5, 0.7))
    assert GridInfo.from_dict(info.to_dict()) == info
    with pytest.raises(InputError):
        from_model_grid(np.zeros((8, 8), np.float32), info)
    with pytest.raises(InputError):
        to_model_grid(np.zeros((3, 3, 3), np.float32), 16)
