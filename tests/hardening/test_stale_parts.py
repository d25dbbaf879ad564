"""Temporary files of atomic writes: only dead processes' parts are swept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.io._atomic import _host_tag, atomic_write, part_prefix, remove_stale_parts
from tests.conftest import pydicom_file


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid  # reaped: no process has this id now (reuse is very unlikely)


def _one_file_study(folder: Path) -> Path:
    folder.mkdir()
    (folder / "a.dcm").write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    return folder


def test_part_names_carry_host_and_pid(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(stream) -> None:  # type: ignore[no-untyped-def]
        seen.extend(p.name for p in tmp_path.iterdir())
        stream.write(b"x")

    atomic_write(tmp_path / "out.bin", write)
    assert len(seen) == 1
    assert seen[0].startswith(f".tmp-{_host_tag()}-{os.getpid()}-")
    assert seen[0].endswith(".part")


def test_live_process_part_survives_dead_process_part_is_removed(tmp_path: Path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    live = sub / f"{part_prefix()}abc.part"
    dead = sub / f".tmp-{_host_tag()}-{_dead_pid()}-abc.part"
    other_host = sub / f".tmp-00000000-{_dead_pid()}-abc.part"
    foreign = sub / ".tmp-legacy.part"
    for path in (live, dead, other_host, foreign):
        path.write_bytes(b"partial")
    assert remove_stale_parts(tmp_path) == 1
    assert not dead.exists()
    assert live.exists() and other_host.exists() and foreign.exists()


def test_concurrent_study_part_survives_anonymize_study(tmp_path: Path) -> None:
    """A study starting in the same OUT must not delete a sibling's part in flight."""
    study = _one_file_study(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    sibling = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        in_flight = out / f".tmp-{_host_tag()}-{sibling.pid}-x.part"
        in_flight.write_bytes(b"partial")
        summary = anonymize_study(
            study, out, key=b"k" * 32, options=AnonymizeOptions(pixels="keep")
        )
        assert summary.written == 1
        assert in_flight.exists()
    finally:
        sibling.kill()
        sibling.wait()


def test_a_crashed_runs_quarantine_parts_are_swept_at_the_next_start(tmp_path: Path) -> None:
    """Quarantine copies are parts until their group commits: a killed run leaves some,
    and they hold identifiable originals, so the next run on that quarantine removes
    them like the output's own."""
    study = _one_file_study(tmp_path / "in")
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    left = quarantine / f".tmp-{_host_tag()}-{_dead_pid()}-abc.part"
    left.write_bytes(b"identifiable original")
    options = AnonymizeOptions(pixels="keep", quarantine=quarantine)
    anonymize_study(study, tmp_path / "out", key=b"k" * 32, options=options)
    assert not left.exists()
