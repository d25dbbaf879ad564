"""From files to a model-ready :class:`SliceSet`: group, read, normalize, resample."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadp_med._types import PathLike
from cadp_med.errors import InputError
from cadp_med.imaging._dicom import slices_from_dicom_series
from cadp_med.imaging._grid import to_model_grid
from cadp_med.imaging._nifti import slices_from_nifti
from cadp_med.imaging._normalize import Normalizer
from cadp_med.imaging._records import SliceRecord, SliceSet

logger = logging.getLogger(__name__)

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def build_slice_set(
    groups: Iterable[tuple[str, Sequence[SliceRecord]]],
    *,
    size: int,
    normalizer: Normalizer | None = None,
) -> SliceSet:
    """Normalize each group with its own window and resample every slice to the grid.

    Parameters
    ----------
    groups : iterable of (str, sequence of SliceRecord)
        ``(series id, slices)``: one window is fitted per group (series or volume).
    size : int
        Side of the model grid.
    normalizer : Normalizer, optional
        Default: CT fixed window, percentiles for the rest.

    Returns
    -------
    SliceSet
        Slices in input order; each metadata dict gains ``series`` and ``grid``.
    """
    normalizer = normalizer or Normalizer()
    arrays: list[np.ndarray] = []
    metadata: list[dict[str, Any]] = []
    windows: dict[str, dict[str, Any]] = {}
    for series_id, records in groups:
        if not records:
            continue
        if series_id in windows:
            raise InputError("series ids must be unique within a slice set")
        window = normalizer.fit(records)
        windows[series_id] = window
        for record in records:
            normalized = normalizer.forward(record.pixels, window)
            grid, info = to_model_grid(normalized, size, record.spacing)
            arrays.append(np.clip(grid, 0.0, 1.0))
            metadata.append({**record.metadata, "series": series_id, "grid": info.to_dict()})
    x = np.stack(arrays)[:, np.newaxis] if arrays else np.zeros((0, 1, size, size), np.float32)
    return SliceSet(
        x=x,
        metadata=metadata,
        normalization={"spec": normalizer.to_spec(), "windows": windows},
    )


def _dicom_series(files: Sequence[Path]) -> list[list[Path]]:
    """Group DICOM files with pixel data by SeriesInstanceUID, in a stable order."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    by_series: dict[str, list[Path]] = {}
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue  # not DICOM (or unreadable): the io layer quarantines, we just skip
        if "SeriesInstanceUID" not in ds or "Rows" not in ds:
            continue  # DICOMDIR, SR, RT plans: nothing to slice
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append(path)
    # Order series by their first file, never by UID, so ids do not depend on header values.
    return sorted(by_series.values(), key=lambda paths: str(paths[0]))


def load_slice_set(
    paths: Sequence[PathLike],
    *,
    size: int,
    axes: Sequence[int] = (0, 1, 2),
    modality: str | None = None,
    normalizer: Normalizer | None = None,
) -> SliceSet:
    """Read any mix of DICOM folders and NIfTI volumes into a :class:`SliceSet`.

    Parameters
    ----------
    paths : sequence of path-like
        ``.nii``/``.nii.gz`` files, DICOM files, or folders searched recursively for both.
        DICOM instances are grouped by SeriesInstanceUID.
    size : int
        Side of the model grid.
    axes : sequence of int
        RAS axes along which NIfTI volumes are sliced.
    modality : str, optional
        Override the modality/contrast label of NIfTI volumes ("CT", "MR-T1", ...).
    normalizer : Normalizer, optional
        Intensity windows; default :class:`Normalizer`.

    Returns
    -------
    SliceSet
        Series ids are ``volume-NNN`` and ``series-NNN`` in path order; no file name or UID
        is recorded.
    """
    nifti: list[Path] = []
    dicom: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                (nifti if _is_nifti(child) else dicom).append(child)
        elif path.is_file():
            (nifti if _is_nifti(path) else dicom).append(path)
        else:
            raise InputError("input path does not exist")
    contrast = modality if modality and "-" in modality else None
    plain_modality = modality.split("-")[0] if modality else None
    groups: list[tuple[str, list[SliceRecord]]] = []
    for k, path in enumerate(nifti):
        series_id = f"volume-{k:03d}"
        records = list(
            slices_from_nifti(
                path, axes=axes, modality=plain_modality, contrast=contrast, source=series_id
            )
        )
        groups.append((series_id, records))
    import pydicom

    for k, files in enumerate(_dicom_series(dicom)):
        series_id = f"series-{k:03d}"
        records = slices_from_dicom_series([pydicom.dcmread(f) for f in files])
        for record in records:
            record.metadata["source"] = series_id
        groups.append((series_id, records))
    logger.info("read %d volumes and %d DICOM series", len(nifti), len(groups) - len(nifti))
    return build_slice_set(groups, size=size, normalizer=normalizer)
