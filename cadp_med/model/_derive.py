"""Condition values derived from DICOM headers, with mapping tables from the schema JSON.

Values read here may be PHI: they are mapped to vocabulary entries and never logged or
quoted in errors.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cadp_med.model._region import body_region

if TYPE_CHECKING:
    from cadp_med.model.conditions import ConditionSchema


@functools.lru_cache(maxsize=1)
def default_schema_json() -> dict[str, Any]:
    text = importlib.resources.files("cadp_med.model").joinpath("schemas/default.json").read_text()
    return json.loads(text)


# -- derivations -------------------------------------------------------------------------
def modality_contrast(
    modality: Any, contrast: Any, tables: Mapping[str, Any], vocabulary: Sequence[str] = ()
) -> str | None:
    """Combine a modality ("MR") and a contrast ("MR-T1" or "T1") into a vocabulary value.

    A contrast or modality already in ``vocabulary`` (e.g. "MR-T2", as
    ``cadp_med.imaging`` labels slices) is returned as is.  MR without a
    recognised contrast becomes "MR-other"; an unmapped modality becomes "other"; a missing
    modality gives ``None`` (the unknown slot).
    """
    if modality is None or str(modality).strip() == "":
        return None
    text = str(modality).strip()
    for candidate in (contrast, text):  # e.g. contrast "MR-T1" from cadp_med.imaging
        for value in vocabulary:
            if candidate is not None and str(candidate).strip().lower() == value.lower():
                return value
    mapped = tables.get("modality_map", {}).get(text.upper(), "other")
    if mapped != "MR":
        return mapped
    if contrast is not None:
        key = str(contrast).strip().upper()
        return str(tables.get("mr_contrast_map", {}).get(key, "MR-other"))
    return "MR-other"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rule_matches(ds: Any, rule: Mapping[str, Any]) -> bool:
    if "keyword" in rule:
        raw = ds.get(rule["keyword"], None)
        value = getattr(raw, "value", raw)
        if value is None or value == "":
            return False
        if "any_of" in rule:
            # pydicom's MultiValue is a sequence but neither list nor tuple.
            values = [value] if isinstance(value, str | bytes | int | float) else list(value)
            wanted = {str(v).upper() for v in rule["any_of"]}
            return any(str(v).strip().upper() in wanted for v in values)
        number = _number(value)
        return number is not None and number > float(rule["greater_than"])
    tr, te = _number(ds.get("RepetitionTime")), _number(ds.get("EchoTime"))
    if tr is None or te is None:
        return False
    checks = (
        ("tr_below", tr, lambda v, limit: v < limit),
        ("tr_at_least", tr, lambda v, limit: v >= limit),
        ("te_below", te, lambda v, limit: v < limit),
        ("te_at_least", te, lambda v, limit: v >= limit),
    )
    return all(test(v, float(rule[key])) for key, v, test in checks if key in rule)


def mr_contrast_from_dataset(ds: Any, tables: Mapping[str, Any]) -> str:
    """Contrast of an MR dataset ("MR-T1", "MR-T2", "MR-PD", "MR-DWI", "MR-EPI", "MR-other").

    Rules come from ``tables["mr_contrast_rules"]`` (see the default schema JSON); they
    mirror ``cadp_med.imaging``'s DICOM reader.  Header values are never logged.
    """
    for rule in tables.get("mr_contrast_rules", {}).get("rules", []):
        if _rule_matches(ds, rule):
            return str(rule["contrast"])
    return "MR-other"


def plane_from_orientation(iop: Sequence[float] | None, oblique_below: float = 0.8) -> str | None:
    """Anatomical plane of a slice from its ImageOrientationPatient (row and column cosines).

    The normal is row x column; its dominant patient axis gives sagittal (x), coronal (y)
    or axial (z).  When the dominant component is below ``oblique_below`` the slice is
    oblique.  ``None`` when the orientation is missing or degenerate.
    """
    if iop is None or len(iop) != 6:
        return None
    try:
        row = np.asarray([float(v) for v in iop[:3]])
        col = np.asarray([float(v) for v in iop[3:]])
    except (TypeError, ValueError):
        return None
    normal = np.cross(row, col)
    length = float(np.linalg.norm(normal))
    if not math.isfinite(length) or length < 1e-6:
        return None
    normal = np.abs(normal / length)
    axis = int(np.argmax(normal))
    if normal[axis] < oblique_below:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


# LPS x points left and y posterior: flip them so positions grow towards R, A and S.
_RAS_SIGN = np.array([-1.0, -1.0, 1.0])


def position_along_normal(ds: Any) -> float | None:
    """Slice position (mm) along the dominant axis of its normal, pointing to R, A or S.

    Comparable between the slices of one series; ``None`` without ImagePositionPatient or
    ImageOrientationPatient.
    """
    iop, ipp = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient")
    if iop is None or ipp is None or len(iop) != 6 or len(ipp) != 3:
        return None
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    axis = int(np.argmax(np.abs(normal)))
    if abs(normal[axis]) < 1e-6:
        return None
    # Orient the normal so its dominant component points right, anterior or superior.
    direction = normal * np.sign(normal[axis]) * _RAS_SIGN[axis]
    return float(np.dot(direction, np.asarray(ipp, float)))


def slice_rank_position(own: float | None, series_positions: Sequence[float]) -> float | None:
    """Rank of ``own`` among ``series_positions`` divided by ``n - 1`` (0.5 for one slice)."""
    distinct = sorted({round(float(p), 4) for p in series_positions})
    if len(distinct) <= 1:
        return 0.5
    if own is None:
        return None
    rank = sum(1 for p in distinct if p < round(own, 4))
    return rank / (len(distinct) - 1)


def age_band(age: Any, tables: Mapping[str, Any]) -> str | None:
    """Band label for a DICOM AS value ("045Y", "006M", "010W", "003D"), or None."""
    if age is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY]?)\s*", str(age).upper())
    if not match:
        return None
    number, unit = int(match.group(1)), match.group(2) or "Y"
    years = number / {"D": 365.25, "W": 52.18, "M": 12.0, "Y": 1.0}[unit]
    for band in tables.get("age_bands", []):
        if band["min_years"] <= years < band["max_years"] + 1:
            return str(band["label"])
    return None


def metadata_from_dataset(
    ds: Any,
    *,
    series_positions: Sequence[float] | None = None,
    schema: ConditionSchema | None = None,
) -> dict[str, Any]:
    """The condition metadata of one DICOM slice.

    Parameters
    ----------
    ds
        A pydicom ``Dataset`` (pixel data not needed).
    series_positions
        :func:`position_along_normal` of every slice in the series; ``slice_pos`` is this
        slice's rank among them divided by ``n - 1``, as ``cadp_med.imaging`` computes it.
        ``None`` or a single slice gives 0.5.
    schema
        Schema whose ``tables`` and ``dicom:`` fields to use; the default schema otherwise.

    Returns
    -------
    dict
        Keys ``modality``, ``contrast``, ``plane``, ``slice_pos``, ``species``,
        ``age_band``, ``view``, ``body_part``, ``region`` (a label of
        :func:`cadp_med.model._region.body_region`), plus one per ``dicom:<Keyword>``
        field of ``schema``.  Absent information is ``None``.
    """
    tables = schema.tables if schema is not None and schema.tables else None
    tables = tables or default_schema_json()["tables"]
    modality = ds.get("Modality")
    modality = str(modality).strip() or None if modality is not None else None
    # Same labels as cadp_med.imaging: "CT", an MR contrast, else the modality code.
    contrast = mr_contrast_from_dataset(ds, tables) if modality == "MR" else modality
    plane = plane_from_orientation(
        ds.get("ImageOrientationPatient"), tables.get("plane", {}).get("oblique_below", 0.8)
    )
    slice_pos: float | None = 0.5
    if series_positions is not None:
        slice_pos = slice_rank_position(position_along_normal(ds), series_positions)
    species = ds.get("PatientSpeciesDescription") or tables.get("species_default_dicom")

    def text(keyword: str) -> str | None:
        value = ds.get(keyword)
        return str(value).strip() or None if value is not None else None

    out: dict[str, Any] = {
        "modality": modality,
        "contrast": contrast,
        "plane": plane,
        "slice_pos": slice_pos,
        "species": str(species) if species else None,
        "age_band": age_band(ds.get("PatientAge"), tables),
        "view": text("ViewPosition"),
        "body_part": text("BodyPartExamined"),
        "region": body_region(ds, tables.get("region")),
    }
    for fld in schema.fields if schema is not None else ():
        if fld.source.startswith("dicom:") and fld.name not in out:
            out[fld.name] = text(fld.source_key)
    return out
