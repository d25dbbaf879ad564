"""Properties of the keyed pseudonym and date-shift functions (PS3.15 E.1.1, E.3.6)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pydicom
from hypothesis import given
from hypothesis import strategies as st

from cadp_med.deid._pseudo import (
    MAX_SHIFT_DAYS,
    date_shift_days,
    pseudonym_uid,
    shift_da,
    shift_dt,
)
from cadp_med.testing.phi_corpus import load_phi_strings
from tests.deid.conftest import KEY, deidentify

dates = st.dates(min_value=dt.date(1900, 1, 1) + dt.timedelta(days=MAX_SHIFT_DAYS))


@given(st.text(min_size=0, max_size=64))
def test_shift_is_nonzero_and_bounded(patient_id: str) -> None:
    assert -MAX_SHIFT_DAYS <= date_shift_days(KEY, patient_id) <= -1


@given(dates, dates, st.text(max_size=16))
def test_shift_keeps_intervals(a: dt.date, b: dt.date, patient_id: str) -> None:
    days = date_shift_days(KEY, patient_id)
    sa, sb = shift_da(a.strftime("%Y%m%d"), days), shift_da(b.strftime("%Y%m%d"), days)
    assert sa is not None and sb is not None
    interval = dt.datetime.strptime(sb, "%Y%m%d") - dt.datetime.strptime(sa, "%Y%m%d")
    assert interval.days == (b - a).days


def test_shift_dt_keeps_time_and_offset() -> None:
    assert shift_dt("20200301101112.5+0100", -1) == "20200229101112.5+0100"
    assert shift_da("2020.03.01", -1) == "20200229"
    assert shift_da("garbage", -1) is None


@given(st.from_regex(r"[1-9][0-9]{0,8}(\.[1-9][0-9]{0,8}){1,6}", fullmatch=True))
def test_pseudonym_uid_is_valid_and_deterministic(uid: str) -> None:
    new = pseudonym_uid(KEY, uid)
    assert new == pseudonym_uid(KEY, uid)
    assert new.startswith("2.25.") and len(new) <= 64
    assert all(part.isdigit() for part in new.split("."))


def test_warnings_and_action_names_carry_no_values(phi_corpus: Path) -> None:
    injected = load_phi_strings(phi_corpus)
    for path in sorted(phi_corpus.rglob("*.dcm")):
        result = deidentify()(pydicom.dcmread(path))
        text = " ".join(result.warnings) + " ".join(result.actions)
        assert not [value for value in injected if value in text]
