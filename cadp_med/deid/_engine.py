"""The header de-identifier: PS3.15 Annex E Table E.1-1 applied at every depth.

:class:`Deidentifier` walks a dataset once, looking each tag up in the profile's action dict
(:mod:`cadp_med.deid._plan`), and builds a new dataset; the input is never changed. Rules
beyond the table (each documented where it is applied):

* Private attributes (odd groups) are removed (Table E.1-1 "Private Attributes": X) unless
  Retain Safe Private is on and the element is in ``safe_private.json`` (E.3.10).
* Curves (50xx) and overlays (60xx) are removed unless ``keep_curves``/``keep_overlays``;
  Overlay Comments (60xx,4000) always go. Group lengths (gggg,0000) are dropped.
* Any UI value that is not a UID of the standard gets action U, listed or not, unless
  Retain UIDs is on (E.3.9): an unlisted instance UID is still an identifier.
* SR Text Value (0040,A160) is cleaned wherever it occurs: it is free text.
* DA/DT values outside the table follow the longitudinal option (E.3.6): dummied when
  temporal information is REMOVED, shifted when MODIFIED, kept when UNMODIFIED. Under
  MODIFIED, kept dates inside the table are shifted too. TM values are never shifted.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydicom.datadict import DicomDictionary, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence

from cadp_med._version import __version__
from cadp_med.deid._mapping import MappingRecorder
from cadp_med.deid._marks import add_deidentification_marks
from cadp_med.deid._plan import Plan, build_plan
from cadp_med.deid._profile import Profile
from cadp_med.deid._pseudo import (
    date_shift_days,
    is_registered_uid,
    patient_token,
    pseudonym_uid,
    shift_da,
    shift_dt,
)
from cadp_med.deid._tables import EDITION, safe_private
from cadp_med.deid._values import (
    DATE_DUMMY,
    DATE_VRS,
    DATETIME_DUMMY,
    clean_value,
    dummy_for,
)

logger = logging.getLogger(__name__)

PATIENT_ID = 0x00100020
STUDY_INSTANCE_UID = 0x0020000D
SOP_INSTANCE_UID = 0x00080018
INSTANCE_NUMBER = 0x00200013
PATIENT_NAME = 0x00100010
TEXT_OBJECT_SEQUENCE = 0x00700008
TEXT_VALUE = 0x0040A160
# Value attributes of SR content items (PS3.3 C.17.3): what Clean Structured Content cleans.
CONTENT_VALUE_ACTIONS = {
    0x0040A160: "CLEAN",  # TextValue
    0x0040A123: "D",  # PersonName
    0x0040A121: "DATE",  # Date
    0x0040A120: "DATE",  # DateTime
    0x0040A122: "K",  # Time: times alone carry no date
    0x0040A124: "U",  # UID
}
# Elements of these VRs are decoded even when kept: UIDs get U, dates follow the
# longitudinal option, sequences are walked.
_DECODE_VRS = frozenset({"SQ", "UI", "DA", "DT"})
METHOD_PREFIX = f"cadp-med {__version__} PS3.15 E.1-1 {EDITION}"


@dataclass(frozen=True)
class Pseudonyms:
    """The pseudonyms of one instance, as written into its de-identified header."""

    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    sop_uid: str


@dataclass
class DeidResult:
    """A de-identified dataset (no file meta) and what was done to make it."""

    dataset: Dataset
    pseudonyms: Pseudonyms
    actions: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Walk:
    """Per-instance state of one walk."""

    shift_days: int
    actions: Counter[str]
    warnings: list[str]


class Deidentifier:
    """Apply the Basic Application Level Confidentiality Profile and options (PS3.15 E).

    Parameters
    ----------
    profile
        The profile and options to apply.
    key
        The pseudonymization key (see :func:`cadp_med.deid.load_key`).
    uid_map, patient_id_map
        Imported mappings (original -> pseudonym) that override the keyed ones.
    extra_method_codes
        More ``(code, meaning)`` pairs (scheme DCM) for the method code sequence, e.g. the
        pixel options 113101/113102 applied by another stage.
    method_text
        Appended to the De-identification Method (0012,0063) value.
    recorder
        Receives every original -> pseudonym pair of UIDs and Patient IDs.
    """

    def __init__(
        self,
        profile: Profile,
        key: bytes,
        *,
        uid_map: Mapping[str, str] | None = None,
        patient_id_map: Mapping[str, str] | None = None,
        extra_method_codes: Sequence[tuple[str, str]] = (),
        method_text: str = "",
        recorder: MappingRecorder | None = None,
    ) -> None:
        self.profile = profile
        self._key = bytes(key)
        self._plan: Plan = build_plan(profile)
        self._safe_private = safe_private()
        self._uid_cache: dict[str, str] = dict(uid_map or {})
        self._patient_id_map = dict(patient_id_map or {})
        self._method_codes = [*profile.method_codes(), *extra_method_codes]
        self._method_text = f"{METHOD_PREFIX} {method_text}".strip()[:64]
        self._recorder = recorder

    # -- pseudonyms -------------------------------------------------------------------
    def _uid(self, uid: str) -> str:
        new = self._uid_cache.get(uid)
        if new is None:
            new = pseudonym_uid(self._key, uid)
            self._uid_cache[uid] = new
        if self._recorder is not None:
            self._recorder.record_uid(uid, new)
        return new

    def _patient_id(self, patient_id: str, study_uid: str) -> str:
        new = self._patient_id_map.get(patient_id) if patient_id else None
        if new is None:
            new = "P" + patient_token(self._key, patient_id, study_uid)
        if self._recorder is not None and patient_id:
            self._recorder.record_patient_id(patient_id, new)
        return new

    def pseudonyms(self, ds: Dataset) -> Pseudonyms:
        """The pseudonyms ``ds`` will get; cheap, reads only the original header."""
        study = _text(ds, STUDY_INSTANCE_UID)
        patient_id = self._patient_id(_text(ds, PATIENT_ID), study)

        def uid(name: str, anchor: str) -> str:
            value = _text(ds, tag_for_keyword(name))
            if not value:
                # A Type 1 UID is missing: derive a stable keyed one from the instance's
                # context, so the output stays valid and reruns land in the same place.
                return self._uid(f"missing-{name}:{anchor}")
            return value if self._plan.retain_uids else self._uid(value)

        sop = _text(ds, SOP_INSTANCE_UID)
        study_uid = uid("StudyInstanceUID", sop)
        series_uid = uid("SeriesInstanceUID", study or sop)
        return Pseudonyms(
            patient_id=patient_id,
            patient_name="ANON^" + patient_id,
            study_uid=study_uid,
            series_uid=series_uid,
            sop_uid=uid("SOPInstanceUID", study + "/" + _instance_number(ds)),
        )

    # -- the walk -----------------------------------------------------------------------
    def __call__(self, ds: Dataset, pseudonyms: Pseudonyms | None = None) -> DeidResult:
        """De-identify ``ds``; returns a new dataset without file meta.

        ``pseudonyms``: what :meth:`pseudonyms` returned for ``ds``, when the caller has
        it already (the keyed hashes are a measurable share of a small header).
        """
        pseudo = self.pseudonyms(ds) if pseudonyms is None else pseudonyms
        original_id = _text(ds, PATIENT_ID) or _text(ds, STUDY_INSTANCE_UID)
        state = _Walk(date_shift_days(self._key, original_id), Counter(), [])
        out = self._walk(ds, "", state, content=False, drop_text_objects=False, pseudo=pseudo)
        add_deidentification_marks(
            out, self._method_text, self._method_codes, self._plan.longitudinal
        )
        for keyword, value in (
            ("StudyInstanceUID", pseudo.study_uid),
            ("SeriesInstanceUID", pseudo.series_uid),
            ("SOPInstanceUID", pseudo.sop_uid),
        ):
            if not out.get(keyword):
                out[keyword] = DataElement(tag_for_keyword(keyword), "UI", value)
                state.actions["U-missing"] += 1
                state.warnings.append(f"{keyword}: absent in the input, a keyed UID was written")
        if self._method_text and not self._method_text.isascii():
            charset = out.get("SpecificCharacterSet", "")
            if charset not in ("ISO_IR 192", ["ISO_IR 192"]):
                out.SpecificCharacterSet = "ISO_IR 192"
                state.warnings.append("(0008,0005): set to ISO_IR 192 for non-ASCII method text")
        return DeidResult(out, pseudo, state.actions, state.warnings)

    def _walk(
        self,
        src: Dataset,
        path: str,
        state: _Walk,
        *,
        content: bool,
        drop_text_objects: bool,
        pseudo: Pseudonyms,
    ) -> Dataset:
        plan = self._plan
        actions = plan.actions
        counts = state.actions
        # An item's text is encoded in its parent's character set (PS3.5 7.5.3). Say so,
        # or pydicom takes the default for the item, sees it differ from the charset the
        # item was read with, and decodes and re-encodes every element of it on write.
        out = (
            Dataset(parent_encoding=src.original_character_set or "iso8859") if path else Dataset()
        )
        encoding = _inherit_encoding(src, out)
        # The raw dict, not keys()/__getitem__: no element is decoded before it must be.
        for key in list(src._dict):  # noqa: SLF001 - pydicom exposes no raw view
            # A plain int for lookups and comparisons: BaseTag.__eq__ is a Python method,
            # called on every dict probe and ``==``; the BaseTag key stays for src/out.
            tag = int(key)
            group, number = tag >> 16, tag & 0xFFFF
            if number == 0:
                counts["group-length-removed"] += 1
                continue
            if group & 1:
                self._private(src, tag, out, state, _tag_path(path, tag))
                continue
            if 0x5000 <= group <= 0x50FF and not plan.keep_curves:
                counts["X"] += 1
                continue
            if 0x6000 <= group <= 0x60FF and (not plan.keep_overlays or number == 0x4000):
                counts["X"] += 1
                continue
            if actions.get(tag) == "X" and not (content and tag in CONTENT_VALUE_ACTIONS):
                counts["X"] += 1  # removed without decoding the value: cheaper
                continue
            raw = src._dict[key]  # noqa: SLF001 - get_item() without its overhead
            if (
                isinstance(raw, RawDataElement)
                and (raw.is_implicit_VR, raw.is_little_endian) == encoding
                and self._keeps_undecoded(tag, raw, content)
            ):
                # Kept as read: no decoding now, and written back byte for byte when the
                # output keeps the input's encoding (pydicom converts it otherwise).
                out._dict[key] = raw  # noqa: SLF001 - __setitem__ would re-check the tag
                counts["K"] += 1
                continue
            if drop_text_objects and tag == TEXT_OBJECT_SEQUENCE:
                counts["C"] += 1
                continue
            if isinstance(raw, RawDataElement) and _raw_vr(tag, raw) == "UI":
                action = self._action_for(tag, "UI", content)
                if (
                    action in ("U", "D", "CLEAN")
                    and isinstance(raw.value, bytes)
                    and raw.length != 0xFFFFFFFF
                ):
                    # The commonest replacement, done on the bytes: pydicom's decoding,
                    # validation and MultiValue building cost more than the keyed hash.
                    _put(out, self._replace_raw_uids(tag, raw.value, state))
                    continue
            tag_path = _tag_path(path, tag)
            try:
                elem = src[key]
                vr = elem.VR
                action = self._action_for(tag, vr, content)
                new = self._apply(elem, vr, action, tag_path, state, content, pseudo, not path)
            except Exception as exc:  # odd VRs, charsets or values must not stop a study
                state.warnings.append(
                    f"{tag_path}: removed, could not be processed ({type(exc).__name__})"
                )
                state.actions["X"] += 1
                continue
            if new is not None:
                _put(out, new)
        return out

    def _keeps_undecoded(self, tag: int, raw: RawDataElement, content: bool) -> bool:
        """True when a raw element is kept whatever its value: no UID, date or sequence."""
        if self._plan.actions.get(tag, "K") != "K" or tag == TEXT_VALUE:
            return False
        if content and tag in CONTENT_VALUE_ACTIONS:
            return False
        vr = _raw_vr(tag, raw)
        return vr is not None and len(vr) == 2 and vr not in _DECODE_VRS

    def _action_for(self, tag: int, vr: str, content: bool) -> str:
        plan = self._plan
        if content and tag in CONTENT_VALUE_ACTIONS:
            return CONTENT_VALUE_ACTIONS[tag]
        action = plan.actions.get(tag)
        if tag == TEXT_VALUE:
            # SR Text Value is free text outside the table; clean it wherever it occurs.
            return "CLEAN"
        if action is None:
            if vr == "UI" and not plan.retain_uids:
                return "U"
            if vr in DATE_VRS:
                return {"REMOVED": "D", "MODIFIED": "SHIFT", "UNMODIFIED": "K"}[plan.longitudinal]
            return "K"
        if action == "K" and vr in DATE_VRS and plan.longitudinal == "MODIFIED":
            return "SHIFT"
        if action == "SHIFT" and vr not in DATE_VRS and vr != "TM":
            # Timestamps in OB and the time zone offset cannot be shifted: Basic Profile.
            return plan.basic[tag]
        return action

    def _apply(
        self,
        elem: DataElement,
        vr: str,
        action: str,
        tag_path: str,
        state: _Walk,
        content: bool,
        pseudo: Pseudonyms,
        top: bool,
    ) -> DataElement | None:
        tag = elem.tag
        if action == "X":
            state.actions["X"] += 1
            return None
        if vr == "SQ":
            if action == "Z":
                state.actions["Z"] += 1
                return DataElement(tag, "SQ", DicomSequence())
            items = []
            for index, item in enumerate(elem.value or []):
                items.append(
                    self._walk(
                        item,
                        f"{tag_path}[{index}].",
                        state,
                        content=content or action == "CONTENT",
                        drop_text_objects=action == "GRAPHICS",
                        pseudo=pseudo,
                    )
                )
            state.actions["K" if action in ("K", "D", "UREF") else "C"] += 1
            return DataElement(tag, "SQ", DicomSequence(items))
        if tag in self._plan.pseudonym_tags and action in ("Z", "D"):
            state.actions["D"] += 1
            if tag == PATIENT_NAME:
                return DataElement(tag, vr, pseudo.patient_name if top else "")
            value = str(elem.value or "")
            new_id = pseudo.patient_id if top else self._patient_id(value, "")
            return DataElement(tag, vr, new_id)
        if action == "UREF":
            state.actions["X"] += 1  # X/Z/U* on a non-sequence: X
            return None
        if action == "Z":
            state.actions["Z"] += 1
            return DataElement(tag, vr, None)
        if vr == "UI" and action in ("U", "D", "CLEAN"):
            return self._replace_uids(elem, state)
        if action == "DATE":
            action = "SHIFT" if self._plan.longitudinal == "MODIFIED" else "D"
        if vr in DATE_VRS and action in ("D", "CLEAN", "SHIFT"):
            return self._date(elem, vr, action, tag_path, state)
        if action == "D":
            state.actions["D"] += 1
            return DataElement(tag, vr, dummy_for(vr))
        if action == "CLEAN":
            state.actions["C"] += 1
            return DataElement(tag, vr, clean_value(vr))
        if action == "U":  # U on a non-UI VR (private UN, odd data): keep nothing
            state.actions["X"] += 1
            return None
        state.actions["K"] += 1
        return _copy_element(elem)

    def _replace_uids(self, elem: DataElement, state: _Walk) -> DataElement:
        def one(uid: object) -> str:
            text = str(uid or "").strip("\x00 ")
            if not text or is_registered_uid(text):
                return text
            state.actions["U"] += 1
            return self._uid(text)

        value = elem.value
        if isinstance(value, MultiValue | list):
            return DataElement(elem.tag, "UI", [one(v) for v in value])
        return DataElement(elem.tag, "UI", one(value))

    def _replace_raw_uids(self, tag: int, encoded: bytes, state: _Walk) -> DataElement:
        """:meth:`_replace_uids` on an undecoded UI value; decoded as pydicom's convert_UI."""
        text = encoded.decode("latin-1").rstrip("\x00 ")
        new = []
        for uid in text.split("\\"):
            uid = uid.strip("\x00 ")
            if uid and not is_registered_uid(uid):
                state.actions["U"] += 1
                uid = self._uid(uid)
            new.append(uid)
        return DataElement(tag, "UI", new if len(new) > 1 else new[0])

    def _date(
        self, elem: DataElement, vr: str, action: str, tag_path: str, state: _Walk
    ) -> DataElement:
        modified = self._plan.longitudinal == "MODIFIED"
        unmodified = self._plan.longitudinal == "UNMODIFIED"
        if unmodified and action == "SHIFT":
            state.actions["K"] += 1
            return _copy_element(elem)
        if not modified:
            state.actions["D"] += 1
            return DataElement(elem.tag, vr, DATE_DUMMY if vr == "DA" else DATETIME_DUMMY)
        values = elem.value if isinstance(elem.value, MultiValue | list) else [elem.value]
        shifted = []
        for value in values:
            text = str(value or "")
            if not text:
                shifted.append("")
                continue
            new = (shift_da if vr == "DA" else shift_dt)(text, state.shift_days)
            if new is None:
                state.warnings.append(f"{tag_path}: unparseable {vr}, replaced with a dummy")
                new = DATE_DUMMY if vr == "DA" else DATETIME_DUMMY
            shifted.append(new)
        state.actions["shift"] += 1
        return DataElement(elem.tag, vr, shifted if len(shifted) > 1 else shifted[0])

    def _private(self, src: Dataset, tag: int, out: Dataset, state: _Walk, tag_path: str) -> None:
        """Remove a private element unless Retain Safe Private lists it (PS3.15 E.3.10)."""
        if self._plan.retain_safe_private:
            group, number = tag >> 16, tag & 0xFFFF
            try:
                if 0x0010 <= number <= 0x00FF:
                    creator = str(src[tag].value)
                    if any(c == creator and g == group for c, g, _ in self._safe_private):
                        out.add(_copy_element(src[tag]))
                        return
                elif number >= 0x1000:
                    creator_elem = src.get((group << 16) | (number >> 8))
                    creator = str(creator_elem.value) if creator_elem is not None else ""
                    if (creator, group, number & 0xFF) in self._safe_private:
                        out.add(_copy_element(src[tag]))
                        state.actions["K"] += 1
                        return
            except Exception as exc:
                state.warnings.append(
                    f"{tag_path}: private element unreadable ({type(exc).__name__})"
                )
        state.actions["private-removed"] += 1


def _put(out: Dataset, elem: DataElement) -> None:
    """``out.add(elem)`` for the walk's public, non-sequence elements, minus its checks.

    Dataset.__setitem__ re-derives the tag, looks for a private creator and resets pixel
    caches; none applies to a fresh dataset and a standard element. Sequences and
    private elements still go through it.
    """
    if elem.VR == "SQ" or elem.tag & 0x10000:
        out.add(elem)
    else:
        out._dict[elem.tag] = elem  # noqa: SLF001


def _raw_vr(tag: int, raw: RawDataElement) -> str | None:
    """The VR a raw element decodes as: its own, or the dictionary's when implicit or UN."""
    vr = raw.VR
    if vr is None or vr == "UN":
        entry = DicomDictionary.get(tag)
        vr = entry[0] if entry else None
    return vr


def _text(ds: Dataset, tag: int) -> str:
    """``str(ds.<keyword> or "")`` by tag: the keyword lookup costs more than the value."""
    elem = ds.get(tag)
    return str(elem.value or "") if elem is not None else ""


def _instance_number(ds: Dataset) -> str:
    """``str(ds.get("InstanceNumber", ""))``, by tag; an empty element gives "None"."""
    elem = ds.get(INSTANCE_NUMBER)
    return "" if elem is None else str(elem.value)


def _tag_path(path: str, tag: int) -> str:
    """``path`` + ``(gggg,eeee)``: where an element sits, for warnings and item paths."""
    return f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _inherit_encoding(src: Dataset, out: Dataset) -> tuple[bool, bool] | None:
    """Give ``out`` the encoding ``src`` was read with, so undecoded elements stay valid.

    Returns that encoding, or None when unknown: then no element is kept undecoded. A raw
    element read in another encoding than its dataset claims (malformed files) is decoded.
    """
    implicit, little = getattr(src, "original_encoding", (None, None))
    if implicit is None or little is None:
        return None
    out.set_original_encoding(implicit, little, src.original_character_set)
    return implicit, little


def _copy_element(elem: DataElement) -> DataElement:
    """A new element sharing the (immutable) value, so the output never aliases the input.

    Pixel Data bytes are shared, not copied; multi-values are copied shallowly.
    """
    new = copy.copy(elem)
    if isinstance(elem.value, MultiValue):
        new._value = copy.copy(elem.value)  # noqa: SLF001 - avoid re-validating each item
    return new
