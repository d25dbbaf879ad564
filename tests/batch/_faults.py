"""Fault injection for batch tests: a study runner whose worker dies once.

Lives in an importable module (not a test file) so that process-pool and Ray
workers can unpickle it by reference.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from cadp_med.batch import StudyJob, StudyResult, run_one_study


class CrashOnce:
    """Run studies normally, but SIGKILL the worker after the first written instance
    of the study whose folder is named ``target``, on its first attempt only (or on
    every attempt with ``every_attempt``).

    The marker file records that the crash happened (it survives the dead worker),
    so the retried attempt runs to the end.
    """

    def __init__(self, marker: Path, target: str, *, every_attempt: bool = False) -> None:
        self.marker = marker
        self.target = target
        self.every_attempt = every_attempt

    def __call__(self, job: StudyJob, **kwargs: Any) -> StudyResult:
        if Path(job.path).name != self.target or (self.marker.exists() and not self.every_attempt):
            return run_one_study(job, **kwargs)

        def crash_after_first(done: int, total: int) -> None:
            if done == 1:
                self.marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)

        return run_one_study(job, progress=crash_after_first, **kwargs)
