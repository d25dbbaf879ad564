"""The DICOM instances of one NIfTI volume: one MR or CT Image Storage instance per slice.

Nothing of the NIfTI header or sidecar is copied but geometry, the modality and the
acquisition parameters on the sidecar ``keep`` list: identifiers are keyed pseudonyms,
names are the patient pseudonym, and dates are absent (Type 2 attributes empty).

Stored values (PS3.3 C.11.1 Modality LUT): integer voxels that fit int16 or uint16 are
stored as they are (slope 1, intercept 0), so ``--pixels keep`` keeps every value.
Other volumes (floats, or a wider range) are scaled linearly onto int16, with Rescale
Slope and Intercept recorded; the error is at most half a step, 1/131070 of the range.
CT is HU, so its Rescale Type is ``HU``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from cadp_med.deid._marks import add_deidentification_marks
from cadp_med.nifti._geometry import SliceGeometry, ds_text

SOP_CLASSES = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2"}
# PS3.15 CID 7050: the Basic Profile was applied (the header is built from pseudonyms).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
METHOD_TEXT = "cadp-med NIfTI: pseudonyms only, sidecar PHI keys removed"
# BIDS keys (seconds) → DICOM keywords (milliseconds), PS3.3 C.8.3.1 MR Image Module.
_MS_FROM_SECONDS = {
    "EchoTime": "EchoTime",
    "RepetitionTime": "RepetitionTime",
    "InversionTime": "InversionTime",
}
_MR_TEXT = ("ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType")
_MR_NUMBERS = ("FlipAngle", "MagneticFieldStrength")
_MR_TEXT_DEFAULTS = {"ScanningSequence": "RM", "SequenceVariant": "NONE"}


@dataclass(frozen=True)
class StoredVolume:
    """Stored pixel values of a volume and the Modality LUT that restores them."""

    stored: np.ndarray
    slope: float
    intercept: float

    @property
    def signed(self) -> bool:
        """True for int16 storage (Pixel Representation 1)."""
        return bool(self.stored.dtype == np.int16)

    def values(self) -> np.ndarray:
        """Modality values, ``stored * slope + intercept`` (float64)."""
        return self.stored.astype(np.float64) * self.slope + self.intercept


def store_volume(volume: np.ndarray) -> StoredVolume:
    """Choose int16/uint16 storage for a volume (see the module doc)."""
    data = np.asarray(volume, dtype=np.float64)
    finite = data[np.isfinite(data)]
    low = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    data = np.where(np.isfinite(data), data, low)  # NaN and inf carry no image content
    if np.array_equal(data, np.rint(data)):
        if low >= -32768 and high <= 32767:
            return StoredVolume(data.astype(np.int16), 1.0, 0.0)
        if low >= 0 and high <= 65535:
            return StoredVolume(data.astype(np.uint16), 1.0, 0.0)
    slope = (high - low) / 65535.0 if high > low else 1.0
    intercept = low + 32768.0 * slope
    stored = np.clip(np.rint((data - intercept) / slope), -32768, 32767).astype(np.int16)
    return StoredVolume(stored, slope, intercept)


@dataclass(frozen=True)
class SeriesIdentity:
    """Keyed pseudonyms of the patient, study, series and frame of reference."""

    patient_id: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    sop_uids: tuple[str, ...]


def slice_datasets(
    stored: StoredVolume,
    geometry: SliceGeometry,
    identity: SeriesIdentity,
    *,
    modality: str,
    sidecar: Mapping[str, Any],
    patient_sex: str | None = None,
    method_codes: Sequence[tuple[str, str]] = (),
) -> list[Dataset]:
    """One dataset per slice ``k`` of ``stored`` (``[i, j, k]``), in voxel order.

    ``method_codes`` are CID 7050 codes of the pixel treatment, added to the Basic
    Profile code in the De-identification Method Code Sequence.
    """
    base = _series_header(stored, geometry, identity, modality, sidecar, patient_sex)
    add_deidentification_marks(base, METHOD_TEXT, (BASIC_PROFILE_CODE, *method_codes), "REMOVED")
    dtype = stored.stored.dtype.newbyteorder("<")
    out = []
    for k in range(stored.stored.shape[2]):
        ds = Dataset()
        ds.update(base)
        ds.file_meta = _file_meta(identity.sop_uids[k], modality)
        ds.SOPInstanceUID = identity.sop_uids[k]
        ds.InstanceNumber = geometry.instance_numbers[k]
        position = geometry.positions[k]
        ds.ImagePositionPatient = [ds_text(float(v)) for v in position]
        ds.SliceLocation = ds_text(float(position @ geometry.normal))
        image = np.ascontiguousarray(stored.stored[:, :, k].T)  # rows along j, columns i
        ds.Rows, ds.Columns = int(image.shape[0]), int(image.shape[1])
        ds.PixelData = image.astype(dtype).tobytes()
        ds["PixelData"].VR = "OW"
        out.append(ds)
    return out


def _file_meta(sop_uid: str, modality: str) -> FileMetaDataset:
    # Needed to decode the pixels in memory (the pixel stage); write_instance makes its own.
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASSES[modality]
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _series_header(
    stored: StoredVolume,
    geometry: SliceGeometry,
    identity: SeriesIdentity,
    modality: str,
    sidecar: Mapping[str, Any],
    patient_sex: str | None,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = SOP_CLASSES[modality]
    ds.Modality = modality
    ds.ImageType = ["DERIVED", "SECONDARY"]
    # Patient, study and series: pseudonyms; Type 2 attributes present and empty.
    ds.PatientName = identity.patient_id
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = patient_sex or ""
    ds.StudyInstanceUID = identity.study_uid
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.SeriesInstanceUID = identity.series_uid
    ds.SeriesNumber = 1
    ds.FrameOfReferenceUID = identity.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = ""
    ds.BurnedInAnnotation = "NO"
    ds.DerivationDescription = "Converted from NIfTI by cadp-med; header built from pseudonyms"
    # Image Plane (PS3.3 C.7.6.2).
    ds.ImageOrientationPatient = [ds_text(v) for v in geometry.orientation]
    ds.PixelSpacing = [ds_text(v) for v in geometry.pixel_spacing]
    ds.SliceThickness = ds_text(geometry.slice_spacing)
    ds.SpacingBetweenSlices = ds_text(geometry.slice_spacing)
    # Image Pixel (PS3.3 C.7.6.3) and Modality LUT (C.11.1).
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if stored.signed else 0
    ds.RescaleSlope = ds_text(stored.slope)
    ds.RescaleIntercept = ds_text(stored.intercept)
    ds.RescaleType = "HU" if modality == "CT" else "US"
    if modality == "MR":
        _mr_parameters(ds, sidecar)
    else:
        ds.KVP = ""
        ds.AcquisitionNumber = ""
    return ds


def _mr_parameters(ds: Dataset, sidecar: Mapping[str, Any]) -> None:
    """The MR Image Module's acquisition parameters from the (cleaned) sidecar."""
    for key, keyword in _MS_FROM_SECONDS.items():
        value = _number(sidecar.get(key))
        setattr(ds, keyword, ds_text(value * 1000.0) if value is not None else "")
    for keyword in _MR_TEXT:
        value = sidecar.get(keyword)
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        codes = [str(v).strip().upper()[:16] for v in values if v not in (None, "")]
        if codes:
            setattr(ds, keyword, codes if len(codes) > 1 else codes[0])
        elif keyword in _MR_TEXT_DEFAULTS:
            setattr(ds, keyword, _MR_TEXT_DEFAULTS[keyword])
        else:
            setattr(ds, keyword, "")
    for keyword in _MR_NUMBERS:
        value = _number(sidecar.get(keyword))
        if value is not None:
            setattr(ds, keyword, ds_text(value))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None
