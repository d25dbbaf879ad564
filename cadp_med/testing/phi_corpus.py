"""A synthetic PHI corpus: real pixels, a distinctive fake identifier in every Annex E slot.

:func:`make_phi_corpus` starts from pydicom's ``CT_small.dcm`` and ``MR_small.dcm`` (real
pixels) and writes, per patient, one CT and one MR instance of one study. Every attribute of
PS3.15 Table E.1-1 whose VR can hold a value gets a value unique to (patient, attribute); so do
nested sequences (three levels) and a private block. The searchable strings are written to
``phi_strings.json`` beside the files and returned by :func:`load_phi_strings`.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from cadp_med.deid._tables import annex_e_table, parse_tag

PHI_FILE = "phi_strings.json"
UID_ROOT = "1.2.826.0.1.3680043.10.999"
PRIVATE_GROUP = 0x0009
PRIVATE_CREATOR = "CADP PHI TEST"
SIEMENS_GROUP = 0x0019
GRAPHIC_ANNOTATION_SEQUENCE = 0x00700001
# File meta and command groups are not dataset attributes; structural UIDs are set below.
SKIPPED_GROUPS = (0x0000, 0x0002)


class _Values:
    """Distinctive values per VR for one patient; remembers the searchable ones."""

    def __init__(self, patient: int, rng: random.Random) -> None:
        self.patient = patient
        self.rng = rng
        self.counter = 0
        self.searchable: dict[str, str] = {}  # value -> kind

    def token(self) -> str:
        self.counter += 1
        return f"PHI{self.patient}X{self.counter:04d}"

    def for_vr(self, vr: str) -> object:
        vr = vr.split(" or ")[0]
        token = self.token()
        if vr == "PN":
            value = f"{token}^GIVEN{token[3:]}"
            self.searchable[value] = "name"
            return value
        if vr in ("LO", "SH", "CS", "AE", "UC"):
            self.searchable[token] = "text"
            return token
        if vr in ("LT", "ST", "UT"):
            value = f"free text {token} about the patient"
            self.searchable[token] = "text"
            return value
        if vr == "UR":
            self.searchable[token] = "text"
            return f"http://example.invalid/{token}"
        if vr == "DA":
            day = dt.date(1970, 1, 1) + dt.timedelta(days=self.rng.randrange(1, 18000))
            value = day.strftime("%Y%m%d")
            self.searchable[value] = "date"
            return value
        if vr == "DT":
            day = dt.date(1970, 1, 1) + dt.timedelta(days=self.rng.randrange(1, 18000))
            value = day.strftime("%Y%m%d") + "101112.000000"
            self.searchable[value[:8]] = "date"
            return value
        if vr == "TM":
            return f"{self.rng.randrange(24):02d}{self.rng.randrange(60):02d}00"
        if vr == "UI":
            value = f"{UID_ROOT}.{self.patient}.{self.counter}"
            self.searchable[value] = "uid"
            return value
        if vr == "AS":
            return f"{self.rng.randrange(10, 99):03d}Y"
        if vr in ("DS", "IS"):
            return str(self.rng.randrange(1, 999))
        if vr in ("US", "SS", "UL", "SL", "UV", "SV"):
            return self.rng.randrange(1, 200)
        if vr in ("FL", "FD"):
            return float(self.rng.randrange(1, 200))
        if vr in ("OB", "OW", "UN"):
            self.searchable[token] = "text"
            return (token + " ").encode("ascii")[: len(token) // 2 * 2]
        return None  # SQ handled by the caller; AT, OF, OD... are left out


def _nested_item(values: _Values, depth: int) -> Dataset:
    """An item holding identity at this level and (below depth 3) one more level down."""
    item = Dataset()
    item.PersonName = values.for_vr("PN")
    item.InstitutionName = values.for_vr("LO")
    item.ReferencedSOPInstanceUID = values.for_vr("UI")
    item.ObservationDateTime = values.for_vr("DT")
    item.TextValue = values.for_vr("UT")
    if depth < 3:
        item.ContentSequence = [_nested_item(values, depth + 1)]
    return item


def _add_table_attributes(ds: Dataset, values: _Values) -> None:
    for record in annex_e_table()["attributes"]:
        tag_text, vr = str(record["tag"]), str(record["vr"])
        if "x" in tag_text or not vr:
            continue
        tag = parse_tag(tag_text)
        if tag >> 16 in SKIPPED_GROUPS or tag in ds:
            continue
        try:
            if vr == "SQ":
                item = _nested_item(values, 2)
                if tag == GRAPHIC_ANNOTATION_SEQUENCE:
                    text_object = Dataset()
                    text_object.UnformattedTextValue = values.for_vr("ST")
                    item.TextObjectSequence = [text_object]
                ds.add_new(tag, vr, [item])
                continue
            value = values.for_vr(vr)
            if value is not None:
                ds.add_new(tag, vr.split(" or ")[0], value)
        except Exception:  # an odd VR in a retired attribute: leave that slot empty
            continue


def _add_private_blocks(ds: Dataset, values: _Values) -> None:
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", values.for_vr("LO"))
    block.add_new(0x02, "PN", values.for_vr("PN"))
    block.add_new(0x03, "UI", values.for_vr("UI"))
    block.add_new(0x04, "DA", values.for_vr("DA"))
    block.add_new(0x05, "LT", values.for_vr("LT"))
    siemens = ds.private_block(SIEMENS_GROUP, "SIEMENS MR HEADER", create=True)
    siemens.add_new(0x0C, "IS", "1000")  # b-value: on the safe private list
    siemens.add_new(0x08, "CS", values.for_vr("CS"))  # not on the list: must go


def make_phi_corpus(out_dir: Path, *, n_patients: int = 3, seed: int = 0) -> list[Path]:
    """Write ``2 * n_patients`` PHI-laden instances under ``out_dir``; return their paths.

    Each patient has one study with a CT and an MR series; the MR references the CT image
    (Referenced Image Sequence) and both share a Frame of Reference, so tests can check that
    references map like the UIDs they point to.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths: list[Path] = []
    strings: dict[str, str] = {}
    for patient in range(n_patients):
        values = _Values(patient, rng)
        study_uid = values.for_vr("UI")
        frame_uid = values.for_vr("UI")
        patient_name = values.for_vr("PN")
        patient_id = values.for_vr("LO")
        birth_date = values.for_vr("DA")
        ct_uid = None
        for name in ("CT_small.dcm", "MR_small.dcm"):
            ds = pydicom.dcmread(get_testdata_file(name))
            for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
                del ds[keyword]
            ds.PatientName, ds.PatientID = patient_name, patient_id
            ds.PatientBirthDate = birth_date
            ds.StudyInstanceUID, ds.FrameOfReferenceUID = study_uid, frame_uid
            ds.SeriesInstanceUID = values.for_vr("UI")
            ds.SOPInstanceUID = values.for_vr("UI")
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.StudyDate = values.for_vr("DA")
            if ct_uid is not None:
                ref = Dataset()
                ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
                ref.ReferencedSOPInstanceUID = ct_uid
                ds.ReferencedImageSequence = [ref]
            else:
                ct_uid = ds.SOPInstanceUID
            _add_table_attributes(ds, values)
            _add_private_blocks(ds, values)
            path = out_dir / f"patient{patient}" / f"{name.split('_')[0].lower()}.dcm"
            path.parent.mkdir(exist_ok=True)
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        strings.update(values.searchable)
    (out_dir / PHI_FILE).write_text(json.dumps(strings, indent=0, sort_keys=True))
    return paths


def load_phi_strings(out_dir: Path) -> dict[str, str]:
    """The searchable PHI strings (value -> kind) injected by :func:`make_phi_corpus`."""
    return json.loads((Path(out_dir) / PHI_FILE).read_text())
