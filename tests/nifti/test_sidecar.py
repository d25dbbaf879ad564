"""The sidecar PHI rule (data/bids_phi_keys.json) and the NIfTI header cleaning."""

from __future__ import annotations

import nibabel
import numpy as np
import pytest

from cadp_med.errors import ConfigError
from cadp_med.nifti import PHI_HEADER_FIELDS, clean_header, clean_sidecar, sidecar_rules
from cadp_med.nifti._sidecar import SidecarRules


def test_listed_and_suffix_keys_go_and_parameters_stay() -> None:
    sidecar = {
        "PatientName": "x",
        "InstitutionAddress": "x",
        "AcquisitionDateTime": "x",
        "AcquisitionTime": "10:00:00",
        "SeriesInstanceUID": "1.2.3",
        "OtherStudyID": "x",  # suffix ID
        "patient_name": "x",  # suffix, any case
        "CustomUID": "1.2",
        "EchoTime": 0.003,  # durations ending in "Time": on the keep list
        "RepetitionTime": 2.3,
        "InversionTime": 0.9,
        "TotalReadoutTime": 0.05,
        "ManufacturersModelName": "Prisma",
        "FlipAngle": 9,
        "SliceTiming": [0.0, 0.5],
        "MagneticFieldStrength": 3,
    }
    cleaned, removed = clean_sidecar(sidecar)
    assert set(cleaned) == {
        "EchoTime",
        "RepetitionTime",
        "InversionTime",
        "TotalReadoutTime",
        "ManufacturersModelName",
        "FlipAngle",
        "SliceTiming",
        "MagneticFieldStrength",
    }
    assert removed == 8


def test_patient_characteristics_only_under_the_retain_option() -> None:
    sidecar = {"PatientSex": "F", "PatientWeight": 70, "PatientAge": "041Y"}
    assert clean_sidecar(sidecar)[0] == {}
    kept, removed = clean_sidecar(sidecar, retain_patient_characteristics=True)
    assert kept == sidecar and removed == 0


def test_nested_objects_are_cleaned() -> None:
    cleaned, removed = clean_sidecar(
        {"Dicom": {"PatientID": "x", "EchoTime": 1}, "L": [{"StudyDate": "x"}]}
    )
    assert cleaned == {"Dicom": {"EchoTime": 1}, "L": [{}]}
    assert removed == 2


def test_rules_refuse_a_key_both_kept_and_removed() -> None:
    rules = sidecar_rules()
    with pytest.raises(ConfigError, match="both kept and removed"):
        SidecarRules(
            remove=frozenset({"EchoTime"}),
            remove_suffixes=rules.remove_suffixes,
            patient_characteristics=frozenset(),
            keep=frozenset({"EchoTime"}),
        )


def test_header_free_text_cleared_and_extensions_dropped() -> None:
    header = nibabel.Nifti1Header()
    header["descrip"] = b"Doe John 20190314"
    header["aux_file"] = b"john.aux"
    header["db_name"] = b"hospital"
    header["intent_name"] = b"john"
    header.extensions.append(nibabel.nifti1.Nifti1Extension("comment", b"PatientName=Doe"))
    cleaned = clean_header(header)
    for name in PHI_HEADER_FIELDS:
        assert cleaned[name].item() == b""
    assert len(cleaned.extensions) == 0
    assert header["descrip"].item() == b"Doe John 20190314"  # the input is not changed
    assert np.array_equal(cleaned.get_best_affine(), header.get_best_affine())
