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

if TYPE_CHECKING:
    from cadp_med.model.conditions import ConditionSchema


@functools.lru_cache(maxsize=1)
def default_schema_json() -> dict[str, Any]:
    text = importlib.resources.files("cadp_med.model").joinpath("schemas/default.json").read_text()
    return json.loads(text)


# -- derivations -------------------------------------------------------------------------
def _tokens(text: str) -> list[str]:
    return [t for t in re.split(r"[^A-Z0-9]+", text.upper()) if t]


def modality_contrast(
    modality: Any, contrast: Any, tables: Mapping[str, Any], vocabulary: Sequence[str] = ()
) -> str | None:
    """Combine a modality ("MR") and a contrast ("T1") into a value like "MR-T1".

    A modality already in ``vocabulary`` (e.g. "MR-T2") is returned as is.  MR without a
    recognised contrast becomes "MR-other"; an unmapped modality becomes "other"; a missing
    modality gives ``None`` (the unknown slot).
    """
    if modality is None or str(modality).strip() == "":
        return None
    text = str(modality).strip()
    for value in vocabulary:
        if text.lower() == value.lower():
            return value
    mapped = tables.get("modality_map", {}).get(text.upper(), "other")
    if mapped != "MR":
        return mapped
    if contrast is not None:
        key = str(contrast).strip().upper()
        return tables.get("mr_contrast_map", {}).get(key, "MR-other")
    return "MR-other"


def mr_contrast_from_dataset(ds: Any, tables: Mapping[str, Any]) -> str | None:
    """Contrast hint ("T1", "T2", "PD", "DWI", "EPI") from an MR dataset's header, or None.

    Rules come from ``tables["mr_contrast_hints"]``: a hint matches when a word of the
    attribute starts with it.  Values are never logged.
    """
    for rule in tables.get("mr_contrast_hints", {}).get("rules", []):
        raw = ds.get(rule["keyword"], None)
        value = getattr(raw, "value", raw)
        if value is None:
            continue
        text = " ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
        words = _tokens(text)
        if any(w.startswith(hint.upper()) for hint in rule["contains"] for w in words):
            return str(rule["contrast"])
    if ds.get("DiffusionBValue") not in (None, ""):
        return "DWI"
    return None


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


def position_along_normal(ds: Any) -> float | None:
    """ImagePositionPatient projected on the slice normal (mm), or None when absent."""
    iop, ipp = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient")
    if iop is None or ipp is None or len(iop) != 6 or len(ipp) != 3:
        return None
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    return float(np.dot(normal, np.asarray(ipp, float)))


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
        slice's normalised rank along the normal.  ``None`` or a single slice gives 0.5.
    schema
        Schema whose ``tables`` and ``dicom:`` fields to use; the default schema otherwise.

    Returns
    -------
    dict
        Keys ``modality``, ``contrast``, ``plane``, ``slice_pos``, ``species``,
        ``age_band``, ``view``, ``body_part``, plus one per ``dicom:<Keyword>`` field of
        ``schema``.  Absent information is ``None``.
    """
    tables = schema.tables if schema is not None and schema.tables else None
    tables = tables or default_schema_json()["tables"]
    modality = ds.get("Modality")
    modality = str(modality).strip() or None if modality is not None else None
    contrast = mr_contrast_from_dataset(ds, tables) if modality == "MR" else None
    plane = plane_from_orientation(
        ds.get("ImageOrientationPatient"), tables.get("plane", {}).get("oblique_below", 0.8)
    )
    slice_pos: float | None = 0.5
    if series_positions is not None and len(series_positions) > 1:
        own = position_along_normal(ds)
        lo, hi = float(min(series_positions)), float(max(series_positions))
        if own is None:
            slice_pos = None
        elif hi - lo > 1e-6:
            slice_pos = min(max((own - lo) / (hi - lo), 0.0), 1.0)
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
    }
    for fld in schema.fields if schema is not None else ():
        if fld.source.startswith("dicom:") and fld.name not in out:
            out[fld.name] = text(fld.source_key)
    return out
