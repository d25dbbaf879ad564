"""Slices from NIfTI volumes: MONAI loading, RAS reorientation, labels from BIDS sidecars.

Every slice is returned in the radiological display convention that DICOM scanners write,
so slices from NIfTI and DICOM look alike to the model:

============  =========================  ==============================
plane (axis)  rows run                   columns run
============  =========================  ==============================
sagittal (0)  superior → inferior        anterior → posterior
coronal (1)   superior → inferior        patient right → left
axial (2)     anterior → posterior       patient right → left
============  =========================  ==============================

``slice_pos`` is ``index / (n - 1)`` along the RAS axis, so 0 is the left, posterior or
inferior end and 1 the right, anterior or superior end, the same direction as the DICOM
reader uses.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from cadp_med._types import PathLike
from cadp_med.errors import InputError
from cadp_med.imaging._records import CONTRASTS, SliceRecord

logger = logging.getLogger(__name__)

PLANE_OF_AXIS = {0: "sagittal", 1: "coronal", 2: "axial"}
# A voxel is foreground when it lies above this fraction of the volume's robust
# [p0.5, p99.5] range: above air for CT, above the noise floor for MR.
_FOREGROUND_LEVEL = 0.1

# BIDS suffixes (and common file-name hints) → condition vocabulary.
_SUFFIX_CONTRAST = (
    (re.compile(r"(^|[_\-.])(t1w?|mprage|t1map)([_\-.]|$)", re.I), "MR-T1"),
    (re.compile(r"(^|[_\-.])(t2w?|flair|t2star|t2map)([_\-.]|$)", re.I), "MR-T2"),
    (re.compile(r"(^|[_\-.])(pdw?|pdmap|protondensity)([_\-.]|$)", re.I), "MR-PD"),
    (re.compile(r"(^|[_\-.])(dwi|b0|sbref_dwi)([_\-.]|$)", re.I), "MR-DWI"),
    (re.compile(r"(^|[_\-.])(bold|epi|cbv|asl)([_\-.]|$)", re.I), "MR-EPI"),
    (re.compile(r"(^|[_\-.])ct([_\-.]|$)", re.I), "CT"),
)


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def infer_labels(
    path: Path, sidecar: Path | None, modality: str | None, contrast: str | None
) -> tuple[str, str]:
    """Modality code and contrast from arguments, a BIDS sidecar, then file-name suffixes.

    Explicit arguments win. The sidecar's ``Modality`` ("MR", "CT") gives the modality;
    the contrast comes from the BIDS suffix of the file name (``_T1w``, ``_dwi``, ``_bold``
    ...) or, failing that, the sidecar's ``ScanningSequence`` ("EP" → MR-EPI).
    """
    side: dict[str, object] = {}
    if sidecar is None:
        candidate = path.with_name(_stem(path) + ".json")
        sidecar = candidate if candidate.is_file() else None
    if sidecar is not None:
        try:
            side = json.loads(Path(sidecar).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable BIDS sidecar: {type(exc).__name__}") from exc
    hinted = next((c for rx, c in _SUFFIX_CONTRAST if rx.search(_stem(path))), None)
    if contrast is None:
        contrast = hinted
        sequence = str(side.get("ScanningSequence", ""))
        if contrast is None and "EP" in sequence.upper():
            contrast = "MR-EPI"
    if modality is None:
        modality = str(side["Modality"]) if "Modality" in side else None
    if modality is None and contrast is not None:
        modality = contrast.split("-")[0]
    modality = (modality or "MR").upper()
    if contrast is None:
        contrast = "CT" if modality == "CT" else ("MR-other" if modality == "MR" else modality)
    if modality in ("CT", "MR") and contrast not in CONTRASTS:
        raise InputError(f"contrast must be one of {CONTRASTS}")
    return modality, contrast


def sidecar_region(path: Path, sidecar: Path | None = None) -> str | None:
    """Body region from a BIDS sidecar's ``BodyPartExamined``, ``SeriesDescription`` or
    ``ProtocolName`` (dcm2niix writes them); ``None`` without a sidecar or evidence."""
    from cadp_med.model._region import body_region

    if sidecar is None:
        candidate = path.with_name(_stem(path) + ".json")
        sidecar = candidate if candidate.is_file() else None
    if sidecar is None:
        return None
    try:
        side = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable BIDS sidecar: {type(exc).__name__}") from exc
    return body_region(side) if isinstance(side, dict) else None


def display_slice(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """Slice a RAS volume and orient it in the radiological display convention."""
    if axis == 0:  # [A, S] → rows S descending, columns A descending (towards posterior)
        return volume[index, ::-1, ::-1].T
    if axis == 1:  # [R, S] → rows S descending, columns R descending (towards left)
        return volume[::-1, index, ::-1].T
    if axis == 2:  # [R, A] → rows A descending, columns R descending
        return volume[::-1, ::-1, index].T
    raise InputError(f"axis must be 0, 1 or 2, got {axis}")


def _display_spacing(spacing: Sequence[float], axis: int) -> tuple[float, float]:
    in_plane = [float(s) for i, s in enumerate(spacing) if i != axis]
    # After the transpose in display_slice the rows run along the later RAS axis.
    return (in_plane[1], in_plane[0])


def load_ras_volume(path: PathLike) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Load a NIfTI volume with MONAI and reorient it to RAS; 4D gives the first volume.

    Returns
    -------
    volume : numpy.ndarray
        float32 ``[X, Y, Z]`` with axes pointing right, anterior, superior.
    spacing : tuple of float
        Voxel size along the three RAS axes, in mm.
    """
    from monai.transforms import LoadImage, Orientation

    try:
        # NibabelReader named explicitly: MONAI's reader search would otherwise try its
        # DICOM readers (and their optional GPU codecs) first.
        loader = LoadImage(image_only=True, ensure_channel_first=True, reader="NibabelReader")
        image = loader(str(path))
    except Exception as exc:  # MONAI wraps reader errors in several types
        raise InputError(f"unreadable NIfTI volume: {type(exc).__name__}") from exc
    if image.ndim != 4:
        raise InputError(f"expected a 3D or 4D volume, got {image.ndim - 1} spatial dims")
    # ensure_channel_first puts a 4th (time/volume) dimension first: keep volume 0.
    # Labels given explicitly: RAS means axes pointing Right, Anterior, Superior (nibabel).
    orient = Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))
    image = orient(image[:1])
    affine = np.asarray(image.affine, dtype=np.float64)
    spacing = tuple(float(np.linalg.norm(affine[:3, i])) for i in range(3))
    volume = np.asarray(image[0].numpy(), dtype=np.float32)
    return volume, spacing  # type: ignore[return-value]


def slices_from_volume(
    volume: np.ndarray,
    spacing: Sequence[float],
    *,
    axes: Sequence[int] = (0, 1, 2),
    metadata: dict[str, object],
    min_foreground: float = 0.05,
) -> Iterator[SliceRecord]:
    """Slice a RAS volume along ``axes``, skipping nearly empty slices."""
    finite = volume[np.isfinite(volume)]
    if finite.size == 0:
        return
    low, high = np.percentile(finite, (0.5, 99.5))
    threshold = low + _FOREGROUND_LEVEL * (high - low)
    volume = np.nan_to_num(volume, nan=float(low))
    for axis in axes:
        count = volume.shape[axis]
        for index in range(count):
            pixels = display_slice(volume, axis, index)
            if high <= low or np.mean(pixels > threshold) < min_foreground:
                continue
            meta = dict(metadata)
            meta.update(
                plane=PLANE_OF_AXIS[axis],
                slice_pos=index / (count - 1) if count > 1 else 0.5,
                axis=axis,
                slice_index=index,
            )
            yield SliceRecord(
                pixels=np.ascontiguousarray(pixels),
                spacing=_display_spacing(spacing, axis),
                metadata=meta,
            )


def slices_from_nifti(
    path: PathLike,
    *,
    axes: Sequence[int] = (0, 1, 2),
    sidecar: Path | None = None,
    modality: str | None = None,
    contrast: str | None = None,
    species: str = "human",
    min_foreground: float = 0.05,
    source: str | None = None,
) -> Iterator[SliceRecord]:
    """Yield the informative 2D slices of a NIfTI volume.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz``; 4D files contribute their first volume.
    axes : sequence of int
        RAS axes to slice along: 0 sagittal, 1 coronal, 2 axial.
    sidecar : pathlib.Path, optional
        BIDS JSON sidecar; ``<stem>.json`` next to the file is used when present.
    modality, contrast : str, optional
        Override the labels (contrast from :data:`~cadp_med.imaging.CONTRASTS`).
    species : str
        Species label, default "human".
    min_foreground : float
        Skip slices whose fraction of foreground voxels is below this.
    source : str, optional
        Short source id for ``metadata["source"]``; default the file stem. Pass an id when
        the file name could contain a person's name.

    Yields
    ------
    SliceRecord
        Pixels in the volume's units, with labels; metadata also has ``axis`` and
        ``slice_index``.
    """
    path = Path(path)
    if not set(axes) <= {0, 1, 2}:
        raise InputError("axes must be drawn from 0, 1, 2")
    modality, contrast = infer_labels(path, sidecar, modality, contrast)
    volume, spacing = load_ras_volume(path)
    metadata: dict[str, object] = {
        "modality": modality,
        "contrast": contrast,
        "species": species,
        "region": sidecar_region(path, sidecar),
        "source": source or _stem(path),
    }
    yield from slices_from_volume(
        volume, spacing, axes=axes, metadata=metadata, min_foreground=min_foreground
    )
