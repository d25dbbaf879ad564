"""Replacement values consistent with each VR (PS3.15 E.1.1 action D; PS3.5 6.2).

The dummies carry no identity and are ASCII, so any Specific Character Set can encode them.
"""

from __future__ import annotations

TEXT_DUMMY = "ANONYMIZED"
CLEANED = "CLEANED"
DATE_DUMMY = "19000101"
TIME_DUMMY = "000000.00"
DATETIME_DUMMY = "19000101000000.000000"

_DUMMY_BY_VR: dict[str, object] = {
    "AE": TEXT_DUMMY,
    "AS": "000Y",
    "CS": TEXT_DUMMY,
    "DA": DATE_DUMMY,
    "DS": "0",
    "DT": DATETIME_DUMMY,
    "IS": "0",
    "LO": TEXT_DUMMY,
    "LT": TEXT_DUMMY,
    "PN": TEXT_DUMMY,
    "SH": TEXT_DUMMY,
    "ST": TEXT_DUMMY,
    "TM": TIME_DUMMY,
    "UC": TEXT_DUMMY,
    "UR": "urn:anonymized",
    "UT": TEXT_DUMMY,
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
}
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
DATE_VRS = frozenset({"DA", "DT"})
# Values the engine writes itself; verify never treats them as leaked identity.
WRITTEN_CONSTANTS = frozenset(
    {TEXT_DUMMY, CLEANED, DATE_DUMMY, TIME_DUMMY, DATETIME_DUMMY, "000Y", "urn:anonymized"}
)


def dummy_for(vr: str) -> object:
    """A non-zero-length dummy for ``vr``; ``""`` for a VR we do not know."""
    return _DUMMY_BY_VR.get(vr.split(" or ")[0], "")


def clean_value(vr: str) -> object:
    """The value written by action C on a non-date element (PS3.15 E.3.5).

    Meaning cannot be kept reliably without reading the text, so the text is replaced with
    ``CLEANED``; numeric VRs get their dummy.
    """
    return CLEANED if vr in TEXT_VRS else dummy_for(vr)
