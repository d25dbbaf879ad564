"""Resampling a slice's whole field of view to the square model grid and back.

``to_model_grid`` pads the slice to a square *physical* extent (so anisotropic pixels keep
their true aspect ratio), with the normalized background value 0, then resamples it with
SimpleITK linear interpolation to ``size x size``. When this shrinks the image, a Gaussian
pre-filter (sigma = (factor - 1) / 2 pixels, the scikit-image rule) stops aliasing.
``from_model_grid`` resamples back to the padded shape and crops, so the output has
exactly the input's shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cadp_med.errors import InputError


@dataclass(frozen=True)
class GridInfo:
    """Geometry needed to invert :func:`to_model_grid`.

    Attributes
    ----------
    shape : tuple of int
        Original ``(H, W)``.
    padding : tuple of int
        ``(top, bottom, left, right)`` pixels of background added before resampling.
    spacing : tuple of float
        Original ``(row, column)`` pixel spacing in mm.
    size : int
        Side of the model grid.
    grid_spacing : tuple of float
        ``(row, column)`` spacing of the model grid in mm.
    """

    shape: tuple[int, int]
    padding: tuple[int, int, int, int]
    spacing: tuple[float, float]
    size: int
    grid_spacing: tuple[float, float]

    @property
    def padded_shape(self) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        return (self.shape[0] + top + bottom, self.shape[1] + left + right)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists instead of tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridInfo:
        """Inverse of :meth:`to_dict`."""
        return cls(
            shape=(int(data["shape"][0]), int(data["shape"][1])),
            padding=tuple(int(v) for v in data["padding"]),  # type: ignore[arg-type]
            spacing=(float(data["spacing"][0]), float(data["spacing"][1])),
            size=int(data["size"]),
            grid_spacing=(float(data["grid_spacing"][0]), float(data["grid_spacing"][1])),
        )


def _split(total: int) -> tuple[int, int]:
    # Centre the content; an odd remainder goes to the bottom/right.
    return total // 2, total - total // 2


def to_model_grid(
    pixels: np.ndarray, size: int, spacing: tuple[float, float] = (1.0, 1.0)
) -> tuple[np.ndarray, GridInfo]:
    """Pad a slice to a square field of view and resample it to ``size x size``.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``[H, W]`` slice, normally already normalized so that 0 is background.
    size : int
        Side of the model grid.
    spacing : tuple of float
        ``(row, column)`` pixel spacing in mm.

    Returns
    -------
    grid : numpy.ndarray
        float32 ``[size, size]``.
    info : GridInfo
        What :func:`from_model_grid` needs to restore the original geometry.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise InputError(f"expected a non-empty 2D slice, got shape {pixels.shape}")
    if size < 2:
        raise InputError("model grid size must be at least 2")
    row_sp, col_sp = (float(s) for s in spacing)
    if row_sp <= 0 or col_sp <= 0:
        raise InputError("pixel spacing must be positive")
    height, width = pixels.shape
    extent = max(height * row_sp, width * col_sp)
    padded_h = max(height, int(round(extent / row_sp)))
    padded_w = max(width, int(round(extent / col_sp)))
    top, bottom = _split(padded_h - height)
    left, right = _split(padded_w - width)
    padded = np.pad(pixels, ((top, bottom), (left, right)), constant_values=0.0)
    grid_spacing = (padded_h * row_sp / size, padded_w * col_sp / size)
    info = GridInfo(
        shape=(height, width),
        padding=(top, bottom, left, right),
        spacing=(row_sp, col_sp),
        size=int(size),
        grid_spacing=grid_spacing,
    )
    grid = _resample(padded, (row_sp, col_sp), (size, size), grid_spacing)
    return grid, info


def from_model_grid(grid: np.ndarray, info: GridInfo) -> np.ndarray:
    """Invert the geometry of :func:`to_model_grid`: resample back and crop.

    Returns
    -------
    numpy.ndarray
        float32 array of exactly ``info.shape``.
    """
    grid = np.asarray(grid, dtype=np.float32)
    if grid.shape != (info.size, info.size):
        raise InputError(f"expected a {info.size}x{info.size} grid, got {grid.shape}")
    padded = _resample(grid, info.grid_spacing, info.padded_shape, info.spacing)
    top, _, left, _ = info.padding
    height, width = info.shape
    return np.ascontiguousarray(padded[top : top + height, left : left + width])


def _resample(
    image: np.ndarray,
    in_spacing: tuple[float, float],
    out_shape: tuple[int, int],
    out_spacing: tuple[float, float],
) -> np.ndarray:
    """Linear resampling between two grids that cover the same physical field of view."""
    import SimpleITK as sitk
    from scipy.ndimage import gaussian_filter

    # Anti-aliasing: smooth along each axis that is being shrunk, in input pixels.
    factors = [o / i for o, i in zip(out_spacing, in_spacing, strict=True)]
    sigmas = [max(0.0, (f - 1.0) / 2.0) for f in factors]
    if any(s > 0 for s in sigmas):
        image = gaussian_filter(image.astype(np.float64), sigma=sigmas, mode="nearest")
    source = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    # SimpleITK orders (x, y) = (column, row). Pixel centres sit half a pixel inside the
    # field of view's edge on both grids, so edges line up exactly.
    source.SetSpacing((in_spacing[1], in_spacing[0]))
    source.SetOrigin((in_spacing[1] / 2.0, in_spacing[0] / 2.0))
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize((int(out_shape[1]), int(out_shape[0])))
    resampler.SetOutputSpacing((out_spacing[1], out_spacing[0]))
    resampler.SetOutputOrigin((out_spacing[1] / 2.0, out_spacing[0] / 2.0))
    resampler.SetOutputDirection(source.GetDirection())
    resampler.SetInterpolator(sitk.sitkLinear)
    # Points in the outer half pixel fall outside the input's centres; extrapolate from the
    # nearest edge instead of inserting a background value that would darken borders.
    resampler.SetUseNearestNeighborExtrapolator(True)
    resampler.SetDefaultPixelValue(0.0)
    out = sitk.GetArrayFromImage(resampler.Execute(source))
    return np.asarray(out, dtype=np.float32)
