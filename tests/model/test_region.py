"""The ``region`` condition: body region from codes, Body Part Examined and descriptions."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cadp_med.model._region import body_region, region_from_text, region_tables
from cadp_med.model.conditions import default_schema, metadata_from_dataset
from tests.conftest import PYDICOM_TEST_FILES, SAMPLE_DATA

DEID_DATA = pytest.importorskip("deid_data")
DEID_HUMANS = Path(DEID_DATA.__file__).parent / "data" / "humans"
DEID_ANIMALS = Path(DEID_DATA.__file__).parent / "data" / "animals"


def _header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def _ct_small() -> Dataset:
    """pydicom's CT_small: a thoracic vertebra whose header names no region at all."""
    return _header(SAMPLE_DATA / "ct_small" / "CT_small.dcm")


def _code(scheme: str, value: str, meaning: str) -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


@pytest.mark.parametrize(
    ("path", "region"),
    [
        (PYDICOM_TEST_FILES / "J2K_pixelrep_mismatch.dcm", "head"),  # BodyPartExamined HEAD
        (PYDICOM_TEST_FILES / "examples_overlay.dcm", "abdomen"),  # ABDOMEN
        (PYDICOM_TEST_FILES / "JPEG2000.dcm", "whole-body"),  # "WHOLE BODY", with a space
        (PYDICOM_TEST_FILES / "dicomdirtests/77654033/CR1/6154", "spine"),  # CSPINE
        (PYDICOM_TEST_FILES / "dicomdirtests/77654033/CT2/17106", "head"),  # HEAD
        (DEID_HUMANS / "ctbrain1.dcm", "head"),
    ],
)
def test_body_part_examined_of_real_files(path: Path, region: str) -> None:
    assert body_region(_header(path)) == region


def test_anatomic_region_code_of_a_real_file() -> None:
    # deid-data's veterinary DX carries (T-D3000, SNM3, "Chest"): the retired SNOMED RT
    # designator, matched as SRT.
    ds = _header(DEID_ANIMALS / "cat.dcm")
    assert ds.AnatomicRegionSequence[0].CodingSchemeDesignator == "SNM3"
    assert body_region(ds) == "chest"


def test_ct_small_has_no_region_evidence() -> None:
    assert body_region(_ct_small()) is None


@pytest.mark.parametrize(
    ("scheme", "value", "region"),
    [
        ("SCT", "122495006", "spine"),  # Thoracic spine, CID 4031
        ("SCT", "12738006", "head"),  # Brain (not in CID 4031, listed as an extra)
        ("SRT", "T-D1100", "head"),  # Head, retired SNOMED RT code
        ("SCT", "416775004", "trunk"),  # Chest, Abdomen and Pelvis
        ("SCT", "76752008", "breast"),
    ],
)
def test_anatomic_region_codes(scheme: str, value: str, region: str) -> None:
    ds = _ct_small()
    ds.AnatomicRegionSequence = _code(scheme, value, "x")
    assert body_region(ds) == region


def test_codes_win_over_body_part_and_descriptions() -> None:
    ds = _ct_small()
    ds.BodyPartExamined = "HEAD"
    ds.StudyDescription = "MRI BRAIN"
    ds.AnatomicRegionSequence = _code("SCT", "122495006", "Thoracic spine")
    assert body_region(ds) == "spine"
    del ds.AnatomicRegionSequence
    assert body_region(ds) == "head"
    # Case-insensitive (a sidecar or a lenient writer may not follow the CS rules).
    assert body_region({"BodyPartExamined": "tspine"}) == "spine"


def test_unknown_code_falls_through_to_body_part() -> None:
    ds = _ct_small()
    ds.AnatomicRegionSequence = _code("99LOCAL", "123", "local code")
    ds.BodyPartExamined = "LSPINE"
    assert body_region(ds) == "spine"
    assert body_region({"BodyPartExamined": "L-Spine"}) == "spine"  # hyphen removed


def test_unlisted_body_part_is_other_not_unknown() -> None:
    ds = _ct_small()
    ds.BodyPartExamined = "SOMEWHERE"
    assert body_region(ds) == "other"


@pytest.mark.parametrize(
    ("keyword", "text", "region"),
    [
        ("StudyDescription", "CT THORACIC SPINE W/O", "spine"),  # chest + spine words
        ("StudyDescription", "MRI Brain w/wo contrast", "head"),
        ("SeriesDescription", "T1_SAG_C-SPINE", "spine"),  # split at _ and -
        ("ProtocolName", "CT CHEST ABD PELVIS", "trunk"),
        ("SeriesDescription", "Head and neck angio", "head-neck"),
        ("StudyDescription", "knee left", "lower-limb"),
        ("StudyDescription", "BRAIN AND KNEE", "other"),  # unresolved combination
        ("StudyDescription", "ROUTINE 5MM", None),  # no region word
        ("StudyDescription", "HEADACHE", None),  # whole words only
    ],
)
def test_descriptions(keyword: str, text: str, region: str | None) -> None:
    ds = _ct_small()
    setattr(ds, keyword, text)
    assert body_region(ds) == region


def test_real_descriptions_of_the_multi_series_sample() -> None:
    study = SAMPLE_DATA / "multi_series"
    assert body_region(_header(study / "98892003/MR2/4950")) == "head"  # "Brain"
    assert body_region(_header(study / "98892003/MR1/15820")) == "neck"  # "Carotids"
    assert body_region(_header(study / "98892001/CT5N/2062")) == "chest"  # SmartScore
    assert body_region(_header(study / "98892001/CT2N/6293")) is None  # "Scout"


def test_a_sidecar_mapping_works_like_a_dataset() -> None:
    assert body_region({"BodyPartExamined": "BRAIN"}) == "head"
    assert body_region({"SeriesDescription": "t2_tse_sag_lumbar"}) == "spine"
    assert body_region({"Modality": "MR"}) is None
    assert region_from_text(None) is None


def test_metadata_and_schema_encode_the_region() -> None:
    ds = _ct_small()
    ds.BodyPartExamined = "CHEST"
    schema = default_schema(["modality", "plane", "slice_pos", "region"])
    meta = metadata_from_dataset(ds, schema=schema)
    assert meta["region"] == "chest"
    assert schema.decode(schema.encode(meta))["region"] == "chest"
    assert schema.decode(schema.encode({"modality": "CT"}))["region"] == "unknown"
    # The card of a model with a region records the table it was derived with.
    assert schema.to_dict()["tables"]["region"]["vocabulary"] == list(
        schema.fields[3].vocabulary
    )


def test_region_table_is_consistent() -> None:
    tables = region_tables()
    vocabulary = set(tables["vocabulary"])
    for name in ("anatomic_codes", "body_part_examined", "description_words"):
        assert set(tables[name].values()) <= vocabulary, name
    assert set(tables["description_combinations"].values()) <= vocabulary
    schema_json = json.loads(
        (Path(__file__).parents[2] / "cadp_med/model/schemas/default.json").read_text()
    )
    (field,) = [f for f in schema_json["optional_fields"] if f["name"] == "region"]
    assert field["vocabulary"] == tables["vocabulary"]


def test_the_default_schema_is_unchanged() -> None:
    # The packaged model's weights have cond_dim 18: region stays optional.
    assert default_schema().names == ["modality", "plane", "slice_pos"]
    assert default_schema().dim == 18
