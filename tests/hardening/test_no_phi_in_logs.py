"""No PHI leaves the library: logs, CLI output, audit log and quarantine notes hold none.

PHI markers are injected as malformed values (invalid dates and times, over-long
strings, values the declared character set cannot decode, broken files) because
those are what makes pydicom quote values in its warnings and exceptions.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.config import IGNORE

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.testing.phi_corpus import load_phi_strings, make_phi_corpus
from tests.hardening._files import KEY

MARKERS = {
    "PatientBirthDate": "PHIBIRTH7731",  # invalid DA
    "StudyTime": "PHITIME8842",  # invalid TM
    "PatientName": "PHINAME" + "Q" * 200,  # far over PN's 64 characters
    "PatientID": "PHIPID" + "9" * 100,  # over LO's 64
    "AccessionNumber": "PHIACC55!*#",  # odd characters for SH
    "PatientAge": "PHIAGE",  # invalid AS
}
BAD_CHARSET_PHI = "PHIBADCHARSET"


def _inject(paths: list[Path]) -> list[str]:
    """Inject malformed PHI values; return every marker string to look for."""
    settings = pydicom.config.settings
    previous = settings.writing_validation_mode, settings.reading_validation_mode
    settings.writing_validation_mode = settings.reading_validation_mode = IGNORE
    try:
        for index, path in enumerate(paths):
            ds = pydicom.dcmread(path)
            for keyword, value in MARKERS.items():
                setattr(ds, keyword, value)
            if index % 3 == 1:
                # Latin-1 declared, bytes that are not text in it or in UTF-8.
                ds.SpecificCharacterSet = "ISO_IR 192"
                ds.InstitutionName = BAD_CHARSET_PHI
                ds.save_as(path, enforce_file_format=True)
                raw = path.read_bytes().replace(
                    BAD_CHARSET_PHI.encode(), BAD_CHARSET_PHI[:-2].encode() + b"\xff\xfe"
                )
                path.write_bytes(raw)
                continue
            ds.save_as(path, enforce_file_format=True)
            if index % 3 == 2:
                path.write_bytes(path.read_bytes()[:-3000])  # truncated, PHI in the header
    finally:
        settings.writing_validation_mode, settings.reading_validation_mode = previous
    return [v[:12] for v in MARKERS.values()] + [BAD_CHARSET_PHI[:-2]]


def _leaks(text: str, markers: list[str]) -> list[str]:
    return [marker for marker in markers if marker in text]


@pytest.fixture
def phi_study(tmp_path: Path) -> tuple[Path, list[str]]:
    study = tmp_path / "in"
    paths = make_phi_corpus(study, n_patients=3, seed=7)
    # The corpus's own PHI strings too (names, IDs, addresses), at least 6 characters
    # long so that a short code cannot match by chance.
    corpus_phi = [value for value in load_phi_strings(study) if len(value) >= 6]
    markers = _inject(paths)
    return study, markers + corpus_phi


def test_library_logs_audit_and_quarantine_hold_no_phi(
    tmp_path: Path, phi_study: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    study, markers = phi_study
    out = tmp_path / "out"
    caplog.set_level(logging.DEBUG)
    summary = anonymize_study(study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert summary.quarantined > 0  # the malformed files did reach the error paths
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert _leaks(logged, markers) == []
    assert _leaks((out / "audit.jsonl").read_text(), markers) == []
    notes = "\n".join(p.read_text() for p in summary.quarantine.glob("*.reason.json"))
    assert notes and _leaks(notes, markers) == []


def test_cli_output_holds_no_phi(tmp_path: Path, phi_study: tuple[Path, list[str]]) -> None:
    study, markers = phi_study
    done = subprocess.run(
        [sys.executable, "-c", "from cadp_med.cli import app; app()", "anonymize",
         str(study), "-o", str(tmp_path / "out"), "--pixels", "keep", "--ephemeral-key"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1  # some quarantined
    assert _leaks(done.stdout + done.stderr, markers) == []
