"""The C-STORE sender against dcmtk's storescp: many sends over one association.

pynetdicom's reactor thread could take a C-STORE response meant for ``send_c_store``
(its pause handshake reads a flag the reactor may not have updated yet), and the send
then waited out the DIMSE timeout. ``_cstore_session`` keeps the reactor stopped for the
whole session; these tests check that it is stopped while sending, that the session
still ends cleanly, and that many quick sends all get their responses.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from cadp_med.net._destinations import open_session
from cadp_med.net.config import Destination
from tests.conftest import pydicom_file
from tests.net._peers import LOOPBACK, StoreSCP, dcmtk

pytestmark = pytest.mark.skipif(
    dcmtk("storescp") is None, reason="dcmtk storescp not installed (apt-get install dcmtk)"
)


def _instances(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    paths = []
    for index in range(count):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = folder / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture
def scp(tmp_path: Path):  # type: ignore[no-untyped-def]
    peer = StoreSCP(tmp_path / "received")
    yield peer
    peer.stop()


def test_many_sends_over_one_association_all_get_their_response(
    tmp_path: Path, scp: StoreSCP
) -> None:
    files = _instances(tmp_path / "out", 300)
    # A short DIMSE timeout: a response taken by the reactor fails the send in 5 s.
    destination = Destination(
        type="cstore", name="scp", ae_title=scp.ae_title, host=LOOPBACK, port=scp.port,
        timeout_seconds=5,
    )  # fmt: skip
    for _ in range(3):
        with open_session(destination, files, "CADPTEST") as send:
            for path in files:
                send(path, path.name)
    assert len(scp.files()) == 3 * len(files)


def test_the_reactor_waits_while_the_session_sends(tmp_path: Path, scp: StoreSCP) -> None:
    import pynetdicom.association as association

    files = _instances(tmp_path / "out", 5)
    seen = []
    real_init = association.Association.__init__

    def remember(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        seen.append(self)

    destination = Destination(
        type="cstore", name="scp", ae_title=scp.ae_title, host=LOOPBACK, port=scp.port
    )
    association.Association.__init__ = remember  # type: ignore[method-assign]
    try:
        with open_session(destination, files, "CADPTEST") as send:
            (assoc,) = seen
            checkpoint = assoc._reactor_checkpoint
            for path in files:
                send(path, path.name)
                # Still held after each send's own set(): the reactor is blocked on it.
                assert not checkpoint.is_set() and checkpoint.waiting.is_set()
                assert assoc._is_paused
    finally:
        association.Association.__init__ = real_init  # type: ignore[method-assign]
    assert isinstance(assoc._reactor_checkpoint, threading.Event)
    assert assoc._reactor_checkpoint is not checkpoint  # the original is back
    assert assoc.is_released and not assoc.is_aborted
    assert len(scp.files()) == len(files)
