"""The durable spool of received instances, study markers and the per-destination ledger.

Layout (no header value ever appears in a path)::

    spool/<study key>/in/<sha256(SOP Instance UID)[:32]>.dcm   received, as sent to us
    spool/<study key>/batch/*.dcm                              taken by the worker
    spool/<study key>/handled/*.dcm                            anonymized and delivered
    spool/<study key>/KEEP                                     marker: keep the originals
    spool/<study key>/DONE                                     marker: study delivered
    staging/<study key>/out/...                                anonymize_study output
    staging/<study key>/sent.jsonl                             ledger of deliveries

``<study key>`` is ``sha256(StudyInstanceUID)[:16]``.  Every file is written to a
temporary name, fsynced, renamed, and its folder fsynced, so a C-STORE is acknowledged
only once the instance would survive a power cut.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from cadp_med.io._atomic import fsync_dir

INSTANCES = "in"
BATCH = "batch"
HANDLED = "handled"
KEEP_MARKER = "KEEP"
DONE_MARKER = "DONE"
LEDGER = "sent.jsonl"
OUTPUT = "out"


def uid_key(uid: str, length: int = 16) -> str:
    """Return the hex prefix of ``sha256(uid)``: a stable, PHI-free name for a UID."""
    return hashlib.sha256(uid.strip().encode("ascii", "replace")).hexdigest()[:length]


def ensure_dir(folder: Path) -> None:
    """Create ``folder`` (and parents) and make its new entry durable in its parent."""
    if folder.is_dir():
        return
    ensure_dir(folder.parent)
    try:
        folder.mkdir()
    except FileExistsError:
        return
    fsync_dir(folder.parent)


def durable_write(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically and durably (temp, fsync, rename, fsync dir)."""
    ensure_dir(target.parent)
    handle, temp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def durable_copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` with the guarantees of :func:`durable_write`."""
    durable_write(target, source.read_bytes())


class Spool:
    """The received-instance spool and the per-study staging area of one node.

    Parameters
    ----------
    root : Path
        The spool folder; holds PHI, so it should be on an encrypted volume.
    staging : Path
        Where ``anonymize_study`` writes and the delivery ledger lives.
    """

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        ensure_dir(root)
        ensure_dir(staging)

    def instances_dir(self, study: str) -> Path:
        """Folder of the received instances of one study key."""
        return self.root / study / INSTANCES

    def take_batch(self, study: str) -> Path | None:
        """Move the instances received so far into the study's batch folder; return it.

        A batch left by a crash is taken again with whatever arrived since. Returns None
        when there is nothing to do. The caller holds the study's lock, so no instance
        is being stored meanwhile.
        """
        batch = self.root / study / BATCH
        _move_instances(self.instances_dir(study), batch)
        if not batch.is_dir() or not any(batch.glob("*.dcm")):
            return None
        return batch

    def finish_batch(self, study: str) -> None:
        """Move a delivered batch's originals to ``handled/``."""
        _move_instances(self.root / study / BATCH, self.root / study / HANDLED)

    def keep_originals(self, study: str) -> None:
        """Mark the study's originals to be kept (something was quarantined or
        dead-lettered): the mark outlives a restart, unlike the batch that set it."""
        durable_write(self.root / study / KEEP_MARKER, b"")

    def must_keep(self, study: str) -> bool:
        """Whether :meth:`keep_originals` was called for the study."""
        return (self.root / study / KEEP_MARKER).exists()

    def output_dir(self, study: str) -> Path:
        """Folder ``anonymize_study`` writes the de-identified study to."""
        return self.staging / study / OUTPUT

    def store(self, study: str, sop_key: str, data: bytes) -> Path:
        """Durably store one received instance and clear the study's DONE marker.

        A late instance of a delivered study re-opens it: the marker goes first, so a
        crash after it leaves the study scheduled again on restart.
        """
        marker = self.root / study / DONE_MARKER
        if marker.exists():
            marker.unlink()
            fsync_dir(marker.parent)
        target = self.instances_dir(study) / f"{sop_key}.dcm"
        durable_write(target, data)
        return target

    def mark_done(self, study: str) -> None:
        """Record that every output of ``study`` reached every destination."""
        durable_write(self.root / study / DONE_MARKER, b"")

    def discard(self, study: str) -> None:
        """Delete a delivered study's spool and staging folders (``retain_spool = false``)."""
        shutil.rmtree(self.root / study, ignore_errors=True)
        shutil.rmtree(self.staging / study, ignore_errors=True)
        fsync_dir(self.root)

    def pending_studies(self) -> list[str]:
        """Study keys in the spool without a DONE marker; removes crash leftovers."""
        pending = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for leftover in folder.glob(f"{INSTANCES}/.tmp-*"):
                leftover.unlink(missing_ok=True)
            if not (folder / DONE_MARKER).exists():
                pending.append(folder.name)
        return pending

    def size_bytes(self) -> int:
        """Total bytes of received instances still in the spool."""
        total = 0
        for path in self.root.glob("*/*/*.dcm"):
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass  # the worker removed its study between the listing and the stat
        return total


def _move_instances(source: Path, target: Path) -> None:
    """Move every instance file of ``source`` into ``target`` and make both folders'
    entries durable; nothing to move, nothing done."""
    moving = sorted(source.glob("*.dcm"))
    if not moving:
        return
    ensure_dir(target)
    for path in moving:
        os.replace(path, target / path.name)
    fsync_dir(target)
    fsync_dir(source)


class Ledger:
    """Append-only record of which output file reached which destination.

    One JSON object per line, flushed after each append, so that after a crash of the
    node the ledger says exactly which sends completed and a restart does not send
    them twice.  The fsync that also covers a power cut is grouped (every
    :attr:`SYNC_EVERY` lines and at :meth:`sync`): one per line cost a disk flush per
    instance sent.  A power cut can thus make the node send up to that many files
    again; a C-STORE of the same SOP Instance UID replaces the copy already there.
    A torn last line (a crash mid-append) is ignored; that one file is sent again.
    """

    SYNC_EVERY = 64

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stream: Any = None
        self._unsynced = 0
        self._done: set[tuple[str, str]] = set()
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._done.add((entry["dest"], entry["file"]))
                except (ValueError, KeyError, TypeError):
                    continue

    def is_sent(self, destination: str, relpath: str) -> bool:
        """Whether ``relpath`` already reached ``destination``."""
        return (destination, relpath) in self._done

    def record(self, destination: str, relpath: str) -> None:
        """Note that ``relpath`` reached ``destination`` (flushed; fsynced in groups)."""
        with self._lock:
            if self._stream is None:
                ensure_dir(self.path.parent)
                self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - sync()
            self._stream.write(json.dumps({"dest": destination, "file": relpath}) + "\n")
            self._stream.flush()
            self._done.add((destination, relpath))
            self._unsynced += 1
            if self._unsynced >= self.SYNC_EVERY:
                os.fsync(self._stream.fileno())
                self._unsynced = 0

    def sync(self) -> None:
        """fsync what was recorded and close the file (it reopens on the next record)."""
        with self._lock:
            if self._stream is not None:
                self._stream.flush()
                os.fsync(self._stream.fileno())
                self._stream.close()
                self._stream = None
                self._unsynced = 0
