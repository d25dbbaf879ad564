"""The audit log: one JSON line per input file, and no PHI in any of them.

A record names the input by the SHA-256 of its path, the output by its path
relative to the output folder (made of pseudonyms only), the status, counts of the
de-identification actions, and warnings that name tag paths only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cadp_med._types import PathLike
from cadp_med.io._hashing import path_hash

__all__ = ["AuditLog", "STATUSES", "read_audit_log"]

WRITTEN = "written"
SKIPPED_DONE = "skipped-done"
QUARANTINED = "quarantined"
SKIPPED_NON_DICOM = "skipped-non-dicom"
BURNED_IN_QUARANTINED = "burned-in-quarantined"
STATUSES = frozenset({WRITTEN, SKIPPED_DONE, QUARANTINED, SKIPPED_NON_DICOM, BURNED_IN_QUARANTINED})

#: Records between two fsyncs of the log (and one at close).
SYNC_EVERY = 64


class AuditLog:
    """Append-only JSON Lines audit log.

    By default every record is flushed at once (a killed process loses none) and the
    log is fsynced every :data:`SYNC_EVERY` records. With ``deferred=True`` records
    are held in memory until :meth:`commit`, which appends them in one write and
    fsyncs: the caller first makes the files they describe durable
    (:class:`cadp_med.io._atomic.WriteGroup`), so a record never reaches the disk
    before its file does.

    Parameters
    ----------
    path : str or os.PathLike
        The log file; its folder is created, and existing records are kept (a
        resumed run appends to them).
    deferred : bool, default False
        Hold records until :meth:`commit` (or :meth:`close`).
    """

    def __init__(self, path: PathLike, *, deferred: bool = False) -> None:
        self.path = Path(path).absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._unsynced = 0
        self._deferred = deferred
        self._pending: list[str] = []

    @property
    def pending(self) -> int:
        """Records held for the next :meth:`commit` (deferred mode)."""
        return len(self._pending)

    def record(
        self,
        input_path: PathLike,
        status: str,
        *,
        output: str | None = None,
        reason: str | None = None,
        actions: Mapping[str, int] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        """Append one record.

        Parameters
        ----------
        input_path : str or os.PathLike
            The input file; only its path hash is written.
        status : str
            One of :data:`STATUSES`.
        output : str, optional
            Output path relative to the output folder.
        reason : str, optional
            Reason category of a quarantine or skip.
        actions : mapping, optional
            Counts of de-identification actions, e.g. ``{"X": 12, "U": 4}``.
        warnings : sequence of str
            Warnings naming tag paths only.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown audit status {status!r}")
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "input_path_hash": path_hash(input_path),
            "status": status,
            "output": output,
            "reason": reason,
            "actions": dict(sorted((actions or {}).items())),
            "warnings": list(warnings),
        }
        line = json.dumps(entry, sort_keys=True) + "\n"
        if self._deferred:
            self._pending.append(line)
            return
        self._stream.write(line)
        # flush() puts each line in the OS page cache, so a killed process loses none; the
        # fsync that protects against power loss is grouped, since one per file would
        # double the run's disk flushes. Lines lost to a power cut are audited again on
        # the rerun, as skipped-done.
        self._stream.flush()
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        """Flush the log to stable storage."""
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._unsynced = 0

    def commit(self) -> None:
        """Append the held records in one write and fsync the log (deferred mode).

        One write to a file opened for appending: concurrent runs sharing the log
        (the batch runner's studies) never interleave within a group.
        """
        if self._pending:
            self._stream.write("".join(self._pending))
            self._pending.clear()
            self.sync()

    def discard_pending(self) -> None:
        """Drop the held records (their files could not be made durable)."""
        self._pending.clear()

    def close(self) -> None:
        """Commit what is held, sync and close the log file."""
        if not self._stream.closed:
            self.commit()
            self.sync()
            self._stream.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_audit_log(path: PathLike) -> list[dict[str, object]]:
    """Return the records of an audit log, oldest first."""
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream if line.strip()]
