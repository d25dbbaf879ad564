"""Each option changes exactly what its column of Table E.1-1 says (PS3.15 E.3).

For every option, the PHI corpus is de-identified with and without it; the tags whose output
differs must equal the tags that the option's column of ``annex_e_2026c.json`` acts on
differently from the Basic Profile, plus the engine's documented rules beyond the table
(listed in ``RULES_BEYOND_TABLE``). Comparison descends into sequences present in both
outputs, so a nested change is reported at the nested tag.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from cadp_med.deid import Option, Profile
from cadp_med.deid._plan import _option_action, basic_action
from cadp_med.deid._pseudo import is_registered_uid
from cadp_med.deid._tables import annex_e_table, parse_tag, safe_private
from tests.deid.conftest import deidentify

# Attributes every run writes itself (method codes, equipment time stamp, longitudinal flag).
WRITTEN_BY_US = {0x00120063, 0x00120064, 0x0018A001, 0x00280303}
GRAPHIC_ANNOTATION_SEQUENCE, TEXT_OBJECT_SEQUENCE = 0x00700001, 0x00700008


def _diff(a: Dataset, b: Dataset, found: set[int]) -> None:
    for tag in set(a.keys()) | set(b.keys()):
        if tag in WRITTEN_BY_US:
            continue  # not compared, not even inside (the equipment time stamp ticks)
        if tag not in a or tag not in b:
            found.add(int(tag))
            continue
        ea, eb = a[tag], b[tag]
        if ea.VR == "SQ" and eb.VR == "SQ" and len(ea.value) == len(eb.value):
            for ia, ib in zip(ea.value, eb.value, strict=True):
                _diff(ia, ib, found)
        elif ea.value != eb.value:
            found.add(int(tag))


def _corpus_elements(datasets: list[Dataset]) -> dict[int, str]:
    tags: dict[int, str] = {}
    for ds in datasets:
        for elem in ds.iterall():
            if elem.VR == "UI" and isinstance(elem.value, str) and is_registered_uid(elem.value):
                continue
            tags[int(elem.tag)] = elem.VR
    return tags


def _effect(option: Option, code: str, record: dict[str, object]) -> str:
    action = _option_action(option, code)
    if action == "CLEAN" and record["vr"] == "SQ":
        return "CONTENT"
    if action == "K" and record["vr"] == "SQ":
        return "UREF"  # keeping a sequence and X/Z/U* both keep it; UIDs inside differ
    if action == "SHIFT" and record["vr"] not in ("DA", "DT", "TM"):
        return basic_action(record, annex_e_table()["combined_code_resolution"]["overrides"])
    return action


def _basic_effect(record: dict[str, object]) -> str:
    action = basic_action(record, annex_e_table()["combined_code_resolution"]["overrides"])
    return "UREF" if action == "K" and record["vr"] == "SQ" else action


def _expected_from_column(option: Option, present: dict[int, str]) -> set[int]:
    expected = set()
    for record in annex_e_table()["attributes"]:
        if "x" in record["tag"] or parse_tag(record["tag"]) not in present:
            continue
        code = record["options"].get(option.value)
        if code and _effect(option, code, record) != _basic_effect(record):
            expected.add(parse_tag(record["tag"]))
    if option is Option.CLEAN_GRAPHICS and GRAPHIC_ANNOTATION_SEQUENCE in expected:
        # The sequence stays; Clean Graphics drops the Text Object Sequence of its items.
        expected = expected - {GRAPHIC_ANNOTATION_SEQUENCE} | {TEXT_OBJECT_SEQUENCE}
    return expected


def RULES_BEYOND_TABLE(option: Option, present: dict[int, str]) -> set[int]:  # noqa: N802
    """Documented engine rules (see cadp_med/deid/_engine.py) that options also change."""
    listed = {parse_tag(r["tag"]) for r in annex_e_table()["attributes"] if "x" not in r["tag"]}
    unlisted = {tag: vr for tag, vr in present.items() if tag not in listed and not tag >> 16 & 1}
    if option is Option.RETAIN_UIDS:  # every instance UID is U, listed or not
        return {tag for tag, vr in unlisted.items() if vr == "UI"}
    if option in (
        Option.RETAIN_LONGITUDINAL_FULL_DATES,
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
    ):  # unlisted dates follow the longitudinal mode; listed D dates are shifted or kept
        plan_d = {
            parse_tag(r["tag"])
            for r in annex_e_table()["attributes"]
            if "x" not in r["tag"] and r["vr"] in ("DA", "DT") and r["basic"] == "D"
        }
        return {t for t, vr in unlisted.items() if vr in ("DA", "DT")} | (plan_d & set(present))
    return set()


def _safe_private_in(datasets: list[Dataset]) -> set[int]:
    """Private elements (and their creators) that safe_private.json lists, found directly."""
    listed = safe_private()
    found: set[int] = set()
    for ds in datasets:
        for tag in ds.keys():
            group, number = tag >> 16, tag & 0xFFFF
            if group % 2 and 0x10 <= number <= 0xFF:
                if any(c == ds[tag].value and g == group for c, g, _ in listed):
                    found.add(int(tag))
            elif group % 2 and number >= 0x1000:
                creator = ds.get((group << 16) | (number >> 8))
                if creator is not None and (creator.value, group, number & 0xFF) in listed:
                    found.add(int(tag))
    return found


@pytest.mark.parametrize("option", list(Option), ids=[o.value for o in Option])
def test_option_changes_exactly_its_column(option: Option, phi_corpus: Path) -> None:
    datasets = [pydicom.dcmread(p) for p in sorted(phi_corpus.rglob("*.dcm"))]
    present = _corpus_elements(datasets)
    without, with_option = deidentify(Profile()), deidentify(Profile.from_options([option]))
    observed: set[int] = set()
    for ds in datasets:
        _diff(without(ds).dataset, with_option(ds).dataset, observed)
    expected = _expected_from_column(option, present) | RULES_BEYOND_TABLE(option, present)
    if option is Option.RETAIN_SAFE_PRIVATE:
        expected |= _safe_private_in(datasets)
    assert expected, f"the corpus exercises no attribute of {option.value}"
    missing = sorted(f"{t:08X}" for t in expected - observed)
    extra = sorted(f"{t:08X}" for t in observed - expected)
    assert (missing, extra) == ([], [])
