"""The drop-folder ETL script and the Airflow DAG example (Airflow is not imported)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.net._peers import study_files

ETL = Path(__file__).resolve().parents[2] / "pipelines" / "etl"


def run_etl(drop: Path, out: Path, hook_log: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {
            "CADP_MED": str(Path(sys.executable).parent / "cadp-med"),
            "CADP_MED_KEY": "etl-test-key-0123456789abcdef",
            "CADP_MED_ARGS": "--pixels keep",
            "MIN_AGE_MINUTES": "0",
        }
    )
    # The hook is any executable; this one records its arguments instead of paging anyone.
    hook = hook_log.with_suffix(".sh")
    hook.write_text(f'#!/bin/sh\necho "$1 $2" >> {hook_log}\n')
    hook.chmod(0o755)
    env["CADP_ALERT_HOOK"] = str(hook)
    return subprocess.run(
        ["bash", str(ETL / "anonymize_drop_folder.sh"), str(drop), str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_drop_folder_job_manifest_skip_and_alert(tmp_path: Path) -> None:
    drop, out, hook_log = tmp_path / "drop", tmp_path / "out", tmp_path / "hook.log"
    good = drop / "study-001"
    good.mkdir(parents=True)
    for path in study_files():
        shutil.copy(path, good / path.name)
    bad = drop / "study-002"
    bad.mkdir()
    (bad / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff")

    first = run_etl(drop, out, hook_log)
    assert first.returncode == 1, first.stderr
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    by_study = {line["study_dir"]: line for line in lines}
    assert by_study["study-001"]["exit_code"] == 0
    assert by_study["study-001"]["summary"]["written"] == len(study_files())
    assert by_study["study-002"]["exit_code"] != 0
    assert "study-002" in first.stderr
    assert hook_log.read_text().split() == ["study-002", str(by_study["study-002"]["exit_code"])]

    second = run_etl(drop, out, hook_log)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    # study-001 is done and skipped; only the failed study is tried again.
    assert [json.loads(x)["study_dir"] for x in lines[2:]] == ["study-002"]
    assert second.returncode == 1


def test_airflow_dag_shells_out_to_the_script() -> None:
    source = (ETL / "airflow_dag.py").read_text()
    tree = ast.parse(source)  # syntax only: Airflow is not a test dependency
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert {"DAG", "BashOperator"} <= calls
    assert "cadp_etl_script" in source
