"""Where and how a de-identified volume is written: a DICOM series or one NIfTI file.

DICOM: ``OUT/<patient>/<study>/<series>/<sop>.dcm`` through
:func:`cadp_med.io.write.write_instance` (atomic). NIfTI:
``OUT/<patient>/<study>/<series>.nii.gz`` and ``<series>.json`` beside it, each written
to a temporary file and renamed. Only pseudonyms name a path.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from cadp_med.io._atomic import atomic_write
from cadp_med.io.write import output_path, write_instance
from cadp_med.nifti._dicom import METHOD_TEXT, SeriesIdentity


@dataclass(frozen=True)
class _Pseudonyms:
    """The four pseudonyms :func:`cadp_med.io.write.output_path` builds a path from."""

    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str


def _pseudonyms(identity: SeriesIdentity, sop_uid: str) -> _Pseudonyms:
    return _Pseudonyms(identity.patient_id, identity.study_uid, identity.series_uid, sop_uid)


def dicom_targets(output: Path, identity: SeriesIdentity) -> list[Path]:
    """The output file of every slice, in voxel order."""
    return [output_path(output, _pseudonyms(identity, sop)) for sop in identity.sop_uids]


def nifti_target(output: Path, identity: SeriesIdentity) -> Path:
    """``OUT/<patient>/<study>/<series>.nii.gz`` (checked to stay inside ``OUT``)."""
    series_folder = output_path(output, _pseudonyms(identity, identity.series_uid)).parent
    return series_folder.with_name(series_folder.name + ".nii.gz")


def write_dicom_series(datasets: list[Any], output: Path, identity: SeriesIdentity) -> list[Path]:
    """Write the slices that are not there yet; return the files written."""
    written = []
    for ds, sop in zip(datasets, identity.sop_uids, strict=True):
        pseudonyms = _pseudonyms(identity, sop)
        if output_path(output, pseudonyms).is_file():
            continue  # resumed run: this slice was written before
        written.append(
            write_instance(ds, output, pseudonyms, transfer_syntax=ExplicitVRLittleEndian)
        )
    return written


def _decoded(ds: Any) -> np.ndarray:
    """A slice's modality values as ``[i, j]`` (the transpose of its DICOM rows)."""
    dtype = np.dtype("<i2") if int(ds.PixelRepresentation) == 1 else np.dtype("<u2")
    stored = np.frombuffer(ds.PixelData, dtype=dtype)[: int(ds.Rows) * int(ds.Columns)]
    values = stored.reshape(int(ds.Rows), int(ds.Columns)).astype(np.float64)
    return (values * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).T


def write_nifti_volume(
    image: Any,
    voxels: np.ndarray,
    datasets: list[Any],
    sidecar: Mapping[str, Any],
    target: Path,
) -> Path:
    """Write the volume with the input's affine and a cleaned header, and its sidecar.

    Parameters
    ----------
    image : nibabel.Nifti1Image or nibabel.Nifti2Image
        The input; its affine, sform/qform codes, units and data type are kept.
    voxels : numpy.ndarray
        ``[i, j, k]`` input voxels, written when ``datasets`` is empty (``--pixels keep``).
    datasets : list of pydicom.Dataset
        Slices after ``blank`` or ``privatize``, whose pixels are written instead (float32).
    sidecar : mapping
        The cleaned sidecar; the de-identification method (and the privacy parameters
        of a privatized volume) are added to it.
    target : Path
        The ``.nii.gz`` path.
    """

    from cadp_med.nifti._sidecar import clean_header

    header = clean_header(image.header)
    side = dict(sidecar)
    methods = [METHOD_TEXT]
    if datasets:
        data = np.stack([_decoded(ds) for ds in datasets], axis=2).astype(np.float32)
        header.set_data_dtype(np.float32)
        methods = [str(m) for m in _as_list(datasets[0].get("DeidentificationMethod"))]
        if "CADPParameters" not in side:
            side.update(_privacy_parameters(datasets[0]))
    else:
        data = voxels
        proxy = image.dataobj
        scaled = getattr(proxy, "slope", 1.0) != 1 or getattr(proxy, "inter", 0.0) != 0
        if scaled or not np.issubdtype(header.get_data_dtype(), np.number):
            header.set_data_dtype(np.float32)  # scaled input: the float values, not a rescale
    side["DeidentificationMethod"] = methods
    out = type(image)(data, image.affine, header=header)
    out.header.set_slope_inter(1.0, 0.0)
    sform, sform_code = image.get_sform(coded=True)
    qform, qform_code = image.get_qform(coded=True)
    out.set_sform(image.affine if sform is None else sform, int(sform_code) or 2)
    out.set_qform(image.affine if qform is None else qform, int(qform_code) or 0)
    # mtime 0 and no file name in the gzip header: nothing of the input's time or name.
    payload = gzip.compress(out.to_bytes(), mtime=0)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda stream: stream.write(payload))
    text = json.dumps(side, indent=2, sort_keys=True) + "\n"
    json_target = target.with_name(target.name[: -len(".nii.gz")] + ".json")
    atomic_write(json_target, lambda stream: stream.write(text.encode("utf-8")))
    return target


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _privacy_parameters(ds: Any) -> dict[str, Any]:
    try:
        from cadp_med.pixels import read_parameters

        return {"CADPParameters": read_parameters(ds)}
    except KeyError:  # blanked: no private block
        return {}
