"""Condition schemas: encoding, unknown handling, validation and DICOM derivations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from cadp_med.errors import ModelError
from cadp_med.model.conditions import (
    ConditionSchema,
    age_band,
    default_schema,
    merge_sidecar,
    metadata_from_dataset,
    plane_from_orientation,
    position_along_normal,
    read_csv_sidecar,
)

SAGITTAL_IOP = [0, 1, 0, 0, 0, -1]
CORONAL_IOP = [1, 0, 0, 0, 0, -1]


@pytest.fixture()
def schema() -> ConditionSchema:
    return default_schema()


def test_default_schema_layout(schema: ConditionSchema) -> None:
    assert schema.names == ["modality", "plane", "slice_pos"]
    # 10 modalities + unknown, 4 planes + unknown, value + missing flag.
    assert schema.dim == 11 + 5 + 2
    assert schema.fields[0].required and not schema.fields[1].required


def test_encode_known_values(schema: ConditionSchema) -> None:
    vec = schema.encode({"modality": "MR", "contrast": "T2", "plane": "coronal", "slice_pos": 0.25})
    assert vec.dtype == np.float32 and vec.shape == (18,)
    assert vec[2] == 1.0 and vec[:11].sum() == 1.0  # MR-T2
    assert vec[11 + 1] == 1.0 and vec[11:16].sum() == 1.0  # coronal
    assert vec[16] == pytest.approx(0.25) and vec[17] == 0.0
    assert schema.decode(vec) == {"modality": "MR-T2", "plane": "coronal", "slice_pos": 0.25}


def test_unknown_and_missing_map_to_unknown_slot(schema: ConditionSchema) -> None:
    vec = schema.encode({"plane": "diagonal"})
    assert vec[10] == 1.0 and vec[:11].sum() == 1.0  # modality missing → unknown slot
    assert vec[15] == 1.0 and vec[11:16].sum() == 1.0  # unknown plane → unknown slot
    assert vec[16] == 0.5 and vec[17] == 1.0  # slice_pos missing → 0.5 + flag
    assert schema.decode(vec) == {"modality": "unknown", "plane": "unknown", "slice_pos": None}


def test_modality_mapping_from_json_tables(schema: ConditionSchema) -> None:
    decode = schema.decode
    assert decode(schema.encode({"modality": "MR"}))["modality"] == "MR-other"
    assert decode(schema.encode({"modality": "mr", "contrast": "t1w"}))["modality"] == "MR-T1"
    assert decode(schema.encode({"modality": "DX"}))["modality"] == "CR/DX"
    assert decode(schema.encode({"modality": "PT"}))["modality"] == "other"
    assert decode(schema.encode({"modality": "MR-DWI"}))["modality"] == "MR-DWI"


def test_number_is_clipped_and_garbage_is_missing(schema: ConditionSchema) -> None:
    assert schema.encode({"slice_pos": 7.0})[16:].tolist() == [1.0, 0.0]
    assert schema.encode({"slice_pos": "n/a"})[16:].tolist() == [0.5, 1.0]
    assert schema.encode({"slice_pos": float("nan")})[16:].tolist() == [0.5, 1.0]


def test_encode_is_deterministic(schema: ConditionSchema) -> None:
    meta = {"modality": "CT", "plane": "axial", "slice_pos": 0.3}
    assert np.array_equal(schema.encode(meta), schema.encode(dict(meta)))
    batch = schema.encode_batch([meta, meta])
    assert batch.shape == (2, 18) and np.array_equal(batch[0], batch[1])


def test_required_unknown_raises_without_quoting_value(schema: ConditionSchema) -> None:
    schema.validate_encodable({"modality": "CT"})  # plane may be unknown: not required
    with pytest.raises(ModelError, match="modality") as info:
        schema.validate_encodable({"plane": "axial"})
    secret = "SMITH^JOHN"
    with pytest.raises(ModelError) as info:
        schema.validate_encodable({"modality": None, "plane": secret})
    assert secret not in str(info.value)


def test_schema_roundtrip_json(tmp_path: Path, schema: ConditionSchema) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema.to_dict()))
    again = ConditionSchema.from_json(path)
    assert again == schema or again.to_dict() == schema.to_dict()
    assert again.dim == schema.dim


def test_bad_schema_rejected() -> None:
    with pytest.raises(ModelError, match="encoding"):
        ConditionSchema.from_dict({"fields": [{"name": "a", "source": "meta:a", "encoding": "x"}]})
    with pytest.raises(ModelError, match="source"):
        ConditionSchema.from_dict(
            {
                "fields": [
                    {"name": "a", "source": "file:a", "encoding": "onehot", "vocabulary": ["x"]}
                ]
            }
        )
    with pytest.raises(ModelError, match="unknown condition field"):
        default_schema(["modality", "weight"])


def test_selected_default_fields() -> None:
    schema = default_schema(["plane", "species"])
    assert schema.names == ["plane", "species"]
    assert schema.decode(schema.encode({"plane": "axial", "species": "macaque"})) == {
        "plane": "axial",
        "species": "macaque",
    }


def test_plane_from_real_and_built_orientations() -> None:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    assert plane_from_orientation(ct.ImageOrientationPatient) == "axial"
    assert plane_from_orientation(SAGITTAL_IOP) == "sagittal"
    assert plane_from_orientation(CORONAL_IOP) == "coronal"
    tilted = [1, 0, 0, 0, np.cos(0.8), np.sin(0.8)]  # normal 46° off the z axis
    assert plane_from_orientation(tilted) == "oblique"
    assert plane_from_orientation(None) is None
    assert plane_from_orientation([0, 0, 0, 0, 0, 0]) is None


def test_metadata_from_real_datasets() -> None:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    meta = metadata_from_dataset(ct)
    assert meta["modality"] == "CT" and meta["plane"] == "axial" and meta["slice_pos"] == 0.5
    assert meta["age_band"] == "0-17"  # "000Y"
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr_meta = metadata_from_dataset(mr)
    assert mr_meta["contrast"] == "MR-T2"  # TR 4000 ms, TE 240 ms
    assert default_schema().decode(default_schema().encode(mr_meta))["modality"] == "MR-T2"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"RepetitionTime": 500, "EchoTime": 15}, "MR-T1"),
        ({"RepetitionTime": 2500, "EchoTime": 20}, "MR-PD"),
        ({"RepetitionTime": 1200, "EchoTime": 50}, "MR-other"),
        ({"ScanningSequence": ["SE", "EP"]}, "MR-EPI"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "DIFFUSION"]}, "MR-DWI"),
        ({"RepetitionTime": None}, "MR-other"),
    ],
)
def test_mr_contrast_rules_from_json(changes: dict[str, object], expected: str) -> None:
    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    for keyword, value in changes.items():
        if value is None:
            delattr(mr, keyword)
        else:
            setattr(mr, keyword, value)
    assert metadata_from_dataset(mr)["contrast"] == expected


def test_mr_contrast_agrees_with_imaging_reader() -> None:
    dicom_reader = pytest.importorskip("cadp_med.imaging._dicom")
    for changes in ({}, {"RepetitionTime": 500, "EchoTime": 15}, {"ScanningSequence": "EP"}):
        mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
        for keyword, value in changes.items():
            setattr(mr, keyword, value)
        assert metadata_from_dataset(mr)["contrast"] == dicom_reader._contrast(mr, "MR")


def test_slice_pos_is_rank_along_series() -> None:
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    own = position_along_normal(ct)
    assert own == pytest.approx(-75.699997)  # axial: z, pointing superior
    positions = [own - 10.0, own, own + 30.0]
    assert metadata_from_dataset(ct, series_positions=positions)["slice_pos"] == 0.5
    positions = [own - 10.0, own - 5.0, own]
    assert metadata_from_dataset(ct, series_positions=positions)["slice_pos"] == 1.0
    assert metadata_from_dataset(ct, series_positions=[own])["slice_pos"] == 0.5


def test_age_bands() -> None:
    tables = default_schema().tables
    assert age_band("045Y", tables) == "40-64"
    assert age_band("018Y", tables) == "18-39"
    assert age_band("006M", tables) == "0-17"
    assert age_band("070Y", tables) == "65+"
    assert age_band("garbage", tables) is None


def test_csv_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "side.csv"
    path.write_text("id,grade\nP1,high\nP2,low\n")
    schema = ConditionSchema.from_dict(
        {
            "fields": [
                {
                    "name": "grade",
                    "source": "csv:grade",
                    "encoding": "onehot",
                    "vocabulary": ["low", "high"],
                }
            ]
        }
    )
    table = read_csv_sidecar(path)
    assert schema.decode(schema.encode(merge_sidecar({}, table, "P1"))) == {"grade": "high"}
    assert schema.decode(schema.encode(merge_sidecar({}, table, "P9"))) == {"grade": "unknown"}
