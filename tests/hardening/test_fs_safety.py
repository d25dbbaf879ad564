"""File system safety: folder nesting, symlinks, the output lock, full disk, SIGTERM."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.cli import app
from cadp_med.errors import ConfigError
from cadp_med.io.audit import read_audit_log
from tests.hardening._files import KEY, pydicom_file

runner = CliRunner()
KEEP = AnonymizeOptions(pixels="keep")


def _study(folder: Path, copies: int = 1) -> Path:
    """``copies`` distinct CT instances (same pixels, new SOP Instance UIDs)."""
    import pydicom

    folder.mkdir(parents=True)
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    for index in range(copies):
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{zlib.crc32(bytes(folder))}.{index + 1}"
        ds.save_as(folder / f"{index:04d}.dcm", enforce_file_format=True)
    return folder


def test_output_inside_input_and_the_reverse_are_refused(tmp_path: Path) -> None:
    study = _study(tmp_path / "in")
    for output in (study, study / "out"):
        with pytest.raises(ConfigError, match="inside the input"):
            anonymize_study(study, output, key=KEY, options=KEEP)
    with pytest.raises(ConfigError, match="inside the output"):
        anonymize_study(study, tmp_path, key=KEY, options=KEEP)


def test_symlinks_out_of_the_input_are_not_followed(tmp_path: Path) -> None:
    outside = _study(tmp_path / "outside")
    study = _study(tmp_path / "in")
    (study / "link.dcm").symlink_to(outside / "0000.dcm")
    (study / "linked_folder").symlink_to(outside, target_is_directory=True)
    summary = anonymize_study(study, tmp_path / "out", key=KEY, options=KEEP)
    assert summary.written == 1  # the study's own file only
    reasons = {r["reason"] for r in read_audit_log(summary.audit_log)}
    assert {"symlink-outside-input", "symlinked-folder-not-followed"} <= reasons


def test_second_run_on_the_same_output_is_refused(tmp_path: Path) -> None:
    study = _study(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    handle = os.open(out / ".cadp-med.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress
        result = runner.invoke(
            app,
            ["anonymize", str(study), "-o", str(out), "--pixels", "keep", "--ephemeral-key"],
        )
        assert result.exit_code == 2
        assert "another cadp-med run is writing to this output folder" in result.output
        assert not list(out.rglob("*.dcm"))
    finally:
        os.close(handle)
    # Released (or left behind by a killed run): the next run goes ahead.
    assert anonymize_study(study, out, key=KEY, options=KEEP).written == 1


def test_batch_studies_share_one_output(tmp_path: Path) -> None:
    """The batch runner's parallel studies must not trip over the output lock."""
    from cadp_med.batch import run_batch, studies_in_folder

    root = tmp_path / "studies"
    for name in ("s1", "s2", "s3"):
        _study(root / name, copies=2)
    summary = run_batch(studies_in_folder(root), tmp_path / "out", key=KEY, options=KEEP, workers=2)
    assert summary.exit_code == 0
    assert summary.status["outputs"]["written"] == 6


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_is_a_clear_error_with_no_partial_files(tmp_path: Path, small_disk: Path) -> None:
    study = _study(tmp_path / "in", copies=40)  # 40 x 40 kB: more than the disk holds
    out = small_disk / "out"
    quarantine = small_disk / "q"
    result = runner.invoke(
        app,
        [
            "anonymize", str(study), "-o", str(out), "--quarantine", str(quarantine),
            "--pixels", "keep", "--ephemeral-key",
        ],
    )  # fmt: skip
    assert result.exit_code == 3
    assert "cannot write the output: the disk is full" in result.output
    assert not [p for p in small_disk.rglob("*") if p.name.startswith(".tmp-")]
    written = list(out.rglob("*.dcm"))
    assert 0 < len(written) < 40
    for record in read_audit_log(out / "audit.jsonl"):
        assert record["status"] == "written"  # nothing was quarantined for the disk


def test_sigterm_finishes_the_file_in_flight_and_exits_143(tmp_path: Path) -> None:
    study = _study(tmp_path / "in", copies=300)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", "from cadp_med.cli import app; app()", "anonymize",
         str(study), "-o", str(out), "--pixels", "keep", "--ephemeral-key", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    audit = out / "audit.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not audit.exists() or audit.stat().st_size == 0):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 143
    summary = json.loads(stdout)
    assert summary["interrupted"] is True
    records = read_audit_log(audit)  # every line complete JSON
    assert 0 < len(records) < 300
    assert len(records) == summary["written"] == len(list(out.rglob("*.dcm")))
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
