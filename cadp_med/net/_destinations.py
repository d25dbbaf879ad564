"""Senders for de-identified files: DICOM C-STORE SCU, folder copy and DICOMweb STOW-RS.

Each destination opens a *session* for a batch of files (one association per study
for C-STORE) and returns a callable that sends one file or raises
:class:`~cadp_med.errors.NetworkError`.  Retry and dead-lettering live in the worker,
not here, so every destination fails the same way.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cadp_med.errors import NetworkError
from cadp_med.net._spool import durable_copy
from cadp_med.net.config import Destination

LOGGER = logging.getLogger(__name__)

Send = Callable[[Path, str], None]
"""Send one file; the second argument is its path relative to the study output."""

# C-STORE statuses that mean "stored": success and the three warnings of PS3.4 B.2.3.
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


@contextlib.contextmanager
def open_session(destination: Destination, files: list[Path], ae_title: str) -> Iterator[Send]:
    """Open a sending session for ``files`` on ``destination``.

    Parameters
    ----------
    destination : Destination
        The configured destination.
    files : list of Path
        The files that will be sent, so that C-STORE can propose matching contexts.
    ae_title : str
        Our own AE title, used as the calling AE of C-STORE associations.

    Raises
    ------
    NetworkError
        If the session cannot be opened (association refused, peer down).
    """
    if destination.type == "folder":
        yield _folder_sender(destination)
    elif destination.type == "stow":
        yield _stow_sender(destination)
    else:
        with _cstore_session(destination, files, ae_title) as send:
            yield send


def _folder_sender(destination: Destination) -> Send:
    root = destination.path
    assert root is not None  # validated by the config

    def send(path: Path, relpath: str) -> None:
        try:
            durable_copy(path, root / relpath)
        except OSError as exc:
            raise NetworkError(f"folder copy failed: {exc.strerror}") from None

    return send


def _stow_sender(destination: Destination) -> Send:
    endpoint = f"{destination.url}/studies"

    def send(path: Path, relpath: str) -> None:
        # One instance per request keeps memory flat and the retry unit small.
        boundary = uuid.uuid4().hex
        body = b"".join(
            (
                f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                path.read_bytes(),
                f"\r\n--{boundary}--\r\n".encode(),
            )
        )
        request = urllib.request.Request(
            endpoint,
            data=body,
            method="POST",
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=destination.timeout_seconds) as reply:
                status = reply.status
                reply.read()
        except urllib.error.HTTPError as exc:
            raise NetworkError(f"STOW-RS answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkError(f"STOW-RS request failed: {type(reason).__name__}") from None
        if status not in (200, 202):
            # 202 is a partial success in PS3.18 10.5.3; anything else is a failure.
            raise NetworkError(f"STOW-RS answered HTTP {status}")

    return send


@contextlib.contextmanager
def _cstore_session(destination: Destination, files: list[Path], ae_title: str) -> Iterator[Send]:
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
    from pynetdicom import AE, evt

    from cadp_med.net._scp import set_tcp_nodelay

    # One context per SOP class, offering the stored syntax first and the two
    # uncompressed ones as a fallback (PS3.5 10.1 requires Implicit VR LE support).
    syntaxes: dict[str, list[str]] = {}
    stored: dict[Path, tuple[str, str]] = {}  # file -> (SOP class, transfer syntax)
    for path in files:
        sop_class, syntax = stored[path] = _stored_as(path)
        offered = syntaxes.setdefault(sop_class, [])
        if syntax not in offered:
            offered.insert(0, syntax)
    if len(syntaxes) > 128:
        raise NetworkError("a study with more than 128 SOP classes needs several associations")
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = destination.timeout_seconds
    for sop_class, offered in syntaxes.items():
        for fallback in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            if fallback not in offered:
                offered.append(fallback)
        ae.add_requested_context(sop_class, offered)
    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, set_tcp_nodelay)],
    )
    if not assoc.is_established:
        reason = "rejected" if assoc.is_rejected else "not established"
        raise NetworkError(f"association with destination '{destination.name}' {reason}")

    accepted: dict[str, set[str]] = {}
    for context in assoc.accepted_contexts:
        accepted.setdefault(str(context.abstract_syntax), set()).add(
            str(context.transfer_syntax[0])
        )

    def send(path: Path, relpath: str) -> None:
        if not assoc.is_established:
            raise NetworkError("association with the destination was lost")
        sop_class, syntax = stored.get(path) or _stored_as(path)
        if syntax in accepted.get(sop_class, ()):
            # The file's own bytes, sent in chunks without decoding the dataset
            # (pynetdicom's STORE_SEND_CHUNKED_DATASET, set for this send only).
            message: Any = path
        else:
            message = dcmread(path)
            if message.file_meta.TransferSyntaxUID.is_compressed:
                # The peer refused the compressed syntax: send it decompressed instead.
                message.decompress()
        try:
            with _chunked_from_file(message is path):
                status = assoc.send_c_store(message)
        except (ValueError, RuntimeError) as exc:
            raise NetworkError(f"C-STORE could not be sent: {type(exc).__name__}") from None
        code = getattr(status, "Status", None)
        if code is None:
            raise NetworkError("C-STORE got no response (timeout or abort)")
        if code not in _STORED:
            raise NetworkError(f"C-STORE failed with status 0x{code:04X}")

    try:
        with _reactor_held(assoc):
            yield send
    finally:
        if assoc.is_established:
            assoc.release()


def _stored_as(path: Path) -> tuple[str, str]:
    """(SOP Class UID, Transfer Syntax UID) of a file, from its File Meta."""
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


_CHUNKED_LOCK = threading.Lock()


@contextlib.contextmanager
def _chunked_from_file(enabled: bool) -> Iterator[None]:
    """pynetdicom's module-wide switch for sending a file's bytes, held for one send.

    A lock, since the switch is global and another destination's session may be
    sending a decoded dataset at the same time.
    """
    if not enabled:
        yield
        return
    from pynetdicom import _config

    with _CHUNKED_LOCK:
        previous = _config.STORE_SEND_CHUNKED_DATASET
        _config.STORE_SEND_CHUNKED_DATASET = True
        try:
            yield
        finally:
            _config.STORE_SEND_CHUNKED_DATASET = previous


class _HeldCheckpoint(threading.Event):
    """A reactor checkpoint that stays closed until :meth:`open`, whatever ``set()`` says.

    Records when a thread is waiting on it, so that the holder knows the reactor is
    really stopped rather than trusting a flag the reactor may not have updated yet.
    """

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def set(self) -> None:
        """Ignored while held: ``send_c_store`` would let the reactor run between sends."""

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)

    def open(self) -> None:
        super().set()


@contextlib.contextmanager
def _reactor_held(assoc: Any, *, settle_s: float = 5.0) -> Iterator[None]:
    """Keep pynetdicom's association reactor stopped while this session sends.

    pynetdicom (3.0.4 and before) pauses its reactor thread for each ``send_c_store``
    by clearing an Event and waiting for an ``_is_paused`` flag, and opens it again after
    the response. When the next send clears the Event while the reactor is still
    between its previous wake-up and updating that flag, the send goes ahead, the
    reactor takes the C-STORE response off the queue ("Received unexpected C-STORE
    service message") and the send waits out the whole DIMSE timeout: 30 s stalls, one
    C-STORE in several hundred on this loaded 2-core machine. A session that only sends
    needs nothing from the reactor, so it waits here, on a checkpoint that the sends
    cannot open, until the session ends.
    """
    original = getattr(assoc, "_reactor_checkpoint", None)
    if not isinstance(original, threading.Event):
        yield  # a pynetdicom without this reactor: nothing to hold
        return
    held = _HeldCheckpoint()
    assoc._reactor_checkpoint = held  # noqa: SLF001
    try:
        # The reactor may finish one iteration on the old, open checkpoint first.
        if not held.waiting.wait(settle_s):
            LOGGER.warning("the association's reactor did not stop; sending anyway")
        yield
    finally:
        assoc._reactor_checkpoint = original  # noqa: SLF001
        original.set()
        held.open()
