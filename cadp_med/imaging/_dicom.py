"""Slices from one DICOM series: modality LUT, frames, ordering, plane and colour.

Rules (PS3.3 C.7.6.2 Image Plane, C.7.6.16 Multi-frame Functional Groups, C.11.1 Modality
LUT):

* pixels pass through the Modality LUT (Rescale Slope/Intercept or an LUT), so CT is in HU;
  enhanced multi-frame objects take the transform from their functional groups;
* every frame of a multi-frame object is a slice;
* the plane comes from the slice normal (row × column direction cosines): the dominant
  LPS component names it, "oblique" when that component is below 0.8, "unknown" without
  ImageOrientationPatient;
* ``slice_pos`` is the rank along the anatomical axis of that plane, pointing right,
  anterior or superior as the NIfTI reader does, divided by ``n - 1``;
* colour (SamplesPerPixel 3) becomes luminance Y = 0.299 R + 0.587 G + 0.114 B
  (ITU-R BT.601), recorded in ``metadata["colour_transform"]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from cadp_med.errors import InputError
from cadp_med.imaging._records import SliceRecord
from cadp_med.model._region import body_region

logger = logging.getLogger(__name__)

_OBLIQUE_BELOW = 0.8
_PLANE_OF_LPS_AXIS = {0: "sagittal", 1: "coronal", 2: "axial"}
# LPS x points left and y posterior; flip them so positions grow towards R, A, S.
_RAS_SIGN = np.array([-1.0, -1.0, 1.0])
BT601 = np.array([0.299, 0.587, 0.114])


def plane_from_orientation(orientation: Sequence[float] | None) -> tuple[str, np.ndarray | None]:
    """Plane label and unit normal from ImageOrientationPatient (six direction cosines)."""
    if orientation is None or len(orientation) != 6:
        return "unknown", None
    cosines = np.asarray([float(v) for v in orientation], dtype=np.float64)
    normal = np.cross(cosines[:3], cosines[3:])
    norm = np.linalg.norm(normal)
    if norm < 1e-6:
        return "unknown", None
    normal /= norm
    axis = int(np.argmax(np.abs(normal)))
    plane = _PLANE_OF_LPS_AXIS[axis] if abs(normal[axis]) >= _OBLIQUE_BELOW else "oblique"
    return plane, normal


def _item(ds: Any, *path: str) -> Any:
    """Follow sequence keywords, taking item 0 of each; None when any step is missing."""
    node = ds
    for keyword in path:
        value = getattr(node, keyword, None) if node is not None else None
        if value is None:
            return None
        node = value[0] if hasattr(value, "__getitem__") and keyword.endswith("Sequence") else value
    return node


def _frame_attr(ds: Any, frame: int, sequence: str, keyword: str) -> Any:
    """An attribute from per-frame, then shared functional groups, then the top level."""
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if per_frame is not None and frame < len(per_frame):
        value = _item(per_frame[frame], sequence, keyword)
        if value is not None:
            return value
    value = _item(ds, "SharedFunctionalGroupsSequence", sequence, keyword)
    if value is not None:
        return value
    return getattr(ds, keyword, None)


def _to_luminance(frame: np.ndarray) -> np.ndarray:
    # ``Dataset.pixel_array`` already returns RGB for YBR_FULL, YBR_FULL_422, YBR_ICT and
    # YBR_RCT (pydicom's as_rgb default), so no further colour-space conversion is needed.
    return np.tensordot(frame.astype(np.float64), BT601, axes=([-1], [0]))


def _modality_lut(frame: np.ndarray, ds: Any, index: int) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    slope = _frame_attr(ds, index, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_attr(ds, index, "PixelValueTransformationSequence", "RescaleIntercept")
    if "ModalityLUTSequence" in ds or slope is None:
        return np.asarray(apply_modality_lut(frame, ds), dtype=np.float64)
    return frame.astype(np.float64) * float(slope) + float(intercept or 0.0)


def _contrast(ds: Any, modality: str) -> str:
    """Condition label from acquisition attributes; MR-other when they do not decide it."""
    if modality == "CT":
        return "CT"
    if modality != "MR":
        return modality
    image_type = [str(v).upper() for v in getattr(ds, "ImageType", [])]
    bvalue = getattr(ds, "DiffusionBValue", None)
    if "DIFFUSION" in image_type or (bvalue is not None and float(bvalue) > 0):
        return "MR-DWI"
    sequence = getattr(ds, "ScanningSequence", "")
    sequence = [sequence] if isinstance(sequence, str) else list(sequence)
    if "EP" in [str(s).upper() for s in sequence]:
        return "MR-EPI"
    try:
        tr = float(getattr(ds, "RepetitionTime", None) or "nan")
        te = float(getattr(ds, "EchoTime", None) or "nan")
    except (TypeError, ValueError):
        return "MR-other"
    if tr < 1000 and te < 30:
        return "MR-T1"
    if tr >= 1500 and te >= 70:
        return "MR-T2"
    if tr >= 1500 and te < 30:
        return "MR-PD"
    return "MR-other"


def slices_from_dicom_series(datasets: Sequence[Any]) -> list[SliceRecord]:
    """Turn the instances of one series into slices in modality units.

    Parameters
    ----------
    datasets : sequence of pydicom.Dataset
        The instances of one series, any order, with pixel data.

    Returns
    -------
    list of SliceRecord
        Sorted along the slice axis (rank order gives ``slice_pos``). Metadata has
        ``modality``, ``contrast``, ``plane``, ``slice_pos``, ``species``, ``region``
        (:func:`cadp_med.model._region.body_region`, None if unknown), ``source``
        ("dicom"), ``frame`` and ``instance`` (index into ``datasets``), ``photometric``
        and, for colour input, ``colour_transform``. No header value that identifies anyone is
        copied.

    Raises
    ------
    InputError
        If an instance has no decodable pixel data.
    """
    frames: list[tuple[float, int, int, SliceRecord]] = []
    for instance, ds in enumerate(datasets):
        try:
            array = ds.pixel_array
        except Exception as exc:  # decoders raise many types; all mean "cannot decode"
            raise InputError(f"pixel data not decodable: {type(exc).__name__}") from exc
        samples = int(getattr(ds, "SamplesPerPixel", 1))
        n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if n_frames == 1:
            array = array[np.newaxis]
        modality = str(getattr(ds, "Modality", "OT")).upper()
        contrast = _contrast(ds, modality)
        species = (
            "non-human"
            if "PatientSpeciesDescription" in ds or "PatientSpeciesCodeSequence" in ds
            else "human"
        )
        region = body_region(ds)  # a vocabulary label only; the header text stays here
        for index in range(n_frames):
            frame = array[index]
            meta: dict[str, Any] = {
                "modality": modality,
                "contrast": contrast,
                "species": species,
                "region": region,
                "source": "dicom",
                "instance": instance,
                "frame": index,
                "photometric": str(getattr(ds, "PhotometricInterpretation", "")),
            }
            if samples == 3:
                pixels = _to_luminance(frame)
                meta["colour_transform"] = "luminance Y = 0.299R + 0.587G + 0.114B (BT.601)"
            elif meta["photometric"].upper() == "PALETTE COLOR":
                from pydicom.pixels import apply_color_lut

                pixels = _to_luminance(apply_color_lut(frame, ds))
                meta["colour_transform"] = "luminance Y = 0.299R + 0.587G + 0.114B (BT.601)"
            else:
                pixels = _modality_lut(frame, ds, index)
            orientation = _frame_attr(
                ds, index, "PlaneOrientationSequence", "ImageOrientationPatient"
            )
            position = _frame_attr(ds, index, "PlanePositionSequence", "ImagePositionPatient")
            plane, normal = plane_from_orientation(orientation)
            meta["plane"] = plane
            key = float(n_frames * instance + index)
            if normal is not None and position is not None and len(position) == 3:
                axis = int(np.argmax(np.abs(normal)))
                direction = normal * np.sign(normal[axis]) * _RAS_SIGN[axis]
                key = float(np.dot([float(v) for v in position], direction))
            spacing = _frame_attr(ds, index, "PixelMeasuresSequence", "PixelSpacing")
            if spacing is None:
                spacing = getattr(ds, "ImagerPixelSpacing", None)
            meta["spacing_known"] = spacing is not None
            record = SliceRecord(
                pixels=pixels.astype(np.float32),
                spacing=(float(spacing[0]), float(spacing[1])) if spacing else (1.0, 1.0),
                metadata=meta,
            )
            frames.append((key, instance, index, record))
    frames.sort(key=lambda item: item[:3])
    count = len(frames)
    for rank, (*_, record) in enumerate(frames):
        record.metadata["slice_pos"] = rank / (count - 1) if count > 1 else 0.5
    return [record for *_, record in frames]
