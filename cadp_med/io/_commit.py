"""Group commits: the output files of a run become durable before their audit lines.

The invariant: a crash (of the process or of the machine) never leaves an audit
record of a file that is not on disk, complete, under its final name. Per file that
takes an fsync before the rename; here the files of a group share the cost: their
temporary files are made durable together, renamed, their folders fsynced, and only
then the group's audit lines are appended and fsynced (:class:`WriteGroup`,
``AuditLog(deferred=True)``). A group closes after ``max_files`` files, ``max_bytes``
bytes or ``max_seconds`` seconds, whichever comes first, and at the end of the run.
A crash loses at most the audit lines of the last group: their files are either
absent (redone on the rerun) or complete (audited ``skipped-done`` on the rerun).
Quarantined inputs are copied the same way, in a second group under the quarantine
folder that commits with the first: a quarantine audit line, too, is written only
once its copy is on disk.
"""

from __future__ import annotations

import time
from pathlib import Path

from cadp_med.io._atomic import Durability, WriteGroup
from cadp_med.io.audit import AuditLog

__all__ = ["GroupCommit"]


class GroupCommit:
    """Commit a :class:`WriteGroup` and then the audit records held since the last one.

    Parameters
    ----------
    root : Path
        The output folder.
    audit : AuditLog
        Opened with ``deferred=True``.
    mode : {"group", "syncfs", "file", "none"}
        See :data:`cadp_med.io._atomic.DURABILITY_MODES`.
    quarantine_root : Path, optional
        The quarantine folder, for :attr:`quarantine_group`.
    max_files, max_bytes, max_seconds
        When a group closes.
    """

    def __init__(
        self,
        root: Path,
        audit: AuditLog,
        mode: Durability = "group",
        *,
        quarantine_root: Path | None = None,
        max_files: int = 64,
        max_bytes: int = 64 << 20,
        max_seconds: float = 1.0,
    ) -> None:
        self.group = WriteGroup(root, mode)
        #: Copies of quarantined inputs (``Quarantine.put(..., group=)``).
        self.quarantine_group = WriteGroup(quarantine_root or root, mode)
        self.audit = audit
        self.max_files, self.max_bytes, self.max_seconds = max_files, max_bytes, max_seconds
        self._opened = time.monotonic()
        self.commits = 0

    def maybe_commit(self) -> None:
        """Commit when the group is full or old enough; call after each audit record."""
        held = max(len(self.group) + len(self.quarantine_group), self.audit.pending)
        if held and (
            held >= self.max_files
            or self.group.bytes + self.quarantine_group.bytes >= self.max_bytes
            or time.monotonic() - self._opened >= self.max_seconds
        ):
            self.commit()

    def commit(self) -> None:
        """Files durable and in place, folders fsynced, then the audit lines."""
        try:
            self.group.commit()
            self.quarantine_group.commit()
        except BaseException:
            # A failed commit removes its own parts; the copies behind it must go too.
            self.quarantine_group.abort()
            # Those files' targets were never created: their lines must not be written.
            self.audit.discard_pending()
            raise
        self.audit.commit()
        self.commits += 1
        self._opened = time.monotonic()

    def close(self) -> None:
        """Commit what is left (the end of a run, stopped or not)."""
        self.commit()
