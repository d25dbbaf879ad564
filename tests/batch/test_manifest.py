"""The manifest through the local backend and the ``cadp-med batch`` commands."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadp_med import AnonymizeOptions, ConfigError
from cadp_med.batch import Manifest, read_input_list, retry_batch, run_batch, studies_in_folder
from cadp_med.cli import app
from tests.batch.conftest import phi_values

KEY = b"batch-test-key"
HEADER_ONLY = AnonymizeOptions(pixels="keep")


def _worklist(tmp_path: Path, study_set: Path, *names: str) -> Path:
    listing = tmp_path / "worklist.txt"
    lines = ["# ETL worklist", "", *(str(study_set / name) for name in names)]
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return listing


def test_missing_study_fails_with_category_then_retry_completes_it(
    tmp_path: Path, study_set: Path
) -> None:
    listing = _worklist(tmp_path, study_set, "study-a", "study-late")
    out = tmp_path / "out"
    summary = run_batch(read_input_list(listing), out, key=KEY, options=HEADER_ONLY)
    assert summary.status["states"] == {"pending": 0, "running": 0, "done": 1, "failed": 1}
    assert summary.status["failures"] == {"input-missing": 1}
    assert summary.exit_code == 1

    # The study arrives; retry runs only it, with the stored options.
    shutil.copytree(study_set / "study-b", study_set / "study-late")
    again = retry_batch(out / "manifest.sqlite", key=KEY)
    assert again.ran == 1
    assert again.status["states"]["done"] == 2
    with Manifest(out / "manifest.sqlite") as book:
        rows = {Path(row.path).name: row for row in book.studies()}
    assert rows["study-late"].attempts == 2
    assert rows["study-late"].error is None
    assert rows["study-a"].attempts == 1
    assert rows["study-late"].input == str(study_set / "study-late")

    # A finished batch: both a retry and a rerun do nothing.
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm"))
    assert retry_batch(out / "manifest.sqlite", key=KEY).ran == 0
    assert run_batch(read_input_list(listing), out, key=KEY, options=HEADER_ONLY).ran == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dcm")) == before


def test_retry_refuses_another_key_and_rerun_refuses_other_options(
    tmp_path: Path, study_set: Path
) -> None:
    out = tmp_path / "out"
    run_batch(studies_in_folder(study_set), out, key=KEY, options=HEADER_ONLY)
    with pytest.raises(ConfigError, match="another key"):
        retry_batch(out / "manifest.sqlite", key=b"other-key")
    with pytest.raises(ConfigError, match="other options"):
        run_batch(
            studies_in_folder(study_set), out, key=KEY, options=AnonymizeOptions(pixels="blank")
        )


def test_manifest_holds_no_phi_and_no_key(tmp_path: Path, study_set: Path) -> None:
    out = tmp_path / "out"
    summary = run_batch(studies_in_folder(study_set), out, key=KEY, options=HEADER_ONLY)
    assert summary.status["states"]["done"] == 4
    data = (out / "manifest.sqlite").read_bytes()
    values = phi_values(study_set)
    assert len(values) >= 4  # the check below must be able to fail
    leaked = [value for value in values if value.encode() in data]
    assert leaked == []
    assert KEY not in data
    options = json.loads(
        sqlite3.connect(out / "manifest.sqlite")
        .execute("SELECT options_json FROM run_config")
        .fetchone()[0]
    )
    assert options["pixels"] == "keep"


def test_folder_rule_subfolders_are_studies_loose_folder_is_one(
    tmp_path: Path, study_set: Path
) -> None:
    assert [Path(s.path).name for s in studies_in_folder(study_set)] == [
        "study-a",
        "study-b",
        "study-c",
        "study-d",
    ]
    loose = studies_in_folder(study_set / "study-d")
    assert [s.path for s in loose] == [str(study_set / "study-d")]


def test_cli_status_json_and_retry_noop(tmp_path: Path, study_set: Path, monkeypatch) -> None:
    monkeypatch.setenv("CADP_MED_KEY", KEY.decode())
    out = tmp_path / "out"
    listing = _worklist(tmp_path, study_set, "study-c", "study-gone")
    run_batch(read_input_list(listing), out, key=KEY, options=HEADER_ONLY)
    runner = CliRunner()
    result = runner.invoke(app, ["batch", "status", str(out / "manifest.sqlite"), "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["failures"] == {"input-missing": 1}
    assert [row["state"] for row in data["study_rows"]] == ["done", "failed"]

    text = runner.invoke(app, ["batch", "status", str(out / "manifest.sqlite")])
    assert "failed: " + str(study_set / "study-gone") in text.output

    # Retrying an input that is still missing fails again, with one more attempt.
    result = runner.invoke(app, ["batch", "retry", str(out / "manifest.sqlite"), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.output)["ran"] == 1
    with Manifest(out / "manifest.sqlite") as book:
        assert [row.attempts for row in book.studies("failed")] == [2]


def test_cli_anonymize_backend_local_runs_a_batch_then_noop(
    tmp_path: Path, study_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADP_MED_KEY", KEY.decode())
    out = tmp_path / "out"
    args = ["anonymize", str(study_set), "-o", str(out), "--pixels", "keep"]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--backend", "local", "--workers", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["ran"], data["states"]["done"], data["outputs"]["written"]) == (4, 4, 33)
    listing = _worklist(tmp_path, study_set, "study-a", "study-b", "study-c", "study-d")
    again = runner.invoke(
        app,
        ["anonymize", "--input-list", str(listing), "-o", str(out), "--pixels", "keep", "--json"],
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["ran"] == 0
