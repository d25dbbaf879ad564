"""Study I/O: discovery, validated reading, quarantine, atomic writing, audit log.

The pipeline (:func:`cadp_med.anonymize_study`) strings these together; they are
also usable one by one.
"""

from __future__ import annotations

from cadp_med.io.audit import AuditLog, read_audit_log
from cadp_med.io.discover import DiscoveredFile, Discovery, SkippedFile, discover, scan
from cadp_med.io.quarantine import Quarantine, check_quarantine_location, default_quarantine_root
from cadp_med.io.read import UnreadableInstance, read_instance, reason_category
from cadp_med.io.write import is_done, output_path, output_transfer_syntax, write_instance

__all__ = [
    "AuditLog",
    "DiscoveredFile",
    "Discovery",
    "Quarantine",
    "SkippedFile",
    "UnreadableInstance",
    "check_quarantine_location",
    "default_quarantine_root",
    "discover",
    "is_done",
    "output_path",
    "output_transfer_syntax",
    "read_audit_log",
    "read_instance",
    "reason_category",
    "scan",
    "write_instance",
]
