"""Attributes every de-identified instance carries (PS3.15 E.1.1; PS3.3 C.7.1.1, C.12.1).

Patient Identity Removed, De-identification Method (appended to), the method code sequence
(CID 7050), Longitudinal Temporal Information Modified, and a Contributing Equipment item
naming cadp-med as the De-identifying Equipment (109104, DCM).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from cadp_med._version import __version__

# Tags and VRs of what is written here: by tag, not keyword, since the keyword lookups
# were a noticeable share of de-identifying a small header.
_CODE_VALUE = (0x00080100, "SH")
_CODING_SCHEME = (0x00080102, "SH")
_CODE_MEANING = (0x00080104, "LO")
_PATIENT_IDENTITY_REMOVED = (0x00120062, "CS")
_METHOD = (0x00120063, "LO")
_METHOD_CODES = (0x00120064, "SQ")
_LONGITUDINAL = (0x00280303, "CS")
_CONTRIBUTING_EQUIPMENT = (0x0018A001, "SQ")
_PURPOSE_OF_REFERENCE = (0x0040A170, "SQ")
_MANUFACTURER = (0x00080070, "LO")
_SOFTWARE_VERSIONS = (0x00181020, "LO")
_CONTRIBUTION_DATETIME = (0x0018A002, "DT")
_CONTRIBUTION_DESCRIPTION = (0x0018A003, "ST")


def _set(ds: Dataset, tag_vr: tuple[int, str], value: object) -> None:
    tag, vr = tag_vr
    ds.add(DataElement(tag, vr, value))


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    _set(item, _CODE_VALUE, value)
    _set(item, _CODING_SCHEME, "DCM")
    _set(item, _CODE_MEANING, meaning)
    return item


def _value(ds: Dataset, tag_vr: tuple[int, str]) -> object:
    elem = ds.get(tag_vr[0])
    return None if elem is None else elem.value


def add_deidentification_marks(
    out: Dataset,
    method_text: str,
    method_codes: Sequence[tuple[str, str]],
    longitudinal: str,
) -> None:
    """Write the de-identification attributes into ``out`` (top level).

    Existing De-identification Method values and method codes (from an earlier
    de-identification) are kept and ours appended, as PS3.15 E.1.1 asks.
    """
    _set(out, _PATIENT_IDENTITY_REMOVED, "YES")
    existing = _value(out, _METHOD)
    if existing is None:
        methods: list[str] = []
    elif isinstance(existing, MultiValue | list):
        methods = [str(m) for m in existing if m]
    else:
        methods = [str(existing)] if existing else []
    methods.append(method_text)
    _set(out, _METHOD, methods if len(methods) > 1 else methods[0])
    codes = list(_value(out, _METHOD_CODES) or [])
    present = {str(item.get("CodeValue", "")) for item in codes}
    for value, meaning in method_codes:
        if value not in present:
            codes.append(_code(value, meaning))
            present.add(value)
    _set(out, _METHOD_CODES, codes)
    _set(out, _LONGITUDINAL, longitudinal)
    equipment = Dataset()
    _set(equipment, _PURPOSE_OF_REFERENCE, [_code("109104", "De-identifying Equipment")])
    _set(equipment, _MANUFACTURER, "cadp-med")
    _set(equipment, _SOFTWARE_VERSIONS, __version__)
    # The moment of de-identification says nothing about the patient: it is not PHI.
    _set(equipment, _CONTRIBUTION_DATETIME, dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"))
    _set(equipment, _CONTRIBUTION_DESCRIPTION, "De-identified")
    contributing = list(_value(out, _CONTRIBUTING_EQUIPMENT) or [])
    _set(out, _CONTRIBUTING_EQUIPMENT, [*contributing, equipment])
