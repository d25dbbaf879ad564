"""Group commits: no audit record ever reaches the disk before the file it names."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.io import audit as audit_module
from cadp_med.io.audit import read_audit_log
from tests.conftest import pydicom_file

KEY = b"durability-test-key-0123456789ab"


def _study(folder: Path, copies: int, name: str = "CT_small.dcm") -> Path:
    folder.mkdir(parents=True)
    ds = pydicom.dcmread(pydicom_file(name))
    for index in range(copies):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{index + 1}"
        ds.save_as(folder / f"{index:04d}.dcm", enforce_file_format=True)
    return folder


class _Trace:
    """The order of fsyncs, renames and audit commits of a real run, by path."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        real_fsync, real_replace = os.fsync, os.replace
        real_commit = audit_module.AuditLog.commit

        def fsync(fd: int) -> None:
            real_fsync(fd)
            self._add("fsync", os.readlink(f"/proc/self/fd/{fd}"))

        def replace(source: str, target: object) -> None:
            real_replace(source, target)
            self._add("rename", f"{source}\0{target}")

        def commit(log: audit_module.AuditLog) -> None:
            held = log.pending
            real_commit(log)
            if held:
                self._add("audit", str(len(read_audit_log(log.path))))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(audit_module.AuditLog, "commit", commit)

    def _add(self, kind: str, what: str) -> None:
        with self._lock:
            self.events.append((kind, what))

    def audited(
        self, records: list[dict[str, object]]
    ) -> Iterator[tuple[dict[str, object], set[str], dict[str, str]]]:
        """Each audit record with what had happened before its commit: the paths
        fsynced, and each rename's source by its target. Every record must belong to
        a traced commit."""
        seen = 0
        for position, (kind, what) in enumerate(self.events):
            if kind != "audit":
                continue
            before = self.events[:position]
            fsynced = {path for done, path in before if done == "fsync"}
            renames = {
                target: source
                for done, path in before
                if done == "rename"
                for source, target in [path.split("\0")]
            }
            for record in records[seen : int(what)]:
                yield record, fsynced, renames
            seen = int(what)
        assert seen == len(records), "records were audited outside the traced commits"


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
@pytest.mark.parametrize("mode", ["group", "file"])
def test_every_audited_file_was_fsynced_with_its_folders_before_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    study = _study(tmp_path / "in", 130)  # more than two groups of 64
    out = tmp_path / "out"
    trace = _Trace(monkeypatch)
    options = AnonymizeOptions(pixels="keep", durability=mode)  # type: ignore[arg-type]
    summary = anonymize_study(study, out, key=KEY, options=options)
    assert summary.written == 130
    events = trace.events
    audits = [i for i, (kind, _) in enumerate(events) if kind == "audit"]
    assert len(audits) >= 3  # grouped: several commits, not one per file or one at the end
    records = read_audit_log(summary.audit_log)
    assert len(records) == 130
    for record, fsynced, renames in trace.audited(records):
        target = str(out / str(record["output"]))
        assert target in renames, "a file was audited before it was in place"
        # Its bytes: the temporary file fsynced before the rename (group mode
        # fsyncs the part; /proc names the part until the rename).
        rename_at = events.index(("rename", f"{renames[target]}\0{target}"))
        assert any(
            kind == "fsync" and what == renames[target] for kind, what in events[:rename_at]
        ), "a file was renamed into place before its bytes were on disk"
        # Its name: every folder from the series up to the output root.
        folder = Path(target).parent
        while True:
            assert str(folder) in fsynced, "an audited file's folder entry was not synced"
            if folder == out:
                break
            folder = folder.parent


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fds")
def test_every_quarantine_line_follows_its_durable_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Quarantine copies join the run's group commit: each copy (and its reason file)
    # must be fsynced and renamed into place, and the quarantine folder synced, before
    # the audit line that names the quarantined input is written.
    study = _study(tmp_path / "in", 90)
    for path in sorted(study.iterdir())[::6]:  # 15 inputs without Pixel Data
        ds = pydicom.dcmread(path)
        del ds.PixelData
        ds.save_as(path, enforce_file_format=True)
    quarantine = tmp_path / "quarantine"
    trace = _Trace(monkeypatch)
    options = AnonymizeOptions(pixels="keep", quarantine=quarantine)
    summary = anonymize_study(study, tmp_path / "out", key=KEY, options=options)
    assert summary.quarantined == 15
    records = read_audit_log(summary.audit_log)
    assert len(records) == 90
    for record, fsynced, renames in trace.audited(records):
        if record["status"] != "quarantined":
            continue
        stem = quarantine / str(record["input_path_hash"])[:16]
        for target in (f"{stem}.dcm", f"{stem}.reason.json"):
            assert target in renames, "a quarantine line came before its copy"
            assert renames[target] in fsynced, "a copy was renamed before its fsync"
        assert str(quarantine) in fsynced, "the quarantine folder was not synced"


def test_a_failed_commit_leaves_no_file_and_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(tmp_path / "in", 10)
    out = tmp_path / "out"
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            raise OSError(errno.EIO, "simulated I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="simulated"):
        anonymize_study(study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert not list(out.rglob("*.dcm"))
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert read_audit_log(out / "audit.jsonl") == []
    monkeypatch.setattr(os, "fsync", real_fsync)
    again = anonymize_study(study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert again.written == 10


def test_a_failed_later_commit_stops_the_run_and_audits_only_what_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second group's commit fails. The run must stop with the error, the first
    # group stays audited, and nothing of the failed group (or after it) is in place
    # or audited; the rerun does the rest.
    study = _study(tmp_path / "in", 200)
    out = tmp_path / "out"
    real_fsync = os.fsync
    parts_synced = []

    def failing(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".part"):
            parts_synced.append(fd)
            if len(parts_synced) > 64:
                raise OSError(errno.EIO, "simulated I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="simulated"):
        anonymize_study(study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    records = read_audit_log(out / "audit.jsonl")
    in_place = sorted(str(p.relative_to(out)) for p in out.rglob("*.dcm"))
    # Groups also close after a second, so the first may hold fewer than 64 files.
    assert 0 < len(records) <= 64
    assert sorted(str(r["output"]) for r in records) == in_place
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    monkeypatch.setattr(os, "fsync", real_fsync)
    again = anonymize_study(study, out, key=KEY, options=AnonymizeOptions(pixels="keep"))
    assert (again.written, again.skipped_done) == (200 - len(records), len(records))


def test_sigkill_mid_run_leaves_only_complete_audited_files_and_resumes(tmp_path: Path) -> None:
    study = _study(tmp_path / "in", 200)
    out = tmp_path / "out"
    command = [
        sys.executable, "-c", "from cadp_med.cli import app; app()", "anonymize", str(study),
        "-o", str(out), "--pixels", "keep",
    ]  # fmt: skip
    env = {**os.environ, "CADP_MED_KEY": KEY.decode()}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    audit = out / "audit.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not audit.exists() or audit.stat().st_size == 0):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    records = read_audit_log(audit)
    assert 0 < len(records) < 200, "the kill must land in the middle of the run"
    for record in records:
        assert (out / record["output"]).is_file()
    # Every output present, audited or not, is complete: renamed only once written.
    present = list(out.rglob("*.dcm"))
    assert len(present) >= len(records)
    for path in present:
        assert len(pydicom.dcmread(path).PixelData) == 128 * 128 * 2
    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    statuses = [r["status"] for r in read_audit_log(audit)[len(records) :]]
    assert statuses.count("skipped-done") == len(present)  # trusted, since complete
    assert statuses.count("written") == 200 - len(present)
    assert len(list(out.rglob("*.dcm"))) == 200
