"""The local backend: studies in this process, or in a process pool over studies.

A worker process that dies (killed, out of memory) breaks a
:class:`~concurrent.futures.ProcessPoolExecutor`; every study in flight then counts
one lost attempt, and a fresh pool takes over the rest.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from cadp_med.batch._runner import Ledger, StudyRunner
from cadp_med.batch._study import WORKER_CRASHED, StudyJob, StudyResult, error_category

__all__ = ["run_locally"]

logger = logging.getLogger(__name__)

# Per-process state of a pool worker: the pixel stage is built once per process.
_WORKER_STAGE: object | None = None


def _init_worker(stage_factory: Callable[[], object] | None) -> None:
    global _WORKER_STAGE
    _WORKER_STAGE = stage_factory() if stage_factory is not None else None


def _run_in_worker(runner: StudyRunner, job: StudyJob) -> StudyResult:
    return runner(job, pixel_stage=_WORKER_STAGE)


def run_locally(
    jobs: list[StudyJob],
    ledger: Ledger,
    *,
    workers: int,
    stage_factory: Callable[[], object] | None,
    runner: StudyRunner,
) -> None:
    """Run ``jobs``, recording every attempt and result in ``ledger``."""
    if workers == 1:
        stage = stage_factory() if stage_factory is not None else None
        for job in jobs:
            ledger.started(job)
            ledger.finished(runner(job, pixel_stage=stage))
        return
    queue = deque(jobs)
    while queue:
        _run_pool(queue, ledger, workers, stage_factory, runner)


def _run_pool(
    queue: deque[StudyJob],
    ledger: Ledger,
    workers: int,
    stage_factory: Callable[[], object] | None,
    runner: StudyRunner,
) -> None:
    """Run studies from ``queue`` until it is empty or the pool breaks."""
    in_flight: dict[Future[StudyResult], StudyJob] = {}
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(stage_factory,)
    ) as pool:
        while queue or in_flight:
            # No more in flight than workers, so "running" in the manifest means running.
            while queue and len(in_flight) < workers:
                job = queue.popleft()
                ledger.started(job)
                in_flight[pool.submit(_run_in_worker, runner, job)] = job
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                job = in_flight.pop(future)
                try:
                    ledger.finished(future.result())
                except BrokenProcessPool:
                    broken = True
                    if ledger.crashed(job, WORKER_CRASHED):
                        queue.append(job)
                except Exception as exc:  # e.g. a result that cannot be unpickled
                    ledger.finished(StudyResult(job.study_id, ok=False, error=error_category(exc)))
            if broken:
                # Studies still in flight were lost with the pool: count and requeue them.
                for job in in_flight.values():
                    if ledger.crashed(job, WORKER_CRASHED):
                        queue.append(job)
                logger.warning("a worker process died; starting a new pool")
                return
