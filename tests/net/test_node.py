"""End-to-end tests of ``cadp-med serve`` against real DICOM peers (dcmtk, Orthanc)."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pydicom
import pytest

from cadp_med.deid import verify_outputs
from tests.net._peers import (
    LOOPBACK,
    NodeProcess,
    OrthancProcess,
    StoreSCP,
    dcmtk,
    free_port,
    orthanc,
    storescu,
    study_files,
    wait_for,
)

pytestmark = pytest.mark.network

needs_dcmtk = pytest.mark.skipif(
    dcmtk("storescu") is None or dcmtk("storescp") is None,
    reason="dcmtk storescu/storescp not installed (apt-get install dcmtk)",
)
needs_orthanc = pytest.mark.skipif(
    orthanc() is None or dcmtk("storescu") is None,
    reason="Orthanc with the DICOMweb plugin or dcmtk not installed "
    "(apt-get install orthanc orthanc-dicomweb dcmtk)",
)

ALLOWED = {"ae_title": "MODALITY", "host": LOOPBACK}
LUA = Path(__file__).resolve().parents[2] / "pipelines" / "orthanc" / "cadp_forward.lua"


def sop_uids(files: list[Path]) -> list[str]:
    return [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files]


def cstore_to(scp: StoreSCP) -> dict[str, object]:
    return {
        "type": "cstore",
        "name": "pacs",
        "ae_title": scp.ae_title,
        "host": LOOPBACK,
        "port": scp.port,
    }


@needs_dcmtk
def test_storescu_to_node_to_storescp(tmp_path: Path) -> None:
    files = study_files()
    scp = StoreSCP(tmp_path / "received")
    node = NodeProcess(
        tmp_path / "node",
        {
            "allow": [ALLOWED],
            "destinations": [cstore_to(scp), {"type": "folder", "name": "share", "path": "share"}],
        },
    ).start()
    try:
        sent = storescu(files, node.port, "MODALITY", "CADPNODE")
        assert sent.returncode == 0, sent.stderr.decode(errors="replace")
        wait_for(
            lambda: len(scp.files()) >= len(files) and node.metrics()["studies_pending"] == 0,
            30,
            "the de-identified study at storescp",
        )
        received = scp.files()
        assert len(received) == len(files)
        assert len(set(sop_uids(received))) == len(files)
        assert not set(sop_uids(received)) & set(sop_uids(files)), "UIDs must be replaced"
        report = verify_outputs(files[0].parents[1], scp.folder)
        assert report.ok, (report.leaks, report.missing)
        assert report.files_checked == len(files)
        shared = sorted((node.folder / "share").rglob("*.dcm"))
        assert len(shared) == len(files)
        metrics = node.metrics()
        assert metrics["received"] == len(files)
        assert metrics["sent"] == 2 * len(files)
        assert metrics["dead_lettered"] == 0
        # Delivered and retain_spool = false: no PHI left behind in the spool.
        assert metrics["spool_bytes"] == 0
    finally:
        assert node.stop(signal.SIGTERM) == 0
        scp.stop()
    log_lines = [json.loads(line) for line in node.log().splitlines() if line.startswith("{")]
    assert any(line["event"] == "study delivered" for line in log_lines)
    original = pydicom.dcmread(files[0], stop_before_pixels=True)
    for value in (str(original.PatientName), str(original.PatientID), original.StudyInstanceUID):
        assert value not in node.log(), "no header value may reach the log"


@needs_orthanc
def test_orthanc_lua_to_node_to_orthanc_stow(tmp_path: Path) -> None:
    files = study_files()
    target = OrthancProcess(tmp_path / "orthanc-b", "ORTHANCB", {})
    node_port = free_port()
    source = OrthancProcess(
        tmp_path / "orthanc-a",
        "ORTHANCA",
        {
            "StableAge": 1,
            "LuaScripts": [str(LUA)],
            "DicomModalities": {
                "cadp": ["CADPNODE", LOOPBACK, node_port],
                "modality": ["MODALITY", LOOPBACK, free_port()],
            },
        },
    )
    node = NodeProcess(
        tmp_path / "node",
        {
            "port": node_port,
            "allow": [{"ae_title": "ORTHANCA", "host": LOOPBACK}],
            "destinations": [
                {"type": "stow", "name": "orthanc-b", "url": target.url("/dicom-web")}
            ],
        },
    ).start()
    try:
        sent = storescu(files, source.dicom_port, "MODALITY", "ORTHANCA")
        assert sent.returncode == 0, sent.stderr.decode(errors="replace")
        wait_for(
            lambda: (
                len(target.get("/instances")) >= len(files)
                and node.metrics()["studies_pending"] == 0
            ),
            45,
            "the study in Orthanc B",
        )
        assert len(target.get("/instances")) == len(files)
        patients = target.get("/patients")
        assert len(patients) == 1
        pseudo_id = target.get(f"/patients/{patients[0]}")["MainDicomTags"]["PatientID"]
        original_id = str(pydicom.dcmread(files[0], stop_before_pixels=True).PatientID)
        assert pseudo_id and pseudo_id != original_id
        assert len(target.get("/studies")) == 1
    finally:
        assert node.stop() == 0
        source.stop()
        target.stop()


@needs_dcmtk
def test_sigkill_mid_study_resumes_once(tmp_path: Path) -> None:
    files = study_files()
    half = len(files) // 2
    scp = StoreSCP(tmp_path / "received")
    node = NodeProcess(
        tmp_path / "node",
        {
            "allow": [ALLOWED],
            "idle_seconds": 2.0,
            "destinations": [cstore_to(scp)],
        },
    ).start()
    sent = storescu(files[:half], node.port, "MODALITY", "CADPNODE")
    assert sent.returncode == 0
    node.stop(signal.SIGKILL)  # before the study went quiet: nothing forwarded yet
    assert scp.files() == []
    node.start()
    try:
        sent = storescu(files[half:], node.port, "MODALITY", "CADPNODE")
        assert sent.returncode == 0
        wait_for(
            lambda: len(scp.files()) >= len(files) and node.metrics()["studies_pending"] == 0,
            30,
            "the whole study at storescp",
        )
        received = scp.files()
        assert len(received) == len(files)
        assert len(set(sop_uids(received))) == len(files), "an instance arrived twice"
        assert len({str(pydicom.dcmread(f).StudyInstanceUID) for f in received}) == 1
    finally:
        assert node.stop() == 0
        scp.stop()


@needs_dcmtk
def test_destination_down_dead_letters_everything(tmp_path: Path) -> None:
    files = study_files()
    down = {
        "type": "cstore",
        "name": "down",
        "ae_title": "NOBODY",
        "host": LOOPBACK,
        "port": free_port(),
        "timeout_seconds": 2,
    }
    node = NodeProcess(
        tmp_path / "node",
        {
            "allow": [ALLOWED],
            "destinations": [down],
            "retry": {"attempts": 3, "backoff_seconds": 0.05, "max_backoff": 0.2},
        },
    ).start()
    try:
        assert storescu(files, node.port, "MODALITY", "CADPNODE").returncode == 0
        wait_for(lambda: node.metrics()["dead_lettered"] >= len(files), 30, "dead letters")
        metrics = node.metrics()
        assert metrics["dead_lettered"] == len(files)
        assert metrics["sent"] == 0
        assert metrics["failed"] == 3 * len(files)
    finally:
        assert node.stop() == 0
    dead = node.folder / "dead-letter"
    letters = sorted(dead.rglob("*.dcm"))
    assert len(letters) == len(files)
    assert len(set(sop_uids(letters))) == len(files)
    for letter in letters:
        reason = json.loads(letter.with_name(letter.name + ".json").read_text())
        assert reason["destination"] == "down"
        assert reason["attempts"] == 3
        assert "association" in reason["reason"]


@needs_dcmtk
def test_unknown_calling_ae_is_rejected(tmp_path: Path) -> None:
    node = NodeProcess(
        tmp_path / "node",
        {
            "allow": [ALLOWED],
            "destinations": [{"type": "folder", "path": "out"}],
        },
    ).start()
    try:
        sent = storescu(study_files()[:1], node.port, "INTRUDER", "CADPNODE")
        assert sent.returncode != 0
        assert b"Rejected" in sent.stderr or b"rejected" in sent.stderr.lower()
        assert node.metrics()["received"] == 0
    finally:
        assert node.stop() == 0
    events = [json.loads(x) for x in node.log().splitlines() if x.startswith("{")]
    rejected = [e for e in events if e["event"] == "association rejected"]
    assert rejected and rejected[0]["calling_ae"] == "INTRUDER"
    assert list((node.folder / "spool").iterdir()) == []


def malformed_file(folder: Path) -> Path:
    """Valid file meta, then a sequence item cut short: no decoder can read it."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    stream = io.BytesIO()
    stream.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(stream, meta)
    stream.write(b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\x10\x00\x00\x00\xab")
    path = folder / "malformed.dcm"
    path.write_bytes(stream.getvalue())
    return path


@needs_dcmtk
def test_malformed_dataset_quarantined_association_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
    from pynetdicom import AE, _config

    # Send files as raw bytes after their file meta, so the SCU does not decode (and
    # choke on) the malformed one itself.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)

    node = NodeProcess(
        tmp_path / "node",
        {
            "allow": [ALLOWED],
            "destinations": [{"type": "folder", "path": "out"}],
        },
    ).start()
    try:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate(LOOPBACK, node.port, ae_title="CADPNODE")
        assert assoc.is_established
        bad = assoc.send_c_store(malformed_file(tmp_path))
        assert bad.Status == 0xC210
        good = assoc.send_c_store(study_files()[0])
        assert good.Status == 0x0000
        assert assoc.is_established
        assoc.release()
        wait_for(lambda: len(list((node.folder / "out").rglob("*.dcm"))) == 1, 20, "good file")
        metrics = node.metrics()
        assert metrics["quarantined"] == 1
        assert metrics["received"] == 1
    finally:
        assert node.stop() == 0
    quarantined = list((node.folder / "quarantine" / "received").glob("*.dcm"))
    assert len(quarantined) == 1
    assert json.loads(quarantined[0].with_suffix(".json").read_text())["reason"]
