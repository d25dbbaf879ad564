"""Batches of studies on a local process pool or a Ray cluster, tracked by a manifest.

Studies are the unit of work. :func:`run_batch` records every study's state,
attempts, output counts and failure category in a SQLite manifest
(:class:`Manifest`), which :func:`retry_batch` and ``cadp-med batch`` read back.
``ray`` is imported by ``cadp_med.batch._ray`` only, and only when used.
"""

from __future__ import annotations

from cadp_med.batch._inputs import StudyInput, read_input_list, studies_in_folder
from cadp_med.batch._runner import BatchSummary, retry_batch, run_batch
from cadp_med.batch._study import StudyJob, StudyResult, run_one_study
from cadp_med.batch.manifest import MANIFEST_NAME, Manifest

__all__ = [
    "MANIFEST_NAME",
    "BatchSummary",
    "Manifest",
    "StudyInput",
    "StudyJob",
    "StudyResult",
    "read_input_list",
    "retry_batch",
    "run_batch",
    "run_one_study",
    "studies_in_folder",
]
