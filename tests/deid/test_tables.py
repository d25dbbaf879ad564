"""The generated Annex E tables: size, codes, stamps (PS3.15 E.1, PS3.16 CID 7050)."""

from __future__ import annotations

import re

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c

from cadp_med.deid._profile import Option
from cadp_med.deid._tables import (
    VALID_BASIC_CODES,
    VALID_OPTION_CODES,
    annex_e_table,
    cid7050,
    safe_private,
)

TAG_PATTERN = re.compile(r"^\([0-9A-Fx]{4},[0-9A-Fx]{4}\)$")


def test_table_is_stamped_with_its_edition_and_sources() -> None:
    table = annex_e_table()
    assert table["edition"] == "2026c"
    assert table["generated_by"] == "pipelines/generate_annex_e.py"
    assert "dicom-anonymizer" in table["source"]["basic_profile"]


def test_table_size_matches_the_standard_as_dicom_anonymizer_lists_it() -> None:
    expected = len(set(dicomfields_2026c.ALL_TAGS))
    attributes = annex_e_table()["attributes"]
    assert len(attributes) == expected
    assert len(attributes) >= 600
    assert len({a["tag"] for a in attributes}) == len(attributes)


def test_every_code_and_tag_is_valid() -> None:
    for record in annex_e_table()["attributes"]:
        assert TAG_PATTERN.match(record["tag"]), record["tag"]
        assert record["basic"] in VALID_BASIC_CODES, record["tag"]
        for option, code in record["options"].items():
            assert Option(option)
            assert code in VALID_OPTION_CODES, (record["tag"], option)


def test_masks_are_kept_as_patterns() -> None:
    tags = {a["tag"] for a in annex_e_table()["attributes"]}
    assert {"(50xx,xxxx)", "(60xx,3000)", "(60xx,4000)"} <= tags


def test_option_columns_are_populated_for_every_option_but_safe_private() -> None:
    counts = dict.fromkeys((o.value for o in Option), 0)
    for record in annex_e_table()["attributes"]:
        for option in record["options"]:
            counts[option] += 1
    assert counts.pop("retain-safe-private") == 0  # a rule, applied via safe_private.json
    assert all(n > 0 for n in counts.values()), counts


def test_known_facts_of_table_e1_1() -> None:
    by_tag = {a["tag"]: a for a in annex_e_table()["attributes"]}
    assert by_tag["(0010,0010)"]["basic"] == "Z"  # Patient's Name
    assert by_tag["(0010,0020)"]["basic"] == "Z/D"  # Patient ID
    assert by_tag["(0008,0018)"]["basic"] == "U"  # SOP Instance UID
    assert by_tag["(0008,1140)"]["basic"] == "X/Z/U*"  # Referenced Image Sequence
    assert by_tag["(0008,0080)"]["options"]["retain-institution-identity"] == "K"
    assert by_tag["(0008,0020)"]["options"]["retain-longitudinal-modified-dates"] == "C"


def test_cid7050_has_the_13_codes() -> None:
    codes = cid7050()
    assert len(codes) == 13
    assert codes["113100"] == "Basic Application Confidentiality Profile"
    assert codes["113111"] == "Retain Safe Private Option"


def test_safe_private_list_is_numeric_only_and_has_no_csa_header() -> None:
    entries = safe_private()
    assert entries
    assert all(creator != "SIEMENS CSA HEADER" for creator, _, _ in entries)
    assert all(group % 2 == 1 for _, group, _ in entries)
