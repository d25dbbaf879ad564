"""The node run in-process: resuming from the ledger after a crash, and DICOM TLS."""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pydicom
import pytest

from cadp_med.net import Node
from cadp_med.net._spool import LEDGER, Ledger, Spool, uid_key
from cadp_med.net.config import parse_config
from tests.net._peers import LOOPBACK, free_port, study_files, wait_for

pytestmark = pytest.mark.network


def base_config(tmp_path: Path, **extra: object) -> dict[str, object]:
    config: dict[str, object] = {
        "ae_title": "CADPNODE",
        "port": free_port(),
        "spool": "spool",
        "staging": "staging",
        "quarantine": "quarantine",
        "dead_letter": "dead-letter",
        "idle_seconds": 0.2,
        "allow": [{"ae_title": "MODALITY", "host": LOOPBACK}],
        "destinations": [{"type": "folder", "name": "share", "path": "share"}],
    }
    config.update(extra)
    return config


def copy_anonymizer(source: Path, output: Path, study: str) -> object:
    """Stands in for anonymize_study: output file names are the spool names."""
    output.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.dcm"):
        shutil.copy(path, output / path.name)
    return None


def _storage_ae() -> object:
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    return ae


def test_restart_after_partial_delivery_sends_only_the_rest(tmp_path: Path) -> None:
    config = parse_config(base_config(tmp_path), tmp_path)
    spool = Spool(config.spool, config.staging)
    study = uid_key("1.2.3.4")
    names = []
    for index, path in enumerate(study_files()[:4]):
        sop = uid_key(f"1.2.3.4.{index}", 32)
        spool.store(study, sop, path.read_bytes())
        names.append(f"{sop}.dcm")
    # The state a crash leaves: two files delivered and in the ledger, no DONE marker.
    ledger = Ledger(config.staging / study / LEDGER)
    for name in names[:2]:
        ledger.record("share", name)

    node = Node(config, anonymizer=copy_anonymizer)
    node.start()
    try:
        wait_for(
            lambda: node.report()["studies_pending"] == 0 and node.report()["sent"],
            10,
            "the resumed study",
        )
    finally:
        node.stop()
    delivered = sorted(p.name for p in (tmp_path / "share").iterdir())
    assert delivered == sorted(names[2:]), "files in the ledger must not be sent again"
    assert not (config.spool / study).exists(), "delivered study must leave the spool"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")
def test_tls_association(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
    from pynetdicom import AE

    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(tmp_path / "node.pem"),
            "-out",
            str(tmp_path / "node.crt"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("CADP_MED_KEY", "tls-test-key-0123456789abcdef")
    config = parse_config(
        base_config(tmp_path, tls={"cert": "node.crt", "key": "node.pem"}), tmp_path
    )
    node = Node(config)
    node.start()
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        plain = ae.associate(LOOPBACK, node.port, ae_title="CADPNODE")
        assert not plain.is_established, "a plain TCP peer must not get through"
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tmp_path / "node.crt")
        assoc = ae.associate(
            LOOPBACK, node.port, ae_title="CADPNODE", tls_args=(client, "127.0.0.1")
        )
        assert assoc.is_established
        assert assoc.send_c_store(study_files()[0]).Status == 0x0000
        assoc.release()
        wait_for(lambda: list((tmp_path / "share").rglob("*.dcm")), 20, "the TLS-sent file")
    finally:
        node.stop()


def test_spool_size_tolerates_a_study_removed_while_it_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /metrics sums the spool while the worker deletes delivered studies; a file listed
    # and then gone must not fail the request (the client saw a dropped connection).
    spool = Spool(tmp_path / "spool", tmp_path / "staging")
    kept = spool.store("study-a", "one", b"x" * 100)
    gone = spool.store("study-b", "two", b"y" * 50)
    real_glob = Path.glob

    def listing_then_removal(self: Path, pattern: str):  # type: ignore[no-untyped-def]
        found = list(real_glob(self, pattern))
        gone.unlink()
        return iter(found)

    monkeypatch.setattr(Path, "glob", listing_then_removal)
    assert spool.size_bytes() == kept.stat().st_size == 100


def test_header_only_study_is_delivered_in_batches_while_it_arrives(tmp_path: Path) -> None:
    # idle_seconds far beyond the test: whatever is delivered went out in batches of
    # batch_instances while the study was still open, and the study is not released.
    config = parse_config(
        base_config(tmp_path, idle_seconds=3600, batch_instances=3), tmp_path
    )
    sources = study_files()

    def delivered() -> list[str]:
        share = tmp_path / "share"
        return sorted(p.name for p in share.iterdir()) if share.is_dir() else []

    node = Node(config, anonymizer=copy_anonymizer)
    node.start()
    try:
        ae = _storage_ae()
        assoc = ae.associate(LOOPBACK, node.port, ae_title="CADPNODE")
        assert assoc.is_established
        for path in sources[:3]:
            assert assoc.send_c_store(path).Status == 0x0000
        wait_for(lambda: len(delivered()) == 3, 10, "the first batch")
        assert assoc.send_c_store(sources[3]).Status == 0x0000
        assoc.release()
        time.sleep(0.5)  # one instance is below the batch size: it waits for quiet
        assert len(delivered()) == 3
        report = node.report()
        assert report["studies_pending"] == 1 and report["sent"] == 3
        study = uid_key(str(pydicom.dcmread(sources[0]).StudyInstanceUID))
        handled = sorted(p.name for p in (config.spool / study / "handled").iterdir())
        assert handled == delivered()
    finally:
        node.stop()


def test_privatize_waits_for_the_whole_study(tmp_path: Path) -> None:
    # The window is fitted per series: a privatizing node must never take a batch early.
    config = parse_config(base_config(tmp_path, batch_instances=1), tmp_path)
    spool = Spool(config.spool, config.staging)
    for index, path in enumerate(study_files()[:2]):
        spool.store("study", f"sop{index}", path.read_bytes())
    seen: list[int] = []

    def counting_anonymizer(source: Path, output: Path, study: str) -> object:
        seen.append(len(list(source.glob("*.dcm"))))
        return copy_anonymizer(source, output, study)

    privatizing = dataclasses.replace(config, pixels="privatize", idle_seconds=0.3)
    node = Node(privatizing, anonymizer=counting_anonymizer)
    node._due["study"] = time.monotonic()  # as if both had just arrived
    node._arrived["study"] = 2
    node._worker.start()
    try:
        wait_for(lambda: seen, 10, "the study")
    finally:
        node.stop()
    assert seen == [2]


def test_quarantine_in_an_early_batch_keeps_the_originals(tmp_path: Path) -> None:
    config = parse_config(base_config(tmp_path), tmp_path)
    spool = Spool(config.spool, config.staging)
    for index, path in enumerate(study_files()[:2]):
        spool.store("study", f"sop{index}", path.read_bytes())

    class Quarantining:
        quarantined, written, quarantine_reasons = 1, 1, {"missing-pixel-data": 1}

    def quarantining_anonymizer(source: Path, output: Path, study: str) -> object:
        copy_anonymizer(source, output, study)
        return Quarantining()

    node = Node(config, anonymizer=quarantining_anonymizer)
    node._process("study", complete=False)  # a batch while the study is open
    assert spool.must_keep("study")
    node._process("study", complete=True)  # the quiet study: nothing new, released
    assert (config.spool / "study" / "DONE").exists()
    assert sorted(p.name for p in (config.spool / "study" / "handled").iterdir()) == [
        "sop0.dcm",
        "sop1.dcm",
    ]
