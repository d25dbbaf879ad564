"""Throughput of ``cadp-med serve`` on loopback: storescu → node → storescp, header-only.

The floor is a plain dcmtk storescu → storescp transfer of the same study.  Reported:

* ``floor``: instances/s of storescu → storescp;
* ``receive``: instances/s of storescu → node (durable spool writes, fsync per instance);
* ``end-to-end``: instances/s from the first byte sent to the last instance at
  storescp, with the ``idle_seconds`` quiet period subtracted (it is a policy wait,
  not work);
* the ratio floor / end-to-end.

Run from the repository root: ``python benchmarks/bench_node.py [--copies 30]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.net._peers import (  # noqa: E402
    LOOPBACK,
    NodeProcess,
    StoreSCP,
    storescu,
    study_files,
    wait_for,
)

IDLE_SECONDS = 0.5


def make_study(folder: Path, copies: int) -> list[Path]:
    """``copies`` x the 7-instance CT study of dicomdirtests patient 98892001 as one
    study, fresh series and instance UIDs."""
    sources = study_files()
    study_uid = generate_uid()
    paths = []
    for copy in range(copies):
        series_uid = generate_uid()
        for index, source in enumerate(sources):
            ds = pydicom.dcmread(source)
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            path = folder / f"{copy:02d}-{index:03d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=30, help="copies of the 7 instances")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        root = Path(tmp)
        (root / "study").mkdir()
        files = make_study(root / "study", args.copies)
        count = len(files)

        floor_scp = StoreSCP(root / "floor")
        start = time.perf_counter()
        assert storescu(files, floor_scp.port, "MODALITY", floor_scp.ae_title).returncode == 0
        wait_for(lambda: len(floor_scp.files()) >= count, 60, "floor transfer", 0.01)
        floor = count / (time.perf_counter() - start)
        floor_scp.stop()

        scp = StoreSCP(root / "received")
        node = NodeProcess(
            root / "node",
            {
                "allow": [{"ae_title": "MODALITY", "host": LOOPBACK}],
                "idle_seconds": IDLE_SECONDS,
                "destinations": [
                    {
                        "type": "cstore",
                        "name": "scp",
                        "ae_title": scp.ae_title,
                        "host": LOOPBACK,
                        "port": scp.port,
                    }
                ],
            },
        ).start()
        try:
            start = time.perf_counter()
            assert storescu(files, node.port, "MODALITY", "CADPNODE").returncode == 0
            receive_s = time.perf_counter() - start
            try:
                wait_for(lambda: len(scp.files()) >= count, 300, "node transfer", 0.01)
            except AssertionError:
                print(node.log()[-3000:], node.metrics(), file=sys.stderr)
                raise
            total_s = time.perf_counter() - start
        finally:
            node.stop()
            scp.stop()
        end_to_end = count / (total_s - IDLE_SECONDS)
        print(f"instances: {count} (header-only, pixels = keep, loopback)")
        print(f"floor      storescu -> storescp        : {floor:8.1f} instances/s")
        print(f"receive    storescu -> node spool      : {count / receive_s:8.1f} instances/s")
        print(
            f"end-to-end storescu -> node -> storescp: {end_to_end:8.1f} instances/s "
            f"(idle_seconds {IDLE_SECONDS} subtracted)"
        )
        print(f"ratio floor / end-to-end               : {floor / end_to_end:8.2f}x")


if __name__ == "__main__":
    main()
