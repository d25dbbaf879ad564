"""Attributes every de-identified instance carries (PS3.15 E.1.1; PS3.3 C.7.1.1, C.12.1).

Patient Identity Removed, De-identification Method (appended to), the method code sequence
(CID 7050), Longitudinal Temporal Information Modified, and a Contributing Equipment item
naming cadp-med as the De-identifying Equipment (109104, DCM).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from cadp_med._version import __version__


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


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
    out.PatientIdentityRemoved = "YES"
    existing = out.get("DeidentificationMethod")
    if existing is None:
        methods: list[str] = []
    elif isinstance(existing, MultiValue | list):
        methods = [str(m) for m in existing if m]
    else:
        methods = [str(existing)] if existing else []
    methods.append(method_text)
    out.DeidentificationMethod = methods if len(methods) > 1 else methods[0]
    codes = list(out.get("DeidentificationMethodCodeSequence", []))
    present = {str(item.get("CodeValue", "")) for item in codes}
    for value, meaning in method_codes:
        if value not in present:
            codes.append(_code(value, meaning))
            present.add(value)
    out.DeidentificationMethodCodeSequence = codes
    out.LongitudinalTemporalInformationModified = longitudinal
    equipment = Dataset()
    equipment.PurposeOfReferenceCodeSequence = [_code("109104", "De-identifying Equipment")]
    equipment.Manufacturer = "cadp-med"
    equipment.SoftwareVersions = __version__
    # The moment of de-identification says nothing about the patient: it is not PHI.
    equipment.ContributionDateTime = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    equipment.ContributionDescription = "De-identified"
    contributing = list(out.get("ContributingEquipmentSequence", []))
    out.ContributingEquipmentSequence = [*contributing, equipment]
