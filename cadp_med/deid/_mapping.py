"""Original -> pseudonym mapping files, in the shape MIDI-B's scorer reads.

MIDI-B (arXiv 2507.23608) checks ``uid_consistent`` and ``patid_consistent`` against a
mapping CSV with columns ``id_old,id_new``. We write one file holding both kinds, with the
exact header::

    id_old,id_new,kind

where ``kind`` is ``uid`` or ``patient_id``. The file maps pseudonyms back to identities,
so it is created with mode 0600.
"""

from __future__ import annotations

import csv
import os
import threading
from pathlib import Path

from cadp_med.errors import ConfigError

HEADER = ("id_old", "id_new", "kind")


class MappingRecorder:
    """Collects original -> pseudonym pairs for UIDs and Patient IDs (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.uids: dict[str, str] = {}
        self.patient_ids: dict[str, str] = {}

    def record_uid(self, old: str, new: str) -> None:
        """Record that UID ``old`` was written as ``new``."""
        with self._lock:
            self.uids[old] = new

    def record_patient_id(self, old: str, new: str) -> None:
        """Record that Patient ID ``old`` was written as ``new``."""
        with self._lock:
            self.patient_ids[old] = new

    def write_csv(self, path: Path) -> None:
        """Write ``id_old,id_new,kind`` rows to ``path`` with mode 0600."""
        path = Path(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle, self._lock:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows((old, new, "uid") for old, new in sorted(self.uids.items()))
            writer.writerows(
                (old, new, "patient_id") for old, new in sorted(self.patient_ids.items())
            )


def read_mapping_csv(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Read a mapping CSV written by :meth:`MappingRecorder.write_csv`.

    Returns ``(uid_map, patient_id_map)``. A file with only ``id_old,id_new`` columns (as
    MIDI-B supplies) is split by shape: dotted digit strings are UIDs.
    """
    uid_map: dict[str, str] = {}
    patient_map: dict[str, str] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"id_old", "id_new"} <= set(reader.fieldnames):
                raise ConfigError(f"mapping file {Path(path).name}: needs columns id_old,id_new")
            for row in reader:
                old, new = row["id_old"], row["id_new"]
                kind = row.get("kind") or (
                    "uid" if old.replace(".", "").isdigit() and "." in old else "patient_id"
                )
                (uid_map if kind == "uid" else patient_map)[old] = new
    except OSError as exc:
        raise ConfigError(f"cannot read mapping file {Path(path).name}: {exc.strerror}") from exc
    return uid_map, patient_map
