"""Studies per minute, header-only: local backend (1 and 2 workers) against Ray (2 CPUs).

The study set is ``--copies`` copies of four real studies from pydicom's test files
(three dicomdirtests patients; CT_small with MR_small), each copy with new UIDs from
a fixed (keyed-hash) remap so that every copy writes its own outputs. Run::

    python benchmarks/bench_ray.py --copies 5

Ray is timed twice: with ``ray.init`` inside the timing (a cold batch) and on an
instance already running (steady state, what a long ETL batch sees).
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import pydicom
import pydicom.data

from cadp_med import AnonymizeOptions
from cadp_med.batch import run_batch, studies_in_folder

KEY = b"bench-ray-key"
_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _remap(uid: str, copy: int) -> str:
    digest = hashlib.sha256(f"bench-copy-{copy}:{uid}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def build_studies(root: Path, copies: int) -> tuple[int, int]:
    """Write ``copies`` x 4 study folders under ``root``; return (studies, instances)."""
    test_files = Path(pydicom.data.get_testdata_files("CT_small.dcm")[0]).parent
    sources = {
        "a": sorted((test_files / "dicomdirtests" / "77654033").rglob("*")),
        "b": sorted((test_files / "dicomdirtests" / "98892001").rglob("*")),
        "c": sorted((test_files / "dicomdirtests" / "98892003").rglob("*")),
        "d": [test_files / "CT_small.dcm", test_files / "MR_small.dcm"],
    }
    instances = 0
    for copy in range(copies):
        for name, files in sources.items():
            folder = root / f"study-{copy:02d}-{name}"
            folder.mkdir(parents=True)
            for index, path in enumerate(p for p in files if p.is_file()):
                ds = pydicom.dcmread(path)
                for keyword in _UID_KEYWORDS:
                    if keyword in ds:
                        setattr(ds, keyword, _remap(str(ds.data_element(keyword).value), copy))
                if ds.file_meta is not None and "MediaStorageSOPInstanceUID" in ds.file_meta:
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.save_as(folder / f"{index:04d}.dcm")
                instances += 1
    return copies * len(sources), instances


def _timed(label: str, studies_root: Path, out: Path, **kwargs: object) -> tuple[str, float, dict]:
    studies = studies_in_folder(studies_root)
    start = time.perf_counter()
    summary = run_batch(studies, out, key=KEY, options=AnonymizeOptions(pixels="keep"), **kwargs)
    seconds = time.perf_counter() - start
    return label, seconds, summary.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=5, help="copies of the 4 studies")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        n_studies, n_instances = build_studies(work / "studies", args.copies)
        print(f"{n_studies} studies, {n_instances} instances (header-only, --pixels keep)")
        runs = [
            _timed("local, 1 worker", work / "studies", work / "out-l1", workers=1),
            _timed("local, 2 workers", work / "studies", work / "out-l2", workers=2),
            _timed(
                "ray, 2 CPUs (init timed)",
                work / "studies",
                work / "out-r1",
                backend="ray",
                workers=2,
            ),
        ]
        import ray

        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        try:
            runs.append(
                _timed("ray, 2 CPUs (warm)", work / "studies", work / "out-r2", backend="ray")
            )
        finally:
            ray.shutdown()
        base = n_studies / runs[0][1]
        print(
            f"{'backend':28} {'seconds':>8} {'studies/min':>12} {'vs local-1':>10} "
            f"{'ms/instance':>12}  done/failed/quarantined"
        )
        for label, seconds, status in runs:
            rate = n_studies / seconds
            print(
                f"{label:28} {seconds:8.2f} {60 * rate:12.1f} {rate / base:10.2f} "
                f"{1000 * seconds / n_instances:12.2f}  {status['states']['done']}/"
                f"{status['states']['failed']}/{status['outputs']['quarantined']}"
            )
        for label in ("out-l2", "out-r1", "out-r2"):
            same = sorted(p.name for p in (work / label).rglob("*.dcm")) == sorted(
                p.name for p in (work / "out-l1").rglob("*.dcm")
            )
            print(f"{label}: same output paths as local-1: {same}")


if __name__ == "__main__":
    main()
