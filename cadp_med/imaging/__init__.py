"""Imaging: slices from DICOM and NIfTI, intensity windows, and the model grid.

Data flow for training and for the pixel path of ``anonymize``::

    slices_from_nifti / slices_from_dicom_series   → SliceRecord (modality units, labels)
    Normalizer.fit (per series) + forward          → [0, 1]
    to_model_grid                                  → size x size, GridInfo
    ... cINN ...
    from_model_grid + Normalizer.inverse           → original shape, modality units

``load_slice_set`` runs the first three steps over files and returns a :class:`SliceSet`.
monai, SimpleITK and torch are imported only inside the functions that need them.
"""

from __future__ import annotations

from cadp_med.imaging._dicom import slices_from_dicom_series
from cadp_med.imaging._grid import GridInfo, from_model_grid, to_model_grid
from cadp_med.imaging._loader import build_slice_set, load_slice_set
from cadp_med.imaging._nifti import slices_from_nifti, slices_from_volume
from cadp_med.imaging._normalize import Normalizer
from cadp_med.imaging._records import CONTRASTS, PLANES, SliceRecord, SliceSet

__all__ = [
    "CONTRASTS",
    "PLANES",
    "GridInfo",
    "Normalizer",
    "SliceRecord",
    "SliceSet",
    "build_slice_set",
    "from_model_grid",
    "load_slice_set",
    "slices_from_dicom_series",
    "slices_from_nifti",
    "slices_from_volume",
    "to_model_grid",
]
