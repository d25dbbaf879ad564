"""NIfTI input for ``cadp-med anonymize``: volumes in, a DICOM series (or NIfTI) out.

Public API::

    NiftiOptions          modality, patient id and output format (validated)
    anonymize_volumes     de-identify volumes; one VolumeOutcome each (the pipeline's hook)
    split_nifti           volumes (and their sidecars) among discovery's skipped files
    clean_sidecar         a BIDS sidecar without its PHI keys (data/bids_phi_keys.json)
    clean_header          a NIfTI header with descrip, aux_file, db_name, intent_name cleared
    slice_geometry        DICOM Image Plane attributes from a NIfTI affine (RAS → LPS)
"""

from __future__ import annotations

from cadp_med.nifti._geometry import SliceGeometry, lps_affine, slice_geometry
from cadp_med.nifti._options import NiftiOptions, is_nifti_path, sidecar_path
from cadp_med.nifti._sidecar import PHI_HEADER_FIELDS, clean_header, clean_sidecar, sidecar_rules
from cadp_med.nifti._volume import VolumeOutcome, anonymize_volumes, split_nifti

__all__ = [
    "PHI_HEADER_FIELDS",
    "NiftiOptions",
    "SliceGeometry",
    "VolumeOutcome",
    "anonymize_volumes",
    "clean_header",
    "clean_sidecar",
    "is_nifti_path",
    "lps_affine",
    "sidecar_path",
    "sidecar_rules",
    "slice_geometry",
    "split_nifti",
]
