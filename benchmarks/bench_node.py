"""Throughput of ``cadp-med serve`` on loopback: storescu → node → storescp, header-only.

The floor is a plain dcmtk storescu → storescp transfer of the same study.  Reported:

* ``floor``: instances/s of storescu → storescp;
* ``ceiling``: instances/s of storescu → a pynetdicom SCP that acknowledges without
  storing anything: what the node's receive path can reach at best;
* ``stage``: instances/s of de-identification (``anonymize_study`` as the node runs it)
  and of forwarding (one C-STORE association to storescp), each alone in this process;
* ``receive``: instances/s of storescu → node (durable spool writes, fsync per instance);
* ``spool write alone``: milliseconds per instance of those durable writes by themselves;
* ``end-to-end``: instances/s from the first byte sent to the last instance at
  storescp, with the ``idle_seconds`` quiet period subtracted (it is a policy wait,
  not work), once with the whole study processed when quiet (``batch_instances = 0``,
  the node before batching) and once in batches while it arrives (the default);
* the ratios floor / end-to-end and floor / ceiling.

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


def pynetdicom_ceiling(files: list[Path]) -> float:
    """instances/s of storescu -> a pynetdicom SCP that acknowledges without storing.

    The node's receive path can be no faster: this is pynetdicom alone (its DUL and
    association threads poll their queues with 1 ms sleeps), no parse, no write.
    """
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    from cadp_med.net._scp import set_tcp_nodelay, transfer_syntaxes

    ae = AE(ae_title="CEILING")
    ae.maximum_pdu_size = 0
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, transfer_syntaxes())
    handlers = [
        (evt.EVT_CONN_OPEN, set_tcp_nodelay),
        (evt.EVT_C_STORE, lambda event: (event.encoded_dataset(), 0x0000)[1]),
    ]
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
    try:
        start = time.perf_counter()
        assert storescu(files, server.server_address[1], "MODALITY", "CEILING").returncode == 0
        return len(files) / (time.perf_counter() - start)
    finally:
        server.shutdown()


def spool_write_ms(root: Path, files: list[Path]) -> float:
    """Milliseconds per instance of the spool's durable write alone (temporary file,
    fsync, rename, fsync of the folder), which each C-STORE acknowledgement waits for."""
    from cadp_med.net._spool import durable_write

    spool = root / "spool-alone"
    payloads = [path.read_bytes() for path in files]
    start = time.perf_counter()
    for index, data in enumerate(payloads):
        durable_write(spool / f"{index:05d}.dcm", data)
    return (time.perf_counter() - start) / len(files) * 1000


def stage_rates(root: Path, files: list[Path]) -> tuple[float, float]:
    """instances/s of the node's two other stages alone, in this process: de-identifying
    the study as the node does (``anonymize_study``, header-only, two workers) and
    forwarding its outputs over one C-STORE association to storescp."""
    from cadp_med import AnonymizeOptions, anonymize_study
    from cadp_med.net._destinations import open_session
    from cadp_med.net.config import Destination

    source = files[0].parent
    output = root / "stage-out"
    options = AnonymizeOptions(pixels="keep", workers=2, quarantine=root / "stage-quarantine")
    start = time.perf_counter()
    key = b"bench-node-key-0123456789abcdef"
    summary = anonymize_study(source, output, key=key, options=options)
    deidentify = len(files) / (time.perf_counter() - start)
    assert summary.written == len(files)
    outputs = sorted(output.rglob("*.dcm"))
    scp = StoreSCP(root / "stage-received")
    try:
        destination = Destination(
            type="cstore", name="scp", ae_title=scp.ae_title, host=LOOPBACK, port=scp.port
        )
        start = time.perf_counter()
        with open_session(destination, outputs, "CADPNODE") as send:
            for path in outputs:
                send(path, path.name)
        forward = len(outputs) / (time.perf_counter() - start)
    finally:
        scp.stop()
    return deidentify, forward


def run_node(root: Path, files: list[Path], batch_instances: int) -> tuple[float, float]:
    """(receive, end-to-end) instances/s through a ``cadp-med serve`` process."""
    count = len(files)
    scp = StoreSCP(root / f"received-{batch_instances}")
    node = NodeProcess(
        root / f"node-{batch_instances}",
        {
            "allow": [{"ae_title": "MODALITY", "host": LOOPBACK}],
            "idle_seconds": IDLE_SECONDS,
            "batch_instances": batch_instances,
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
            wait_for(lambda: scp.count() >= count, 300, "node transfer", 0.01)
        except AssertionError:
            print(node.log()[-3000:], node.metrics(), file=sys.stderr)
            raise
        total_s = time.perf_counter() - start
    finally:
        node.stop()
        scp.stop()
    return count / receive_s, count / (total_s - IDLE_SECONDS)


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
        wait_for(lambda: floor_scp.count() >= count, 60, "floor transfer", 0.01)
        floor = count / (time.perf_counter() - start)
        floor_scp.stop()
        ceiling = pynetdicom_ceiling(files)
        whole_receive, whole = run_node(root, files, batch_instances=0)
        receive, end_to_end = run_node(root, files, batch_instances=64)
        deidentify, forward = stage_rates(root, files)
        spool_ms = spool_write_ms(root, files)

        rows = [
            ("floor      storescu -> storescp", floor),
            ("ceiling    storescu -> pynetdicom SCP, no storing", ceiling),
            ("stage      anonymize_study alone (2 workers)", deidentify),
            ("stage      C-STORE forwarding alone", forward),
            ("whole study when quiet (batch_instances = 0)", None),
            ("  receive    storescu -> node spool", whole_receive),
            ("  end-to-end storescu -> node -> storescp", whole),
            ("batches while arriving (batch_instances = 64, the default)", None),
            ("  receive    storescu -> node spool", receive),
            ("  end-to-end storescu -> node -> storescp", end_to_end),
        ]
        print(f"instances: {count} (header-only, pixels = keep, loopback)")
        for label, rate in rows:
            print(label if rate is None else f"{label:<50}: {rate:8.1f} instances/s")
        print(f"{'spool write alone (durable, per instance)':<50}: {spool_ms:8.2f} ms")
        print(f"(end-to-end: idle_seconds {IDLE_SECONDS} subtracted)")
        print(f"{'ratio floor / end-to-end (batches)':<50}: {floor / end_to_end:8.2f}x")
        print(f"{'ratio floor / end-to-end (whole study)':<50}: {floor / whole:8.2f}x")
        print(f"{'ratio floor / pynetdicom ceiling':<50}: {floor / ceiling:8.2f}x")


if __name__ == "__main__":
    main()
