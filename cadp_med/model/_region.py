"""Body region of an image from its header: the ``region`` condition and the domain axis.

Evidence, tried in order (tables in ``schemas/regions.json``, made by
``pipelines/generate_region_table.py``):

1. Anatomic Region Sequence (0008,2218): the first item whose (Coding Scheme Designator,
   Code Value) is in ``anatomic_codes`` (PS3.16 CID 4031, SCT and the retired SRT codes).
2. Body Part Examined (0018,0015), case-insensitive, spaces and hyphens removed.
3. The whole words of Study Description, Series Description and Protocol Name.

Header values here may be PHI (descriptions especially): they are only compared with the
tables; nothing but the derived label (a vocabulary entry, or ``None`` for unknown) leaves
these functions, and nothing is logged.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping
from typing import Any

_WORD = re.compile(r"[A-Z0-9]+")


@functools.lru_cache(maxsize=1)
def region_tables() -> dict[str, Any]:
    """The packaged region table (``cadp_med/model/schemas/regions.json``)."""
    text = importlib.resources.files("cadp_med.model").joinpath("schemas/regions.json")
    return json.loads(text.read_text(encoding="utf-8"))


def _get(source: Any, keyword: str) -> Any:
    """``source[keyword]`` for a pydicom Dataset or a plain mapping (a BIDS sidecar)."""
    try:
        value = source.get(keyword)
    except Exception:  # a malformed element must not stop the derivation
        return None
    return getattr(value, "value", value)


def _from_codes(items: Any, tables: Mapping[str, Any]) -> str | None:
    codes = tables.get("anatomic_codes", {})
    if items is None or isinstance(items, str | bytes):
        return None
    try:
        entries = list(items)
    except TypeError:
        return None
    for item in entries:
        scheme = str(_get(item, "CodingSchemeDesignator") or "").strip().upper()
        value = str(_get(item, "CodeValue") or "").strip().upper()
        if scheme == "SNM3":  # the oldest designator of SNOMED RT codes
            scheme = "SRT"
        region = codes.get(f"{scheme}:{value}")
        if region is not None:
            return str(region)
    return None


def _from_body_part(value: Any, tables: Mapping[str, Any]) -> str | None:
    if value is None:
        return None
    key = re.sub(r"[\s\-_]", "", str(value)).upper()
    if not key:
        return None
    region = tables.get("body_part_examined", {}).get(key)
    return str(region) if region is not None else "other"


def region_from_text(text: Any, tables: Mapping[str, Any] | None = None) -> str | None:
    """Region named by the words of one free-text value, or ``None`` if it names none.

    Several regions resolve through ``description_combinations`` (``"abdomen+chest"`` →
    trunk) or else give ``"other"``.
    """
    tables = tables or region_tables()
    if text is None:
        return None
    words = tables.get("description_words", {})
    found = {words[w] for w in _WORD.findall(str(text).upper()) if w in words}
    if not found:
        return None
    if len(found) == 1:
        return str(found.pop())
    key = "+".join(sorted(found))
    return str(tables.get("description_combinations", {}).get(key, "other"))


def body_region(source: Any, tables: Mapping[str, Any] | None = None) -> str | None:
    """The body region of an image, or ``None`` when the header says nothing usable.

    Parameters
    ----------
    source
        A pydicom ``Dataset``, or a mapping with the same keywords (a BIDS sidecar, whose
        ``BodyPartExamined``, ``SeriesDescription`` and ``ProtocolName`` dcm2niix writes).
    tables
        A region table; the packaged ``regions.json`` by default.

    Returns
    -------
    str or None
        A vocabulary label of the table (``"head"``, ``"spine"``, ..., ``"other"`` for
        evidence outside the table), ``None`` for no evidence at all.
    """
    tables = tables or region_tables()
    region = _from_codes(_get(source, "AnatomicRegionSequence"), tables)
    if region is None:
        region = _from_body_part(_get(source, "BodyPartExamined"), tables)
    if region is not None:
        return region
    found = {
        r
        for keyword in tables.get("description_keywords", ())
        if (r := region_from_text(_get(source, keyword), tables)) is not None
    }
    if not found:
        return None
    if len(found) == 1:
        return found.pop()
    key = "+".join(sorted(found))
    return str(tables.get("description_combinations", {}).get(key, "other"))


__all__ = ["body_region", "region_from_text", "region_tables"]
