"""Options of NIfTI input, validated when they are built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cadp_med.errors import ConfigError

MODALITIES = ("MR", "CT")
FORMATS = ("dicom", "nifti")
_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class NiftiOptions:
    """How NIfTI volumes found by ``anonymize`` are written.

    Parameters
    ----------
    modality : {"MR", "CT"}, optional
        Overrides the sidecar's ``Modality``. With neither, MR is assumed (and a
        warning is audited); a sidecar modality other than MR or CT is quarantined.
    patient_id : str, optional
        The patient of every volume of the run. Its pseudonym is the one a DICOM
        instance with this Patient ID gets, so NIfTI and DICOM of one patient stay
        linked. Default: a keyed hash of each volume's path relative to the input.
    output_format : {"dicom", "nifti"}
        ``dicom``: one MR/CT Image Storage instance per slice; ``nifti``: one
        ``.nii.gz`` (+ cleaned ``.json``) per volume. DICOM input is always DICOM.
    """

    modality: str | None = None
    patient_id: str | None = None
    output_format: str = "dicom"

    def __post_init__(self) -> None:
        if self.modality is not None and self.modality not in MODALITIES:
            raise ConfigError(f"--modality must be one of {', '.join(MODALITIES)}")
        if self.output_format not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
        if self.patient_id is not None and not self.patient_id.strip():
            raise ConfigError("--patient-id must not be empty")


def is_nifti_path(path: Path) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name."""
    return path.name.lower().endswith(_SUFFIXES)


def volume_stem(path: Path) -> str:
    """The file name without ``.nii`` / ``.nii.gz``."""
    name = path.name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def sidecar_path(path: Path) -> Path:
    """The BIDS sidecar of a volume: ``<stem>.json`` beside it."""
    return path.with_name(volume_stem(path) + ".json")
