"""The C-STORE SCP: accepts associations from allowed peers and spools what they send.

A C-STORE is answered with success only after the instance is durably in the spool
(:func:`~cadp_med.net._spool.durable_write`); a dataset that cannot be decoded, or
lacks the UIDs that group it, is quarantined and answered 0xC210 ("cannot
understand", PS3.4 B.2.3) while the association carries on.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from cadp_med.io.write import part10_header
from cadp_med.net._spool import durable_write, uid_key
from cadp_med.net._status import Metrics
from cadp_med.net.config import NodeConfig

LOGGER = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_CANNOT_UNDERSTAND = 0xC210
STATUS_OUT_OF_RESOURCES = 0xA700


def transfer_syntaxes() -> list[str]:
    """Every transfer syntax the SCP accepts: uncompressed, deflate, JPEG, JPEG-LS,
    JPEG 2000, HTJ2K and RLE.  Pixel data is stored as received, never transcoded."""
    from pydicom import uid

    names = (
        "ImplicitVRLittleEndian",
        "ExplicitVRLittleEndian",
        "DeflatedExplicitVRLittleEndian",
        "ExplicitVRBigEndian",
        "JPEGBaseline8Bit",
        "JPEGExtended12Bit",
        "JPEGLosslessP14",
        "JPEGLosslessSV1",
        "JPEGLSLossless",
        "JPEGLSNearLossless",
        "JPEG2000Lossless",
        "JPEG2000",
        "HTJ2KLossless",
        "HTJ2KLosslessRPCL",
        "HTJ2K",
        "RLELossless",
    )
    return [str(getattr(uid, name)) for name in names if hasattr(uid, name)]


def set_tcp_nodelay(event: Any) -> None:
    """EVT_CONN_OPEN handler: turn Nagle's algorithm off on the association's socket.

    pynetdicom writes a PDU in several small sends; with Nagle on, each C-STORE waits
    for the peer's delayed ACK (tens of milliseconds on Linux), which caps a
    header-only transfer at some 20 instances/s.
    """
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (or already closed): nothing to tune


def server_ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    """Build the TLS context from ``[tls]``; with ``ca`` set, clients need a certificate."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=config.tls.cert, keyfile=config.tls.key)
    if config.tls.ca is not None:
        context.load_verify_locations(cafile=config.tls.ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class StoreHandlers:
    """Event handlers of the node's AE.

    Parameters
    ----------
    config : NodeConfig
        For the allow-list and the quarantine folder.
    accept : callable
        ``accept(study_key, sop_key, data)`` durably spools one instance and schedules
        its study; raises OSError when the spool cannot take it.
    metrics : Metrics
        Counters to update.
    """

    def __init__(
        self,
        config: NodeConfig,
        metrics: Metrics,
        accept: Callable[[str, str, bytes], None],
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.accept = accept
        self._allowed = {(p.ae_title, p.host) for p in config.allow}

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        """The ``evt_handlers`` list for ``AE.start_server``."""
        from pynetdicom import evt

        return [
            (evt.EVT_CONN_OPEN, set_tcp_nodelay),
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_C_STORE, self.on_store),
        ]

    def on_requested(self, event: Any) -> None:
        """Reject, before negotiation, any calling AE title and host not on the allow-list."""
        # The requestor's ae_title is filled in only during negotiation, which has not
        # happened yet: read the calling AE title from the A-ASSOCIATE-RQ itself.
        requestor = event.assoc.requestor
        calling = str(requestor.primitive.calling_ae_title).strip()
        host = str(requestor.address)
        if (calling, host) in self._allowed:
            return
        # result 0x01 permanent, source 0x01 service user, reason 0x03 calling AE title
        # not recognised (PS3.8 9.3.4).
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)
        # kill() waits for the DUL to flush the A-ASSOCIATE-RJ before the socket closes,
        # as pynetdicom does for its own rejections; otherwise the peer sees an abort.
        event.assoc.kill()
        LOGGER.warning(
            "association rejected",
            extra={"fields": {"calling_ae": calling, "peer_host": host, "reason": "not allowed"}},
        )

    def on_store(self, event: Any) -> int:
        """Spool one instance durably, then acknowledge; quarantine what cannot be read."""
        try:
            data = _part10(event)
        except Exception as exc:  # noqa: BLE001 - any decode failure means quarantine
            return self._quarantine(event.request.DataSet.getvalue(), type(exc).__name__)
        try:
            study_uid, sop_uid = self._uids(data)
        except Exception as exc:  # noqa: BLE001 - malformed: pydicom raises many types
            return self._quarantine(data, type(exc).__name__)
        study = uid_key(study_uid)
        try:
            self.accept(study, uid_key(sop_uid, 32), data)
        except OSError as exc:
            # Disk full or read-only: tell the sender to retry later, keep nothing half-done.
            LOGGER.error(
                "spool write failed", extra={"fields": {"study": study, "errno": exc.errno}}
            )
            self.metrics.add("failed")
            return STATUS_OUT_OF_RESOURCES
        self.metrics.add("received")
        return STATUS_SUCCESS

    @staticmethod
    def _uids(data: bytes) -> tuple[str, str]:
        """Parse the dataset's structure (every sequence, recursively) and return its UIDs.

        Structure, not values: a dataset whose elements or sequence items cannot be
        delimited is refused here. Converting every value as well (``iterall``) took
        ten times the parse, some 5 ms per small instance, on the receive path of every
        C-STORE; a malformed value in a well-formed dataset is quarantined by the
        pipeline's own read instead, which checks every value anyway.
        """
        from pydicom import dcmread

        dataset = dcmread(io.BytesIO(data))
        _parse_sequences(dataset)
        study_uid = str(dataset.get("StudyInstanceUID", "") or "")
        sop_uid = str(dataset.get("SOPInstanceUID", "") or "")
        if not study_uid or not sop_uid:
            raise ValueError("StudyInstanceUID or SOPInstanceUID missing")
        return study_uid, sop_uid

    def _quarantine(self, data: bytes, reason: str) -> int:
        stamp = f"{time.time_ns():x}"
        folder = self.config.quarantine / "received"
        try:
            durable_write(folder / f"{stamp}.dcm", data)
            durable_write(
                folder / f"{stamp}.json",
                json.dumps({"reason": "undecodable dataset", "error": reason}).encode(),
            )
        except OSError:
            LOGGER.error("quarantine write failed", extra={"fields": {"error": reason}})
        self.metrics.add("quarantined")
        LOGGER.warning("instance quarantined", extra={"fields": {"error": reason}})
        return STATUS_CANNOT_UNDERSTAND


def _part10(event: Any) -> bytes:
    """The received dataset as a Part 10 file: what ``event.encoded_dataset()`` gives.

    pynetdicom builds and validates a pydicom File Meta dataset for that, which cost
    more per C-STORE than spooling the instance; the header is encoded directly instead
    (cadp-med's implementation UID, the request's SOP class and instance, the
    presentation context's transfer syntax).
    """
    request = event.request
    sop_class, sop_instance = request.AffectedSOPClassUID, request.AffectedSOPInstanceUID
    if not sop_class or not sop_instance:
        raise ValueError("C-STORE request without its SOP Class or Instance UID")
    header = part10_header(sop_class, sop_instance, event.context.transfer_syntax)
    return header + request.DataSet.getvalue()


def _parse_sequences(dataset: Any) -> None:
    """Convert the sequences of ``dataset`` (and of their items), nothing else.

    A sequence's items are parsed when its raw element is converted; that finds items
    cut short or without delimiters. An element of undefined length or with no known VR
    (implicit VR) may be a sequence, so it is converted too.
    """
    from pydicom.datadict import dictionary_VR

    for tag, raw in list(dataset._dict.items()):  # noqa: SLF001 - look before converting
        vr = getattr(raw, "VR", None)
        if vr is None and getattr(raw, "is_raw", False):
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = None
        if vr == "SQ" or getattr(raw, "length", 0) == 0xFFFFFFFF:
            element = dataset[tag]  # converts: parses the items
            if element.VR == "SQ":
                for item in element.value:
                    _parse_sequences(item)
