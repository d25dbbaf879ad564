"""Options, stored-value encoding, privatized UIDs, model-grid geometry and refusals."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.errors import ConfigError
from cadp_med.pixels import PixelOptions, PixelStage, privatized_series_uid, read_parameters
from cadp_med.pixels._codec import encode_frames, stored_range
from cadp_med.pixels._provenance import method_value
from tests.conftest import SAMPLE_DATA, TEST_KEY, pydicom_data_file


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 0.0}, "eps must be > 0"),
        ({"epsilon": math.nan}, "eps must be > 0"),
        ({"mechanism": "gaussian"}, "needs --delta"),
        ({"delta": 1e-5}, "pure eps-DP"),
        ({"release": "some"}, "release must be one of"),
        ({"epsilon": math.inf, "budget": "study"}, "finite eps"),
        ({"clip": -1.0}, "clip must be"),
        ({"output_format": "nifti"}, "NIfTI output is set with NiftiOptions"),
        ({"temperature": 1.5}, "temperature must be in"),
    ],
)
def test_options_refuse_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PixelOptions(**kwargs)  # type: ignore[arg-type]


def test_inf_is_labelled_not_dp() -> None:
    options = PixelOptions(epsilon=math.inf)
    assert not options.is_dp and options.label() == "eps=inf NOT DP"


def test_missing_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a model"):
        PixelStage(PixelOptions(model=tmp_path / "absent.safetensors"))


def test_stored_values_are_clipped_to_bits_stored() -> None:
    ds = pydicom.dcmread(SAMPLE_DATA / "ct_small" / "CT_small.dcm", stop_before_pixels=True)
    ds.BitsStored, ds.PixelRepresentation, ds.RescaleSlope, ds.RescaleIntercept = 12, 1, 2, -10
    low, high = stored_range(12, True)
    frame = np.array([[-1e9, 1e9], [-10.0, 0.0]])
    data, header = encode_frames([frame], ds, colour=False)
    values = np.frombuffer(data, dtype="<i2").reshape(2, 2)
    assert values.tolist() == [[low, high], [0, 5]]
    assert header == {"Rows": 2, "Columns": 2}


def test_method_value_fits_lo() -> None:
    params = {
        "mechanism": "gaussian",
        "epsilon_slice": 1234.56789,
        "clip": 123456.789,
        "norm": "L2",
        "released_dims": 16384,
        "dp": True,
    }
    assert len(method_value(params)) <= 64
    assert "NOT DP" in method_value({**params, "dp": False, "epsilon_slice": "inf"})


def test_privatized_series_uid_is_keyed_and_stable() -> None:
    a = privatized_series_uid(b"k1", "2.25.1")
    assert a == privatized_series_uid(b"k1", "2.25.1")
    assert a != privatized_series_uid(b"k2", "2.25.1") and a != "2.25.1"
    assert a.startswith("2.25.") and len(a) <= 64


def _run(src: Path, out: Path, model: Path, pixels: str = "privatize", **kw: object):  # type: ignore[no-untyped-def]
    # ct_small (a spine CT) and the other inputs here are outside the packaged model's
    # domains; these tests are about the pipeline, so they let them through.
    kw.setdefault("allow_outside_domain", True)
    stage = (
        PixelStage(PixelOptions(model=model, device="cpu", **kw)) if pixels == "privatize" else None
    )  # type: ignore[arg-type]
    options = AnonymizeOptions(pixels=pixels, pixel_stage=stage)  # type: ignore[arg-type]
    return anonymize_study(src, out, key=TEST_KEY.encode(), options=options)


def test_series_uid_differs_from_header_only_run(tmp_path: Path, model_path: Path) -> None:
    src = SAMPLE_DATA / "ct_small"
    _run(src, tmp_path / "keep", model_path, pixels="keep")
    _run(src, tmp_path / "priv", model_path)
    _run(src, tmp_path / "priv2", model_path)
    keep = pydicom.dcmread(next((tmp_path / "keep").rglob("*.dcm")))
    priv = pydicom.dcmread(next((tmp_path / "priv").rglob("*.dcm")))
    again = pydicom.dcmread(next((tmp_path / "priv2").rglob("*.dcm")))
    assert priv.SeriesInstanceUID == privatized_series_uid(
        TEST_KEY.encode(), keep.SeriesInstanceUID
    )
    assert priv.SeriesInstanceUID == again.SeriesInstanceUID
    assert priv.SOPInstanceUID == keep.SOPInstanceUID


def test_seg_references_point_at_the_privatized_series(tmp_path: Path, model_path: Path) -> None:
    """A SEG that references a series of the same run refers to its privatized UID."""
    src = tmp_path / "in"
    src.mkdir()
    ct = pydicom.dcmread(SAMPLE_DATA / "ct_small" / "CT_small.dcm")
    seg = pydicom.dcmread(pydicom_data_file("liver.dcm"))
    seg.ReferencedSeriesSequence[0].SeriesInstanceUID = ct.SeriesInstanceUID
    seg.StudyInstanceUID = ct.StudyInstanceUID
    seg.save_as(src / "seg.dcm")
    shutil.copy(SAMPLE_DATA / "ct_small" / "CT_small.dcm", src / "ct.dcm")
    summary = _run(src, tmp_path / "out", model_path)
    assert summary.written == 2
    outputs = [pydicom.dcmread(p) for p in (tmp_path / "out").rglob("*.dcm")]
    image = next(d for d in outputs if d.Modality == "CT")
    mask = next(d for d in outputs if d.Modality == "SEG")
    assert mask.ReferencedSeriesSequence[0].SeriesInstanceUID == image.SeriesInstanceUID
    assert mask.PixelData == seg.PixelData  # masks are left as they are


def test_model_grid_output_and_seg_refusal(tmp_path: Path, model_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLE_DATA / "ct_small" / "CT_small.dcm", src / "ct.dcm")
    shutil.copy(pydicom_data_file("liver.dcm"), src / "seg.dcm")
    summary = _run(src, tmp_path / "out", model_path, output_grid="model")
    assert summary.quarantine_reasons == {"seg-on-model-grid": 1}
    out = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    original = pydicom.dcmread(src / "ct.dcm")
    size = int(out.Rows)
    assert out.Columns == size
    fov = float(original.PixelSpacing[0]) * int(original.Rows)
    assert float(out.PixelSpacing[0]) == pytest.approx(fov / size, rel=1e-5)
    # The first pixel centre sits half a grid pixel inside the (unpadded, square) field.
    shift = float(out.PixelSpacing[0]) / 2 - float(original.PixelSpacing[0]) / 2
    expected = np.asarray(original.ImagePositionPatient, float) + shift * (
        np.asarray(original.ImageOrientationPatient[:3], float)
        + np.asarray(original.ImageOrientationPatient[3:], float)
    )
    assert np.allclose(np.asarray(out.ImagePositionPatient, float), expected, atol=1e-4)
    assert read_parameters(out)["output_grid"] == "model"


def test_study_budget_splits_eps(tmp_path: Path, model_path: Path) -> None:
    summary = _run(SAMPLE_DATA / "multi_series", tmp_path / "out", model_path, budget="study")
    assert summary.exit_code == 0
    params = [read_parameters(pydicom.dcmread(p)) for p in (tmp_path / "out").rglob("*.dcm")]
    by_study: dict[int, list[dict[str, object]]] = {}
    for p in params:
        by_study.setdefault(int(p["study_slices"]), []).append(p)  # type: ignore[call-overload]
    for n, items in by_study.items():
        for p in items:
            assert p["epsilon_slice"] == pytest.approx(2.0 / n)
            assert p["epsilon_study"] == pytest.approx(2.0)


def test_burned_in_us_passes_under_privatize(tmp_path: Path, model_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(pydicom_data_file("US1_UNCR.dcm"), src / "us.dcm")
    keep = _run(src, tmp_path / "keep", model_path, pixels="keep")
    assert keep.quarantine_reasons == {"burned-in": 1}
    summary = _run(src, tmp_path / "out", model_path)
    assert summary.written == 1
