from __future__ import annotations

from pathlib import Path

import pytest

from cadp_med.io._hashing import path_hash
from cadp_med.io.audit import AuditLog, read_audit_log


def test_records_are_appended_and_hold_no_path(tmp_path: Path) -> None:
    log_path = tmp_path / "out" / "audit.jsonl"
    source = tmp_path / "Doe^Jane" / "img.dcm"
    with AuditLog(log_path) as log:
        log.record(
            source,
            "written",
            output="P/1/2/3.dcm",
            actions={"X": 2, "D": 1},
            warnings=["(0010,0010): replaced"],
        )
        # Readable before close: flushed per record.
        assert len(read_audit_log(log_path)) == 1
    with AuditLog(log_path) as log:
        log.record(source, "quarantined", reason="truncated")
    records = read_audit_log(log_path)
    assert [r["status"] for r in records] == ["written", "quarantined"]
    assert records[0]["input_path_hash"] == path_hash(source)
    assert records[0]["actions"] == {"D": 1, "X": 2}
    assert "Doe" not in log_path.read_text()


def test_unknown_status_is_refused(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "a.jsonl") as log, pytest.raises(ValueError):
        log.record(tmp_path / "x", "done")


def test_fsync_is_grouped_and_every_line_is_readable_before_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from cadp_med.io import audit as audit_module

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(audit_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log_path = tmp_path / "audit.jsonl"
    log = AuditLog(log_path)
    for index in range(audit_module.SYNC_EVERY + 1):
        log.record(tmp_path / f"{index}.dcm", "written", output=f"out/{index}.dcm")
        # Flushed at once: a killed process loses no line.
        assert len(read_audit_log(log_path)) == index + 1
    assert len(synced) == 1  # one fsync for the first SYNC_EVERY records
    log.close()
    assert len(synced) == 2  # and one at close
