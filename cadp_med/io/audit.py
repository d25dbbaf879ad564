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
    """Append-only JSON Lines audit log, flushed after every record.

    Parameters
    ----------
    path : str or os.PathLike
        The log file; its folder is created, and existing records are kept (a
        resumed run appends to them).
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path).absolute()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._unsynced = 0

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
        self._stream.write(json.dumps(entry, sort_keys=True) + "\n")
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

    def close(self) -> None:
        """Sync and close the log file."""
        if not self._stream.closed:
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
