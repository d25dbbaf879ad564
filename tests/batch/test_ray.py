"""The Ray backend on a local 2-CPU Ray instance: same bytes as local, survives a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadp_med import AnonymizeOptions
from cadp_med.batch import Manifest, run_batch, studies_in_folder
from cadp_med.cli import app
from tests.batch._faults import CrashOnce
from tests.batch.conftest import instance_bytes, stray_files

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

KEY = b"batch-test-key"
HEADER_ONLY = AnonymizeOptions(pixels="keep")


def test_ray_output_is_byte_identical_to_local(tmp_path: Path, study_set: Path) -> None:
    studies = studies_in_folder(study_set)
    run_batch(studies, tmp_path / "local", key=KEY, options=HEADER_ONLY)
    summary = run_batch(studies, tmp_path / "ray", key=KEY, options=HEADER_ONLY, backend="ray")
    assert summary.status["states"]["done"] == 4
    local, ray = instance_bytes(tmp_path / "local"), instance_bytes(tmp_path / "ray")
    assert len(local) == 33
    assert sorted(ray) == sorted(local)  # same pseudonymous paths
    assert ray == local  # same bytes, ContributionDateTime masked


def test_killed_ray_worker_study_is_retried_once_without_duplicates(
    tmp_path: Path, study_set: Path
) -> None:
    studies = studies_in_folder(study_set)
    run_batch(studies, tmp_path / "ref", key=KEY, options=HEADER_ONLY)
    crash = CrashOnce(tmp_path / "crashed.marker", "study-a")
    out = tmp_path / "out"
    summary = run_batch(
        studies, out, key=KEY, options=HEADER_ONLY, backend="ray", study_runner=crash
    )
    assert (tmp_path / "crashed.marker").exists()
    assert summary.status["states"] == {"pending": 0, "running": 0, "done": 4, "failed": 0}
    with Manifest(out / "manifest.sqlite") as book:
        attempts = {Path(r.path).name: r.attempts for r in book.studies()}
        study_a = next(r for r in book.studies() if Path(r.path).name == "study-a")
    assert attempts == {"study-a": 2, "study-b": 1, "study-c": 1, "study-d": 1}
    # The instance processed before the kill was never committed: written once, on retry.
    assert study_a.counts["skipped_done"] == 0
    assert instance_bytes(out) == instance_bytes(tmp_path / "ref")
    assert stray_files(out) == []


def test_crash_on_every_attempt_fails_with_category(tmp_path: Path, study_set: Path) -> None:
    studies = [s for s in studies_in_folder(study_set) if Path(s.path).name == "study-b"]
    crash = CrashOnce(tmp_path / "marker", "study-b", every_attempt=True)
    summary = run_batch(
        studies,
        tmp_path / "out",
        key=KEY,
        options=HEADER_ONLY,
        backend="ray",
        max_attempts=2,
        study_runner=crash,
    )
    assert summary.status["failures"] == {"worker-crashed": 1}
    with Manifest(tmp_path / "out" / "manifest.sqlite") as book:
        assert [r.attempts for r in book.studies()] == [2]


def test_cli_retry_on_ray_of_finished_batch_does_nothing(
    tmp_path: Path, study_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADP_MED_KEY", KEY.decode())
    out = tmp_path / "out"
    run_batch(studies_in_folder(study_set), out, key=KEY, options=HEADER_ONLY, backend="ray")
    result = CliRunner().invoke(
        app, ["batch", "retry", str(out / "manifest.sqlite"), "--backend", "ray", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ran"] == 0
