"""DICOM slice geometry from a NIfTI affine (PS3.3 C.7.6.2 Image Plane Module).

Slices are the volume's own third voxel axis ``k``, as stored: no resampling, so every
voxel value survives and oblique or permuted storage is written as it is. Slice ``k``
is the DICOM image ``volume[:, :, k].T``: DICOM rows run along voxel axis ``j`` and
columns along ``i``.

The NIfTI affine maps voxel indices to RAS+ millimetres; DICOM patient coordinates are
LPS+, so x and y are negated (a half turn about the z axis). Then

* Image Orientation (Patient) = unit(A[:, 0]), unit(A[:, 1]) (row, then column cosines);
* Pixel Spacing = |A[:, 1]| \\ |A[:, 0]| (between rows, then between columns);
* Image Position (Patient) of slice k = A @ (0, 0, k, 1);
* Slice Thickness and Spacing Between Slices = the distance between neighbouring slice
  planes, along the normal ``row x column``.

A DICOM series is always right-handed (readers put the third axis along the normal), so
when the voxel axis ``k`` points against the normal, the Instance Numbers count along the
normal, not along ``k``: a reader stacks the same voxels at the same places, the series
simply starts at the last NIfTI slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cadp_med.errors import InputError

# LPS = diag(-1, -1, 1) RAS (PS3.3 C.7.6.2.1.1 patient coordinates; NIfTI-1 qform doc).
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
# In-plane axes more than this far from perpendicular cannot be an Image Orientation.
_ORTHOGONAL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SliceGeometry:
    """The Image Plane attributes of the slices of one volume.

    Attributes
    ----------
    orientation : tuple of float
        Image Orientation (Patient): row cosines, then column cosines (LPS).
    pixel_spacing : tuple of float
        (between rows, between columns) in mm.
    positions : numpy.ndarray
        ``[n_slices, 3]`` Image Position (Patient) of each slice ``k`` (LPS, mm).
    slice_spacing : float
        Distance between neighbouring slice planes along the normal, in mm.
    instance_numbers : tuple of int
        Instance Number of slice ``k``, counting from 1 along the normal.
    """

    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    positions: np.ndarray
    slice_spacing: float
    instance_numbers: tuple[int, ...]

    @property
    def normal(self) -> np.ndarray:
        """Unit normal ``row x column`` of the slices (LPS)."""
        row = np.asarray(self.orientation[:3])
        col = np.asarray(self.orientation[3:])
        return np.cross(row, col)


def lps_affine(ras_affine: np.ndarray) -> np.ndarray:
    """The 4x4 voxel → LPS affine of a voxel → RAS affine."""
    affine = np.asarray(ras_affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError("the NIfTI affine is not a finite 4x4 matrix")
    out = affine.copy()
    out[:3, :] = _RAS_TO_LPS @ affine[:3, :]
    return out


def slice_geometry(ras_affine: np.ndarray, n_slices: int) -> SliceGeometry:
    """Image Plane attributes of the ``n_slices`` slices of a volume with this affine.

    Raises
    ------
    InputError
        When the affine is singular or its in-plane axes are not perpendicular (a shear
        that no Image Orientation can express).
    """
    affine = lps_affine(ras_affine)
    col_step, row_step, slice_step = (affine[:3, axis] for axis in range(3))
    col_spacing = float(np.linalg.norm(col_step))
    row_spacing = float(np.linalg.norm(row_step))
    if min(col_spacing, row_spacing, float(np.linalg.norm(slice_step))) < 1e-9:
        raise InputError("the NIfTI affine is singular")
    row_cosines = col_step / col_spacing  # moving along a row: increasing column, voxel i
    col_cosines = row_step / row_spacing  # moving down a column: increasing row, voxel j
    if abs(float(row_cosines @ col_cosines)) > _ORTHOGONAL_TOLERANCE:
        raise InputError("the NIfTI affine is sheared in plane; no DICOM orientation fits")
    normal = np.cross(row_cosines, col_cosines)
    along_normal = float(slice_step @ normal)
    if abs(along_normal) < 1e-9:
        raise InputError("the NIfTI slice axis lies in the image plane")
    positions = np.stack([affine[:3, 3] + k * slice_step for k in range(n_slices)])
    order = np.argsort(positions @ normal, kind="stable")
    numbers = np.empty(n_slices, dtype=int)
    numbers[order] = np.arange(1, n_slices + 1)
    return SliceGeometry(
        orientation=tuple(float(v) for v in (*row_cosines, *col_cosines)),
        pixel_spacing=(row_spacing, col_spacing),
        positions=positions,
        slice_spacing=abs(along_normal),
        instance_numbers=tuple(int(n) for n in numbers),
    )


def ds_text(value: float) -> str:
    """A Decimal String of at most 16 characters (PS3.5 6.2) holding ``value``."""
    for digits in range(10, 3, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.4g}"
