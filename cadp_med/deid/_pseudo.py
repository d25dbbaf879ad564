"""Keyed pseudonyms and date shifts (PS3.15 E.1.1 hashing note, E.3.6 modified dates).

Every pseudonym is HMAC-SHA256 under the run's key of a labelled input, so the same key maps
the same identifier to the same pseudonym on every machine and run, and another key gives
unlinkable pseudonyms.

* UID: ``"2.25." + int(HMAC(key, "uid:" + uid)[:16])`` (a UUID-derived UID, PS3.5 B.2; at
  most 5 + 39 = 44 characters).
* Patient ID: ``"P" + base32(HMAC(key, "patient:" + PatientID)[:10])``. An empty Patient ID
  is keyed by ``"patient:" + StudyInstanceUID`` so it is still deterministic per study.
* Date shift: ``-(1 + int(HMAC(key, "date-shift" + PatientID)[:8]) % 3650)`` days, in
  -3650..-1 and never zero, the same for every date of one patient, so intervals survive.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from pydicom.uid import UID_dictionary

MAX_SHIFT_DAYS = 3650


def keyed_digest(key: bytes, label: str) -> bytes:
    """HMAC-SHA256 of ``label`` (UTF-8) under ``key``."""
    return hmac.new(key, label.encode("utf-8"), hashlib.sha256).digest()


def pseudonym_uid(key: bytes, uid: str) -> str:
    """The keyed UID that replaces instance UID ``uid`` (action U)."""
    return "2.25." + str(int.from_bytes(keyed_digest(key, "uid:" + uid)[:16], "big"))


def is_registered_uid(uid: str) -> bool:
    """True for UIDs of the standard (SOP classes, transfer syntaxes, coding schemes...)."""
    return uid in UID_dictionary


def patient_token(key: bytes, patient_id: str, study_uid: str = "") -> str:
    """Base32 token behind the Patient ID and Patient Name pseudonyms."""
    label = "patient:" + (patient_id if patient_id else study_uid)
    return base64.b32encode(keyed_digest(key, label)[:10]).decode("ascii")


def date_shift_days(key: bytes, patient_id: str) -> int:
    """The per-patient date offset in days, in ``-MAX_SHIFT_DAYS..-1``."""
    number = int.from_bytes(keyed_digest(key, "date-shift" + patient_id)[:8], "big")
    return -(1 + number % MAX_SHIFT_DAYS)


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value ``YYYYMMDD`` (or legacy ``YYYY.MM.DD``); None if unparseable."""
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return (day + dt.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of a DT value; the time and offset parts stay as they are."""
    text = value.strip()
    if len(text) < 8:
        return None
    shifted = shift_da(text[:8], days)
    return None if shifted is None else shifted + text[8:]
