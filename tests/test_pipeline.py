from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions, ConfigError, anonymize_study
from cadp_med.io.audit import read_audit_log
from cadp_med.io.discover import scan
from tests.conftest import pydicom_file, tree_hashes

KEEP = AnonymizeOptions(pixels="keep")


def identifying_values(root: Path) -> set[str]:
    """PatientName/ID and the UIDs of every input, as strings."""
    values: set[str] = set()
    for item in scan(root).files:
        ds = pydicom.dcmread(item.path, stop_before_pixels=True, force=True)
        for keyword in (
            "PatientName",
            "PatientID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
        ):
            value = str(ds.get(keyword, "") or "")
            if value:
                values.add(value)
    return values


def outputs(out: Path) -> list[Path]:
    return sorted(out.rglob("*.dcm"))


def test_sample_studies_end_to_end(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("multi_series")
    shutil.copytree(Path(sample_study("ct_small")), study / "extra ct")
    before = tree_hashes(study)
    out = tmp_path / "out"

    summary = anonymize_study(study, out, key=test_key, options=KEEP)

    assert tree_hashes(study) == before  # the input is never modified
    assert summary.exit_code == 0
    assert (summary.written, summary.quarantined, summary.skipped_done) == (25, 0, 0)
    # LICENSE-NOTE.md of both folders, and the DICOMDIR.
    assert summary.non_dicom == 3
    assert summary.files_seen == 28
    assert (summary.patients, summary.studies, summary.series) == (2, 5, 10)
    assert not (out / "DICOMDIR").exists()
    assert not list(out.rglob("DICOMDIR"))
    assert not summary.quarantine.exists()  # nothing to quarantine: no folder
    # Output paths hold pseudonyms only.
    secrets = identifying_values(study)
    for path in outputs(out):
        for part in path.relative_to(out).parts:
            assert not any(secret in part for secret in secrets), part
    # Every input file is accounted for exactly once in the audit log.
    records = read_audit_log(summary.audit_log)
    assert len(records) == summary.files_seen
    assert {r["status"] for r in records} == {"written", "skipped-non-dicom"}
    assert str(study) not in summary.audit_log.read_text()
    for path in outputs(out):
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.PatientName) not in secrets


def test_rerun_skips_done_instances(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("multi_series")
    out = tmp_path / "out"
    first = anonymize_study(study, out, key=test_key, options=KEEP)
    written = {p: p.stat().st_mtime_ns for p in outputs(out)}
    second = anonymize_study(study, out, key=test_key, options=KEEP)
    assert (second.written, second.skipped_done) == (0, first.written)
    assert {p: p.stat().st_mtime_ns for p in outputs(out)} == written
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    # The audit log keeps both runs.
    assert len(read_audit_log(second.audit_log)) == first.files_seen + second.files_seen


def test_another_key_gives_other_pseudonyms(tmp_path: Path, sample_study) -> None:
    study = sample_study("ct_small")
    a = anonymize_study(study, tmp_path / "a", key=b"key-a", options=KEEP)
    b = anonymize_study(study, tmp_path / "b", key=b"key-b", options=KEEP)
    rel_a = [p.relative_to(a.output).parts for p in outputs(a.output)]
    rel_b = [p.relative_to(b.output).parts for p in outputs(b.output)]
    assert len(rel_a) == len(rel_b) == 1
    assert all(x != y for x, y in zip(rel_a[0], rel_b[0], strict=True))


def make_malformed(folder: Path) -> dict[str, str]:
    """Write one broken file per problem; return {file name: expected reason}."""
    folder.mkdir(parents=True)
    ct = pydicom_file("CT_small.dcm")
    raw = ct.read_bytes()
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "truncated.dcm").write_bytes(raw[:-5000])
    (folder / "random.dcm").write_bytes(b"\0" * 128 + b"DICM" + np.random.default_rng(0).bytes(900))
    unknown_vr = bytearray(raw)
    at = unknown_vr.find(b"PN")
    unknown_vr[at : at + 2] = b"ZZ"
    (folder / "unknown_vr.dcm").write_bytes(bytes(unknown_vr))
    no_pixels = pydicom.dcmread(ct)
    del no_pixels.PixelData
    no_pixels.SOPInstanceUID = "1.2.3.4.1"
    no_pixels.save_as(folder / "no_pixels.dcm")
    charset = pydicom.dcmread(ct)
    charset.SpecificCharacterSet = "ISO_IR 999"
    charset.SOPInstanceUID = "1.2.3.4.2"
    with pytest.warns(UserWarning):
        charset.save_as(folder / "charset.dcm")
    (folder / "readme.txt").write_text("not DICOM")
    shutil.copy(ct, folder / "good.dcm")
    return {
        "empty.dcm": "empty-file",
        "truncated.dcm": "pixel-data-length-mismatch",
        "unknown_vr.dcm": "unknown-vr",
        "no_pixels.dcm": "missing-pixel-data",
        "charset.dcm": "undecodable-character-set",
    }


def test_malformed_inputs_are_quarantined_and_the_batch_goes_on(
    tmp_path: Path, test_key: bytes
) -> None:
    study = tmp_path / "in"
    expected = make_malformed(study)
    before = tree_hashes(study)
    out = tmp_path / "out"

    summary = anonymize_study(study, out, key=test_key, options=KEEP)

    assert tree_hashes(study) == before
    assert summary.exit_code == 1
    assert summary.written == 1 and summary.non_dicom == 1
    assert summary.quarantined == 6  # the five above plus random.dcm
    assert summary.quarantine == tmp_path / "out.quarantine"
    notes = {
        json.loads(p.read_text())["input_path_hash"]: json.loads(p.read_text())["reason"]
        for p in summary.quarantine.glob("*.reason.json")
    }
    records = read_audit_log(summary.audit_log)
    assert len(records) == len(before)  # nothing lost
    from cadp_med.io._hashing import path_hash

    for name, reason in expected.items():
        digest = path_hash(study / name)
        assert notes[digest].split(":")[0] == reason, name
        copy = summary.quarantine / f"{digest[:16]}.dcm"
        assert copy.read_bytes() == (study / name).read_bytes()
        [record] = [r for r in records if r["input_path_hash"] == digest]
        assert record["status"] == "quarantined" and record["reason"] == reason
    assert sum(summary.quarantine_reasons.values()) == 6
    assert "CompressedSamples" not in summary.audit_log.read_text()
    assert "CompressedSamples" not in "".join(
        p.read_text() for p in summary.quarantine.glob("*.json")
    )


TRANSFER_SYNTAX_FILES = [
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_padded.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
    "emri_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "SC_rgb_rle_2frame.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "image_dfl.dcm",
    "JPEG-LL.dcm",
    "US1_J2KI.dcm",
    "SC_rgb_expb_2frame.dcm",
]


@pytest.mark.parametrize("name", TRANSFER_SYNTAX_FILES)
def test_keep_decodes_to_the_same_array(tmp_path: Path, test_key: bytes, name: str) -> None:
    source = pydicom_file(name)
    study = tmp_path / "in"
    study.mkdir()
    shutil.copy(source, study / "x")
    # Secondary capture and ultrasound are flagged as probably burned-in.
    options = AnonymizeOptions(pixels="keep", allow_burned_in=True)
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=options)
    assert summary.written == 1, summary.quarantine_reasons
    [written] = outputs(summary.output)
    original = pydicom.dcmread(source)
    result = pydicom.dcmread(written)
    assert np.array_equal(result.pixel_array, original.pixel_array)
    syntax = original.file_meta.TransferSyntaxUID
    if syntax.is_compressed and not syntax.is_deflated:
        assert result.file_meta.TransferSyntaxUID == syntax
    else:
        assert result.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_blank_zeroes_pixels_and_keeps_geometry(tmp_path: Path, test_key: bytes) -> None:
    study = tmp_path / "in"
    study.mkdir()
    shutil.copy(pydicom_file("emri_small_RLE.dcm"), study / "multi")
    shutil.copy(pydicom_file("SC_rgb_jpeg_dcmtk.dcm"), study / "rgb")
    options = AnonymizeOptions(pixels="blank", allow_burned_in=True)
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=options)
    assert summary.written == 2
    shapes = set()
    for path in outputs(summary.output):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert not ds.pixel_array.any()
        shapes.add(ds.pixel_array.shape)
    assert shapes == {(10, 64, 64), (100, 100, 3)}


def test_privatize_needs_a_pixel_stage(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("ct_small")
    with pytest.raises(ConfigError, match="--pixels keep"):
        anonymize_study(study, tmp_path / "out", key=test_key)
    assert not (tmp_path / "out").exists()


def test_privatize_calls_the_pixel_stage(tmp_path: Path, sample_study, test_key: bytes) -> None:
    calls = []

    def stage(original, result):
        calls.append(original.SOPInstanceUID)
        result.dataset.PixelData = bytes(len(original.PixelData))
        return result.dataset

    study = sample_study("ct_small")
    options = AnonymizeOptions(pixels="privatize", pixel_stage=stage)
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=options)
    assert summary.written == 1 and len(calls) == 1
    assert not pydicom.dcmread(outputs(summary.output)[0]).pixel_array.any()


def test_non_image_objects_get_header_deid_only(tmp_path: Path, test_key: bytes) -> None:
    study = tmp_path / "in"
    study.mkdir()
    shutil.copy(pydicom_file("test-SR.dcm"), study / "sr")
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=KEEP)
    assert summary.written == 1
    ds = pydicom.dcmread(outputs(summary.output)[0])
    assert "PixelData" not in ds and ds.PatientIdentityRemoved == "YES"


def test_burned_in_images_are_quarantined_unless_allowed(tmp_path: Path, test_key: bytes) -> None:
    study = tmp_path / "in"
    study.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    ds.save_as(study / "burned.dcm")
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=KEEP)
    assert summary.quarantine_reasons == {"burned-in": 1}
    [record] = read_audit_log(summary.audit_log)
    assert record["status"] == "burned-in-quarantined"

    allowed = AnonymizeOptions(pixels="keep", allow_burned_in=True)
    summary = anonymize_study(study, tmp_path / "out2", key=test_key, options=allowed)
    assert summary.written == 1 and summary.warnings >= 1
    [record] = read_audit_log(summary.audit_log)
    assert any("burned-in" in warning for warning in record["warnings"])


def test_workers_give_the_same_result(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("multi_series")
    make_malformed(study / "broken")
    one = anonymize_study(study, tmp_path / "one", key=test_key, options=KEEP)
    two = anonymize_study(
        study, tmp_path / "two", key=test_key, options=AnonymizeOptions(pixels="keep", workers=2)
    )
    assert one.to_dict() | {"output": "", "quarantine": "", "audit_log": ""} == two.to_dict() | {
        "output": "",
        "quarantine": "",
        "audit_log": "",
    }
    assert tree_hashes(one.output).keys() == tree_hashes(two.output).keys()
    for path in outputs(one.output):
        a = pydicom.dcmread(path)
        b = pydicom.dcmread(two.output / path.relative_to(one.output))
        # Contributing Equipment carries the time of de-identification.
        del a.ContributingEquipmentSequence, b.ContributingEquipmentSequence
        assert a == b, path.name


def test_a_stopped_run_with_workers_leaves_only_audited_files(
    tmp_path: Path, test_key: bytes
) -> None:
    # Workers take several files per task; a run stopped after five outcomes must
    # remove the temporary files of every outcome it did not take, including the rest
    # of a task it had started on, and audit exactly what is in place.
    study = tmp_path / "in"
    study.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    for index in range(120):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.78.{index + 1}"
        ds.save_as(study / f"{index:04d}.dcm", enforce_file_format=True)
    taken = []

    def stop() -> bool:
        taken.append(1)
        return len(taken) >= 5

    out = tmp_path / "out"
    options = AnonymizeOptions(pixels="keep", workers=2)
    summary = anonymize_study(study, out, key=test_key, options=options, stop=stop)
    assert summary.interrupted and summary.written == 5
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    in_place = sorted(str(p.relative_to(out)) for p in outputs(out))
    assert in_place == sorted(str(r["output"]) for r in read_audit_log(summary.audit_log))
    again = anonymize_study(study, out, key=test_key, options=options)
    assert (again.written, again.skipped_done) == (115, 5)


@pytest.mark.parametrize("where", ["out inside in", "quarantine inside out", "same"])
def test_bad_locations_are_config_errors(
    tmp_path: Path, sample_study, test_key: bytes, where: str
) -> None:
    study = sample_study("ct_small")
    options = KEEP
    out = tmp_path / "out"
    if where == "out inside in":
        out = study / "out"
    elif where == "same":
        out = study
    else:
        options = AnonymizeOptions(pixels="keep", quarantine=out / "q")
    with pytest.raises(ConfigError):
        anonymize_study(study, out, key=test_key, options=options)


def test_mapping_export_and_reuse(tmp_path: Path, sample_study, test_key: bytes) -> None:
    study = sample_study("ct_small")
    mapping = tmp_path / "map.csv"
    options = AnonymizeOptions(pixels="keep", export_mapping_csv=mapping)
    first = anonymize_study(study, tmp_path / "a", key=test_key, options=options)
    assert mapping.is_file() and oct(mapping.stat().st_mode & 0o777) == "0o600"
    # With another key, the imported mapping gives the same pseudonyms.
    reuse = AnonymizeOptions(pixels="keep", uid_map_csv=mapping)
    second = anonymize_study(study, tmp_path / "b", key=b"other-key", options=reuse)
    rel = [p.relative_to(first.output) for p in outputs(first.output)]
    assert rel == [p.relative_to(second.output) for p in outputs(second.output)]


def test_unexpected_errors_quarantine_one_file_only(
    tmp_path: Path, sample_study, test_key: bytes
) -> None:
    study = sample_study("multi_series")

    def flaky_stage(original, result):
        if original.SeriesNumber == 4 and original.Modality == "CT":
            raise RuntimeError(f"boom {original.PatientName}")
        return result.dataset

    options = AnonymizeOptions(pixels="privatize", pixel_stage=flaky_stage)
    summary = anonymize_study(study, tmp_path / "out", key=test_key, options=options)
    assert summary.quarantine_reasons == {"unexpected-error": 2}
    assert summary.written == 22 and summary.exit_code == 1
    assert "Doe" not in summary.audit_log.read_text()
