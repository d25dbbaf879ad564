"""A killed run resumes to the same output; a 1,000-slice study stays under 2 GB RSS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom

from tests.pixels._helpers import cli, cli_env, instances, synthetic_ct_series


def _command(src: Path, out: Path, model: Path) -> list[str]:
    exe = str(Path(sys.executable).parent / "cadp-med")
    return [
        exe,
        "anonymize",
        str(src),
        "-o",
        str(out),
        "--model",
        str(model),
        "--seed",
        "7",
        "--device",
        "cpu",
        "--json",
    ]


def test_kill_and_resume_gives_the_same_output(tmp_path: Path, model_path: Path) -> None:
    src = synthetic_ct_series(tmp_path / "in", 60)
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(src, out, model_path),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.rglob("*.dcm"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = len(instances(out))
    assert 0 < partial < 60, "the kill must land in the middle of the run"
    rerun = cli(*_command(src, out, model_path)[1:])
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    clean = cli(*_command(src, tmp_path / "clean", model_path)[1:])
    assert clean.returncode == 0
    resumed, fresh = instances(out), instances(tmp_path / "clean")
    assert sorted(resumed) == sorted(fresh)  # same pseudonyms, no duplicates
    assert len(resumed) == 60
    assert not list(out.rglob(".tmp-*"))  # no partial files
    for name, path in resumed.items():
        a, b = pydicom.dcmread(path), pydicom.dcmread(fresh[name])
        assert a.PixelData == b.PixelData, name  # --seed: the same pixels


def test_thousand_slice_study_peak_rss(tmp_path: Path, model_path: Path) -> None:
    src = synthetic_ct_series(tmp_path / "in", 1000, side=64)
    probe = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    command = _command(src, tmp_path / "out", model_path)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", probe, *command], env=cli_env(), capture_output=True, text=True
    )
    code, rss_kib = (int(v) for v in result.stdout.split())
    seconds = time.monotonic() - started
    print(f"1000 slices 64x64: {seconds:.1f} s, peak RSS {rss_kib / 1024:.0f} MiB")
    assert code == 0
    assert len(instances(tmp_path / "out")) == 1000
    assert rss_kib < 2 * 1024 * 1024
