"""What the node spools for a C-STORE is the Part 10 file pynetdicom would build.

The node encodes the File Meta group itself instead of ``event.encoded_dataset()``;
dcmtk ``storescu`` sends real files in several transfer syntaxes to a pynetdicom SCP
whose handler records both encodings, and pydicom must read the same instance from each.
"""

from __future__ import annotations

import io
import subprocess

import pydicom
import pytest
from pydicom.data import get_testdata_file

from cadp_med.io.write import IMPLEMENTATION_CLASS_UID
from cadp_med.net._scp import _part10, transfer_syntaxes
from tests.net._peers import LOOPBACK, dcmtk, dcmtk_env

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(dcmtk("storescu") is None, reason="dcmtk storescu is not installed"),
]

# (file, storescu's transfer syntax proposal)
SENDS = (
    ("CT_small.dcm", "-xe"),  # explicit VR little endian
    ("MR_small.dcm", "-xi"),  # implicit VR little endian
    ("MR_small.dcm", "-xb"),  # explicit VR big endian
    ("rtplan.dcm", "-xd"),  # deflated
    ("JPEG2000.dcm", "-xw"),  # JPEG 2000, sent as it is stored
)

META = ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")


def test_spooled_file_is_the_instance_pynetdicom_would_encode() -> None:
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    received: list[tuple[bytes, bytes, bytes]] = []

    def on_store(event: object) -> int:
        raw = event.request.DataSet.getvalue()
        received.append((_part10(event), event.encoded_dataset(), raw))
        return 0x0000

    ae = AE(ae_title="RECORDER")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, transfer_syntaxes())
    handlers = [(evt.EVT_C_STORE, on_store)]
    server = ae.start_server((LOOPBACK, 0), block=False, evt_handlers=handlers)
    try:
        for name, proposal in SENDS:
            command = [dcmtk("storescu"), proposal, "-aet", "MODALITY", "-aec", "RECORDER"]
            command += [LOOPBACK, str(server.server_address[1]), get_testdata_file(name)]
            result = subprocess.run(command, capture_output=True, env=dcmtk_env(), timeout=60)
            assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    finally:
        server.shutdown()
    assert len(received) == len(SENDS)
    syntaxes = set()
    for ours, theirs, raw in received:
        mine = pydicom.dcmread(io.BytesIO(ours))
        reference = pydicom.dcmread(io.BytesIO(theirs))
        for keyword in META:
            assert mine.file_meta[keyword].value == reference.file_meta[keyword].value
        assert mine.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert ours.endswith(raw) and theirs.endswith(raw)  # the dataset's bytes, unchanged
        assert mine == reference  # every element, value for value
        syntaxes.add(str(mine.file_meta.TransferSyntaxUID))
    assert len(syntaxes) == len(SENDS)
