"""Declared domains of a model: which (modality/contrast, body region, plane) it was
trained on, and how many training slices each has.

The card's ``domains`` section::

    {"axes": ["modality", "region", "plane"], "min_slices": 10,
     "entries": [{"modality": "CT", "region": "head", "plane": "axial", "slices": 80}, ...],
     "counted_on": "...", "region_source": "..."}

An input is *inside* when a covered entry (at least ``min_slices`` training slices) has
its modality label, region and plane. A model whose covered entries all have region
``"unknown"`` (trained on data without region information) declares no region, and its
entries match any region. A model that declares a region matches only inputs of that
region: an image whose header names no region cannot be shown to be a head, so a head
model refuses it (a spine CT must never be regenerated as a brain silently), and its
unknown-region entries admit nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cadp_med.model._derive import default_schema_json, modality_contrast
from cadp_med.model._region import region_tables

AXES = ("modality", "region", "plane")
MIN_SLICES = 10
UNKNOWN = "unknown"
_PLANES = ("axial", "coronal", "sagittal", "oblique")

def _modality_field(conditions: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], list[str]]:
    """(tables, vocabulary) of the ``derived:modality_contrast`` field of a schema dict."""
    schema = conditions or default_schema_json()
    for fld in schema.get("fields", []):
        if fld.get("source") == "derived:modality_contrast":
            return schema.get("tables", {}), list(fld.get("vocabulary", []))
    default = default_schema_json()
    return default["tables"], list(default["fields"][0]["vocabulary"])


def domain_key(
    metadata: Mapping[str, Any], conditions: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The domain of one slice: ``{"modality", "region", "plane"}`` labels.

    Parameters
    ----------
    metadata
        A slice's metadata (``cadp_med.imaging`` or
        :func:`~cadp_med.model.metadata_from_dataset`): ``modality``, ``contrast``,
        ``region``, ``plane``.
    conditions
        The model card's ``conditions`` (schema dict); its modality vocabulary and tables
        label the modality as the model's condition does. Default: the default schema.
    """
    tables, vocabulary = _modality_field(conditions)
    modality = modality_contrast(
        metadata.get("modality"), metadata.get("contrast"), tables, vocabulary
    )
    region = metadata.get("region")
    plane = metadata.get("plane")
    return {
        "modality": str(modality) if modality else UNKNOWN,
        "region": str(region) if region in region_tables()["vocabulary"] else UNKNOWN,
        "plane": str(plane) if plane in _PLANES else UNKNOWN,
    }


def domain_counts(
    metadata: Sequence[Mapping[str, Any]],
    conditions: Mapping[str, Any] | None = None,
    *,
    min_slices: int = MIN_SLICES,
    counted_on: str = "training slices (held-out slices not counted)",
    region_source: str = "each slice's 'region' label (unknown where absent)",
) -> dict[str, Any]:
    """The card's ``domains`` section for the slices of ``metadata``."""
    tally = Counter(tuple(domain_key(m, conditions)[a] for a in AXES) for m in metadata)
    entries = [
        {**dict(zip(AXES, key, strict=True)), "slices": count}
        for key, count in sorted(tally.items())
    ]
    return {
        "axes": list(AXES),
        "min_slices": int(min_slices),
        "entries": entries,
        "counted_on": counted_on,
        "region_source": region_source,
    }


def covered(domains: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries with at least ``min_slices`` training slices."""
    least = int(domains.get("min_slices", MIN_SLICES))
    return [dict(e) for e in domains.get("entries", []) if int(e.get("slices", 0)) >= least]


def is_inside(domains: Mapping[str, Any], key: Mapping[str, str]) -> bool:
    """Whether ``key`` (see :func:`domain_key`) is one of the covered domains."""
    entries = covered(domains)
    declares_region = any(e["region"] != UNKNOWN for e in entries)
    for entry in entries:
        if entry["modality"] != key["modality"] or entry["plane"] != key["plane"]:
            continue
        if not declares_region or entry["region"] == key["region"] != UNKNOWN:
            return True
    return False


def describe(key: Mapping[str, str]) -> str:
    """``"CT / unknown region / axial"``: derived labels only, never a header value."""
    region = key["region"] if key["region"] != UNKNOWN else "unknown region"
    return f"{key['modality']} / {region} / {key['plane']}"


__all__ = [
    "AXES",
    "MIN_SLICES",
    "covered",
    "describe",
    "domain_counts",
    "domain_key",
    "is_inside",
]
