"""The local backend: a process pool over studies equals one process, and survives a kill."""

from __future__ import annotations

from pathlib import Path

from cadp_med import AnonymizeOptions
from cadp_med.batch import Manifest, run_batch, studies_in_folder
from tests.batch._faults import CrashOnce
from tests.batch.conftest import instance_bytes, stray_files

KEY = b"batch-test-key"
HEADER_ONLY = AnonymizeOptions(pixels="keep")


def test_pool_of_two_equals_one_process(tmp_path: Path, study_set: Path) -> None:
    studies = studies_in_folder(study_set)
    run_batch(studies, tmp_path / "one", key=KEY, options=HEADER_ONLY, workers=1)
    run_batch(studies, tmp_path / "two", key=KEY, options=HEADER_ONLY, workers=2)
    one, two = instance_bytes(tmp_path / "one"), instance_bytes(tmp_path / "two")
    assert len(one) == 33
    assert one == two


def test_killed_pool_worker_study_is_retried_without_duplicates(
    tmp_path: Path, study_set: Path
) -> None:
    studies = studies_in_folder(study_set)
    run_batch(studies, tmp_path / "ref", key=KEY, options=HEADER_ONLY)
    crash = CrashOnce(tmp_path / "crashed.marker", "study-a")
    out = tmp_path / "out"
    summary = run_batch(studies, out, key=KEY, options=HEADER_ONLY, workers=2, study_runner=crash)
    assert (tmp_path / "crashed.marker").exists()
    assert summary.status["states"]["done"] == 4
    with Manifest(out / "manifest.sqlite") as book:
        row = next(r for r in book.studies() if Path(r.path).name == "study-a")
    assert row.attempts == 2
    # The instance processed before the kill was still waiting for its group commit
    # (a temporary file, never renamed into place): the retry writes it, once.
    assert row.counts["skipped_done"] == 0
    assert instance_bytes(out) == instance_bytes(tmp_path / "ref")
    assert stray_files(out) == []
