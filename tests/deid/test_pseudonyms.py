"""Pseudonyms, UID consistency, date shifts, mapping files (PS3.15 E.1.1, E.3.6)."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from cadp_med.deid import MappingRecorder, Profile, burned_in_reason, read_mapping_csv
from cadp_med.deid._pseudo import MAX_SHIFT_DAYS
from tests.deid.conftest import deidentify

MODIFIED = Profile.from_options(["retain-longitudinal-modified-dates"])


def _corpus(phi_corpus: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(phi_corpus.rglob("*.dcm"))]


def test_same_key_gives_same_pseudonyms_across_instances(phi_corpus: Path) -> None:
    first = [deidentify()(ds).dataset for ds in _corpus(phi_corpus)]
    second = [deidentify()(ds).dataset for ds in _corpus(phi_corpus)]
    for a, b in zip(first, second, strict=True):
        for name in ("PatientID", "PatientName", "StudyInstanceUID", "SOPInstanceUID"):
            assert a[name].value == b[name].value


def test_other_key_is_unlinkable(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    a = deidentify()(ds).dataset
    b = deidentify(key=b"another key entirely.............")(ds).dataset
    for name in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert a[name].value != b[name].value


def test_uid_format_and_well_known_uids_untouched(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    out = deidentify()(ds).dataset
    assert out.SOPInstanceUID.startswith("2.25.") and len(out.SOPInstanceUID) <= 64
    assert out.SOPInstanceUID != ds.SOPInstanceUID
    assert out.SOPClassUID == ds.SOPClassUID  # a registered UID is not an identifier


def test_references_map_like_the_uids_they_point_to(phi_corpus: Path) -> None:
    datasets = _corpus(phi_corpus)
    deid = deidentify()
    ct, mr = datasets[0], datasets[1]  # patient0/ct.dcm, patient0/mr.dcm
    ct_out, mr_out = deid(ct).dataset, deid(mr).dataset
    assert mr.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert mr_out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ct_out.SOPInstanceUID
    assert mr_out.FrameOfReferenceUID == ct_out.FrameOfReferenceUID
    assert mr_out.StudyInstanceUID == ct_out.StudyInstanceUID
    assert mr_out.SeriesInstanceUID != ct_out.SeriesInstanceUID


def test_patient_pseudonyms_and_maps(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    result = deidentify()(ds)
    assert result.dataset.PatientID == result.pseudonyms.patient_id
    assert result.dataset.PatientID.startswith("P")
    assert str(result.dataset.PatientName) == "ANON^" + result.pseudonyms.patient_id
    mapped = deidentify(
        patient_id_map={ds.PatientID: "SUBJ-7"}, uid_map={ds.StudyInstanceUID: "1.2.3.4"}
    )(ds)
    assert mapped.dataset.PatientID == "SUBJ-7"
    assert mapped.dataset.StudyInstanceUID == "1.2.3.4"


def test_empty_patient_id_maps_deterministically_per_study() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = ""
    a, b = deidentify()(ds).dataset.PatientID, deidentify()(ds).dataset.PatientID
    assert a == b and a.startswith("P") and len(a) > 1


def test_input_is_never_mutated(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[1]
    before = pydicom.dcmread(sorted(phi_corpus.rglob("*.dcm"))[1])
    result = deidentify()(ds)
    result.dataset.PixelData = b"\x00" * len(ds.PixelData)
    assert ds == before
    assert "file_meta" not in result.dataset.__dict__ or not result.dataset.file_meta


def _dates(ds: pydicom.Dataset) -> dict[str, str]:
    return {f"{e.tag}": str(e.value) for e in ds.iterall() if e.VR in ("DA", "DT") and e.value}


def test_modified_dates_shift_per_patient_and_keep_intervals(phi_corpus: Path) -> None:
    datasets = _corpus(phi_corpus)
    deid = deidentify(MODIFIED)
    offsets: dict[str, set[int]] = {}
    for ds in datasets:
        out = deid(ds).dataset
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
        for tag in ("StudyDate", "SeriesDate", "ContentDate"):
            if not ds.get(tag):
                continue  # an empty original date stays empty
            before = dt.datetime.strptime(ds[tag].value, "%Y%m%d")
            after = dt.datetime.strptime(out[tag].value, "%Y%m%d")
            offsets.setdefault(ds.PatientID, set()).add((after - before).days)
    for days in offsets.values():
        assert len(days) == 1  # one offset per patient: intervals kept
        (offset,) = days
        assert -MAX_SHIFT_DAYS <= offset <= -1
    assert len({d for s in offsets.values() for d in s}) > 1  # patients differ
    # Patient's Birth Date is Z in Table E.1-1 and not in the option's column: still empty.
    assert not deid(datasets[0]).dataset.PatientBirthDate


def test_datetime_shifts_date_part_only_and_times_stay(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    out = deidentify(MODIFIED)(ds).dataset
    original_dt, shifted_dt = ds.AcquisitionDateTime, out.AcquisitionDateTime
    assert shifted_dt[8:] == original_dt[8:]
    shift = (
        dt.datetime.strptime(shifted_dt[:8], "%Y%m%d")
        - dt.datetime.strptime(original_dt[:8], "%Y%m%d")
    ).days
    assert (
        shift
        == (
            dt.datetime.strptime(out.StudyDate, "%Y%m%d")
            - dt.datetime.strptime(ds.StudyDate, "%Y%m%d")
        ).days
    )
    assert out.StudyTime == ds.StudyTime  # TM is never shifted


def test_dates_removed_without_longitudinal_option(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    out = deidentify()(ds).dataset
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    original = set(_dates(ds).values())
    assert not original & set(_dates(out).values())


def test_full_dates_keeps_dates(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    out = deidentify(Profile.from_options(["retain-longitudinal-full-dates"]))(ds).dataset
    assert out.StudyDate == ds.StudyDate
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_deidentification_attributes(phi_corpus: Path) -> None:
    ds = _corpus(phi_corpus)[0]
    result = deidentify(
        Profile.from_options(["retain-uids"]),
        extra_method_codes=[("113101", "Clean Pixel Data Option")],
        method_text="run 7",
    )(ds)
    out = result.dataset
    assert out.PatientIdentityRemoved == "YES"
    methods = out.DeidentificationMethod
    methods = [methods] if isinstance(methods, str) else list(methods)
    assert methods[-1].startswith("cadp-med 0.1.0 PS3.15 E.1-1 2026c") and "run 7" in methods[-1]
    assert all(len(m) <= 64 for m in methods)
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113110", "113101"]
    equipment = out.ContributingEquipmentSequence[-1]
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109104"
    assert equipment.Manufacturer == "cadp-med"
    assert result.actions["X"] > 0 and result.actions["private-removed"] > 0


def test_mapping_csv_round_trip_with_mode_0600(phi_corpus: Path, tmp_path: Path) -> None:
    recorder = MappingRecorder()
    deid = deidentify(recorder=recorder)
    datasets = _corpus(phi_corpus)
    outputs = [deid(ds).dataset for ds in datasets]
    path = tmp_path / "mapping.csv"
    recorder.write_csv(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().splitlines()[0] == "id_old,id_new,kind"
    uid_map, patient_map = read_mapping_csv(path)
    for ds, out in zip(datasets, outputs, strict=True):
        assert uid_map[ds.SOPInstanceUID] == out.SOPInstanceUID
        assert patient_map[ds.PatientID] == out.PatientID
    # An imported mapping reproduces the pseudonyms under a different key.
    other = deidentify(key=b"x" * 32, uid_map=uid_map, patient_id_map=patient_map)
    assert other(datasets[0]).dataset.SOPInstanceUID == outputs[0].SOPInstanceUID


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"BurnedInAnnotation": "YES"}, "BurnedInAnnotation is YES"),
        ({"Modality": "US"}, "modality US usually carries burned-in text"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "secondary capture SOP class"),
        ({}, None),
    ],
)
def test_burned_in_reason(changes: dict[str, str], reason: str | None) -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for name, value in changes.items():
        setattr(ds, name, value)
    assert burned_in_reason(ds) == reason


def test_non_ascii_method_text_switches_charset_to_utf8() -> None:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SpecificCharacterSet = "ISO_IR 100"
    result = deidentify(method_text="Zürich 東京 run")(ds)
    assert result.dataset.SpecificCharacterSet == "ISO_IR 192"
    assert any("(0008,0005)" in w for w in result.warnings)
    assert all("東京" not in w for w in result.warnings)


@pytest.mark.parametrize(
    ("name", "syntax"),
    [
        ("MR_small_implicit.dcm", pydicom.uid.ExplicitVRLittleEndian),
        ("CT_small.dcm", pydicom.uid.ImplicitVRLittleEndian),
    ],
)
def test_elements_kept_undecoded_survive_a_change_of_encoding(
    name: str, syntax: str, tmp_path: Path
) -> None:
    from tests.deid.conftest import write_output

    source = pydicom.dcmread(get_testdata_file(name))
    out = deidentify()(source).dataset
    source.file_meta.TransferSyntaxUID = syntax  # the writer takes the syntax from here
    write_output(out, source, tmp_path / "out.dcm")
    again = pydicom.dcmread(tmp_path / "out.dcm")
    for keyword in ("Rows", "Columns", "Manufacturer", "ImageType", "PixelSpacing"):
        assert again[keyword].value == source[keyword].value, keyword
    assert again.PixelData == source.PixelData
