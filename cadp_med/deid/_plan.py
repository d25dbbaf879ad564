"""Turn Table E.1-1 plus a :class:`Profile` into one tag -> action dict (PS3.15 E.1, E.3).

The dict is built once per profile and cached, so the walker does one lookup per element.

Action names used by the walker (a superset of the table's letters):

``X`` remove, ``Z`` zero-length, ``D`` dummy, ``K`` keep, ``U`` keyed UID,
``UREF`` keep a sequence whose contained UIDs get ``U`` (X/Z/U*),
``CLEAN`` clean a descriptor (Clean Descriptors and other C cells),
``CONTENT`` clean structured content inside a sequence (SR Content Sequence),
``GRAPHICS`` keep a graphic annotation sequence but drop its text objects,
``SHIFT`` shift dates by the patient's offset (Retain Longitudinal Modified Dates).

Combined codes resolve to their first letter (X), except the Type 1/2 attributes listed in
``combined_code_resolution.overrides`` of the data file (PS3.15 E.1.1: "the first action
the IOD allows").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from cadp_med.deid._profile import Option, Profile
from cadp_med.deid._tables import annex_e_table, parse_tag

# When several option columns act on one attribute, cleaning beats shifting beats keeping:
# the stricter action wins (a profile can combine Retain and Clean options).
_PRIORITY = {
    "K": 1,
    "SHIFT": 2,
    "D": 3,
    "Z": 3,
    "X": 3,
    "U": 3,
    "CLEAN": 4,
    "CONTENT": 4,
    "GRAPHICS": 4,
}


@dataclass(frozen=True)
class Plan:
    """What to do with each tag under one profile."""

    actions: dict[int, str]
    basic: dict[int, str]
    pseudonym_tags: frozenset[int]
    longitudinal: str  # REMOVED | UNMODIFIED | MODIFIED
    retain_uids: bool
    retain_safe_private: bool
    keep_overlays: bool
    keep_curves: bool


def _option_action(option: Option, code: str) -> str:
    if code != "C":
        return code
    if option is Option.RETAIN_LONGITUDINAL_MODIFIED_DATES:
        return "SHIFT"
    if option is Option.CLEAN_STRUCTURED_CONTENT:
        return "CONTENT"
    if option is Option.CLEAN_GRAPHICS:
        return "GRAPHICS"
    return "CLEAN"


def basic_action(record: dict[str, object], overrides: dict[str, dict[str, str]]) -> str:
    """The Basic Profile action of a record, with combined codes resolved."""
    code = str(record["basic"])
    tag = str(record["tag"])
    if tag in overrides:
        return overrides[tag]["code"]
    if code == "X/Z/U*":
        return "UREF"
    if "/" in code:
        return code.split("/")[0]
    if code == "D" and record.get("vr") == "SQ":
        # A dummy sequence cannot be invented; recurse and act on its items. The Content
        # Sequence of SR holds the report's text, so its values are cleaned too.
        return "CONTENT" if record.get("keyword") == "ContentSequence" else "K"
    return code


@lru_cache(maxsize=64)
def build_plan(profile: Profile) -> Plan:
    """Build the tag -> action dict for ``profile`` from the Annex E data file."""
    table = annex_e_table()
    overrides = table["combined_code_resolution"]["overrides"]
    actions: dict[int, str] = {}
    basic: dict[int, str] = {}
    for record in table["attributes"]:
        tag_text = str(record["tag"])
        if "x" in tag_text:
            continue  # 50xx / 60xx masks are handled by group in the walker
        action = basic_action(record, overrides)
        chosen: str | None = None
        for option in profile.options:
            code = record["options"].get(option.value)
            if code:
                candidate = _option_action(option, code)
                if chosen is None or _PRIORITY[candidate] > _PRIORITY[chosen]:
                    chosen = candidate
        if chosen == "CLEAN" and record.get("vr") == "SQ":
            chosen = "CONTENT"
        if chosen == "GRAPHICS" and record.get("vr") != "SQ":
            chosen = "CLEAN"
        actions[parse_tag(tag_text)] = chosen or action
        basic[parse_tag(tag_text)] = action
    pseudonym_tags = frozenset(parse_tag(t) for t in table["pseudonym_attributes"])
    return Plan(
        actions=actions,
        basic=basic,
        pseudonym_tags=pseudonym_tags,
        longitudinal=profile.longitudinal_value(),
        retain_uids=Option.RETAIN_UIDS in profile.options,
        retain_safe_private=Option.RETAIN_SAFE_PRIVATE in profile.options,
        keep_overlays=profile.keep_overlays,
        keep_curves=profile.keep_curves,
    )
