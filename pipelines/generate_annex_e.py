"""Generate the PS3.15 Annex E data tables used by :mod:`cadp_med.deid`.

Writes three JSON files under ``cadp_med/deid/data/``:

``annex_e_2026c.json``
    One record per attribute of Table E.1-1 (PS3.15 E.1): the Basic Profile action and the
    action of each option column (PS3.15 E.3.1 to E.3.11).
``cid7050.json``
    The De-identification Method codes of PS3.16 CID 7050.
``safe_private.json``
    A short, conservative list of private attributes kept under Retain Safe Private
    (PS3.15 E.3.10).

Facts are read, never code copied:

* the Basic Profile column from dicom-anonymizer 2.1.0 (BSD-3), the data module
  ``dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py``, parsed as text;
* the option columns from idiscore 1.2.0's ``idiscore/_public_dicom.py`` (GPLv3; only the
  (tag, action) facts are extracted here, from the text, at generation time). Pass its path
  with ``--idiscore``; without it the option columns are derived from the standard's stated
  semantics (see ``derive_option_columns``) and the JSON says so;
* keywords, names and VRs from pydicom's data dictionaries.

Run ``python pipelines/generate_annex_e.py --idiscore /tmp/idiscore/.../_public_dicom.py``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import dicomanonymizer
from pydicom._private_dict import private_dictionaries
from pydicom.datadict import dictionary_keyword, dictionary_VR

EDITION = "2026c"
OUT_DIR = Path(__file__).resolve().parents[1] / "cadp_med" / "deid" / "data"

# dicom-anonymizer groups the Basic Profile by action; the list name gives the action code.
LIST_TO_CODE = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
# idiscore names its action codes; these are the PS3.15 letters they stand for.
IDISCORE_CODE = {
    "DUMMY": "D",
    "EMPTY": "Z",
    "REMOVE": "X",
    "KEEP": "K",
    "CLEAN": "C",
    "UID": "U",
}
# idiscore rule-set variable -> our option column.
IDISCORE_SETS = {
    "retain_uid": "retain-uids",
    "retain_device_id": "retain-device-identity",
    "retain_institution_id": "retain-institution-identity",
    "retain_patient_characteristics": "retain-patient-characteristics",
    "retain_full_dates": "retain-longitudinal-full-dates",
    "retain_modified_dates": "retain-longitudinal-modified-dates",
    "clean_descriptors": "clean-descriptors",
    "clean_structured_content": "clean-structured-content",
    "clean_graphics": "clean-graphics",
}
OPTION_COLUMNS = ["retain-safe-private", *IDISCORE_SETS.values()]

# How we resolve combined codes (PS3.15 E.1.1: "the first action the IOD allows").
# Default: the first letter (X). These attributes are Type 1 or 2 in the Patient, General
# Study, General Image or SR Document modules of common IODs, so X would break the IOD.
COMBINED_RESOLUTION = {
    "(0010,0020)": ("D", "PatientID: Type 2 (Patient module); written as a keyed pseudonym"),
    "(0008,0023)": ("D", "ContentDate: Type 1 in SR Document General, 2C in General Image"),
    "(0008,0033)": ("D", "ContentTime: Type 1 in SR Document General, 2C in General Image"),
    "(0070,0084)": ("Z", "ContentCreatorName: Type 2 (Presentation State Identification)"),
    "(0018,0010)": ("Z", "ContrastBolusAgent: Type 2 (Contrast/Bolus module)"),
    "(0018,9919)": ("Z", "InstructionPerformedDateTime: Type 1 (Instruction sequence)"),
}
# A Z or D action on these writes the pseudonym instead of an empty value or a generic dummy.
PSEUDONYM_ATTRIBUTES = {"(0010,0010)": "PatientName", "(0010,0020)": "PatientID"}

ENTRY_RE = re.compile(
    r"\(\s*0x([0-9A-Fa-f]{4})\s*,\s*0x([0-9A-Fa-f]{4})\s*"
    r"(?:,\s*0x([0-9A-Fa-f]{4})\s*,\s*0x([0-9A-Fa-f]{4})\s*)?,?\s*\)\s*,\s*#\s*([^\n]*)"
)
LIST_RE = re.compile(r"^([A-Z_]+) = \[(.*?)^\]", re.S | re.M)
RULESET_RE = re.compile(r"^(\w+) = RawNemaRuleSet\((.*?)^\)", re.S | re.M)
RULE_RE = re.compile(
    r"(SingleTag|RepeatingGroup)\(\"([0-9a-fx]{8})\"\)\s*,\s*ActionCodes\.(\w+)", re.I
)


def masked_tag(group: int, element: int, gmask: int, emask: int) -> str:
    """Write a tag with a mask as ``(gggg,eeee)`` with ``x`` for masked-out nibbles."""
    text = f"{group:04X}{element:04X}"
    mask = f"{gmask:04X}{emask:04X}"
    out = "".join(ch if m == "F" else "x" for ch, m in zip(text, mask, strict=True))
    return f"({out[:4]},{out[4:]})"


def read_basic_profile() -> list[dict[str, object]]:
    """Parse the Basic Profile column from dicom-anonymizer's data module (as text)."""
    path = (
        Path(dicomanonymizer.__file__).parent
        / "dicom_anonymization_databases"
        / f"dicomfields_{EDITION}.py"
    )
    source = path.read_text()
    records: list[dict[str, object]] = []
    for list_name, body in LIST_RE.findall(source):
        if list_name not in LIST_TO_CODE:
            continue
        for g, e, gm, em, comment in ENTRY_RE.findall(body):
            group, element = int(g, 16), int(e, 16)
            if gm:
                tag = masked_tag(group, element, int(gm, 16), int(em, 16))
                keyword, vr = "", ""
            else:
                tag = f"({group:04X},{element:04X})"
                number = (group << 16) | element
                try:
                    keyword = dictionary_keyword(number)
                    vr = dictionary_VR(number)
                except KeyError:
                    keyword, vr = "", ""
            records.append(
                {
                    "tag": tag,
                    "keyword": keyword,
                    "name": comment.strip(),
                    "vr": vr,
                    "basic": LIST_TO_CODE[list_name],
                    "options": {},
                }
            )
    return records


def read_idiscore_options(path: Path) -> dict[str, dict[str, str]]:
    """Extract ``{option: {tag: code}}`` facts from idiscore's scraped table (text only)."""
    source = path.read_text()
    columns: dict[str, dict[str, str]] = {}
    for set_name, body in RULESET_RE.findall(source):
        if set_name not in IDISCORE_SETS:
            continue
        column: dict[str, str] = {}
        for _kind, hexes, action in RULE_RE.findall(body):
            hexes = hexes.upper().replace("X", "x")
            column[f"({hexes[:4]},{hexes[4:]})"] = IDISCORE_CODE[action.upper()]
        columns[IDISCORE_SETS[set_name]] = column
    return columns


def derive_option_columns(records: list[dict[str, object]]) -> dict[str, dict[str, str]]:
    """Fallback when no option source is present: the standard's stated semantics.

    Retain UIDs keeps every U attribute (E.3.9); Retain Longitudinal Full Dates keeps and
    Modified Dates cleans every DA/DT/TM attribute (E.3.6); the other columns cannot be
    derived from VRs and stay empty.
    """
    columns: dict[str, dict[str, str]] = {name: {} for name in IDISCORE_SETS.values()}
    for record in records:
        tag = str(record["tag"])
        if record["basic"] == "U" or record["basic"] == "X/Z/U*":
            columns["retain-uids"][tag] = "K"
        if record["vr"] in ("DA", "DT", "TM"):
            columns["retain-longitudinal-full-dates"][tag] = "K"
            columns["retain-longitudinal-modified-dates"][tag] = "C"
    return columns


def safe_private_entries() -> list[dict[str, str]]:
    """A conservative Retain Safe Private list (PS3.15 E.3.10).

    Only numeric acquisition physics (b-values, gradient directions, slice counts, scale
    factors) whose VR cannot carry text. VR and name are read from pydicom's private
    dictionary, which is the cited source. Siemens CSA headers (SIEMENS CSA HEADER) are
    deliberately absent: they embed free text, including protocol and operator names.
    """
    chosen = [
        ("SIEMENS MR HEADER", "0019xx0C", "diffusion b-value; numeric acquisition parameter"),
        ("SIEMENS MR HEADER", "0019xx0E", "diffusion gradient direction; numeric vector"),
        ("SIEMENS MR HEADER", "0019xx0B", "slice measurement duration; numeric timing"),
        ("GEMS_ACQU_01", "0019xx23", "CT table speed; numeric acquisition parameter"),
        ("GEMS_ACQU_01", "0019xx7E", "number of echoes; numeric acquisition parameter"),
        ("GEMS_ACQU_01", "0019xxE2", "velocity encode scale; numeric acquisition parameter"),
        ("GEMS_PARM_01", "0043xx79", "slices per volume; numeric acquisition parameter"),
        ("Philips Imaging DD 001", "2001xx03", "diffusion b-factor; numeric"),
        ("Philips Imaging DD 001", "2001xx18", "number of slices; numeric"),
        ("Philips MR Imaging DD 001", "2005xxB0", "diffusion direction RL; numeric"),
        ("Philips MR Imaging DD 001", "2005xxB1", "diffusion direction AP; numeric"),
        ("Philips MR Imaging DD 001", "2005xxB2", "diffusion direction FH; numeric"),
    ]
    entries = []
    for creator, element, reason in chosen:
        vr, _vm, name, _retired = private_dictionaries[creator][element]
        entries.append(
            {
                "private_creator": creator,
                "group": element[:4],
                "element": element[-2:],
                "vr": vr,
                "name": name,
                "reason": reason,
                "source": "pydicom 3.0.2 pydicom/_private_dict.py (VR and name)",
            }
        )
    return entries


CID7050 = [
    ("113100", "Basic Application Confidentiality Profile"),
    ("113101", "Clean Pixel Data Option"),
    ("113102", "Clean Recognizable Visual Features Option"),
    ("113103", "Clean Graphics Option"),
    ("113104", "Clean Structured Content Option"),
    ("113105", "Clean Descriptors Option"),
    ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
    ("113109", "Retain Device Identity Option"),
    ("113110", "Retain UIDs Option"),
    ("113111", "Retain Safe Private Option"),
    ("113112", "Retain Institution Identity Option"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idiscore", type=Path, help="path to idiscore's _public_dicom.py")
    args = parser.parse_args()

    records = read_basic_profile()
    if args.idiscore and args.idiscore.exists():
        columns = read_idiscore_options(args.idiscore)
        option_source = (
            "option columns: idiscore 1.2.0 idiscore/_public_dicom.py (scraped from PS3.15 "
            "chapter E on 2024-09-19; facts only). Attributes new since then carry no "
            "option action and follow the Basic Profile."
        )
    else:
        columns = derive_option_columns(records)
        option_source = "option columns derived from PS3.15 E.3 semantics (no source found)"
    by_tag = {str(r["tag"]): r for r in records}
    for option, column in columns.items():
        for tag, code in column.items():
            if tag in by_tag:
                by_tag[tag]["options"][option] = code  # type: ignore[index]
    table = {
        "edition": EDITION,
        "source": {
            "basic_profile": "dicom-anonymizer 2.1.0 (BSD-3) "
            f"dicomanonymizer/dicom_anonymization_databases/dicomfields_{EDITION}.py",
            "options": option_source,
            "keywords_and_vrs": "pydicom 3.0.2 data dictionary",
            "private_attributes": "Table E.1-1 row 'Private Attributes': X; "
            "C under Retain Safe Private (E.3.10), applied via safe_private.json",
        },
        "generated_by": "pipelines/generate_annex_e.py",
        "option_columns": OPTION_COLUMNS,
        "combined_code_resolution": {
            "default": "first code (X); X/Z/U*: U on contained UIDs when the sequence is kept",
            "overrides": {
                tag: {"code": code, "why": why} for tag, (code, why) in COMBINED_RESOLUTION.items()
            },
        },
        "pseudonym_attributes": PSEUDONYM_ATTRIBUTES,
        "attributes": records,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / f"annex_e_{EDITION}.json").write_text(json.dumps(table, indent=1) + "\n")
    cid = {
        "cid": "7050",
        "name": "De-identification Method",
        "coding_scheme_designator": "DCM",
        "source": "PS3.16 CID 7050, as listed in /work/shared/DEID-FACTS.md",
        "generated_by": "pipelines/generate_annex_e.py",
        "codes": [{"code": c, "meaning": m} for c, m in CID7050],
    }
    (OUT_DIR / "cid7050.json").write_text(json.dumps(cid, indent=1) + "\n")
    safe = {
        "edition": EDITION,
        "source": "curated by cadp-med; VR and names from pydicom's private dictionary",
        "generated_by": "pipelines/generate_annex_e.py",
        "rule": "numeric VRs of acquisition physics only; no text VR, no CSA header",
        "entries": safe_private_entries(),
    }
    (OUT_DIR / "safe_private.json").write_text(json.dumps(safe, indent=1) + "\n")
    print(f"wrote {len(records)} attributes to {OUT_DIR}")


if __name__ == "__main__":
    main()
