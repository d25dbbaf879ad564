"""The Ray backend; the only module of cadp-med that imports ``ray`` (lazily).

* Header-only studies run as CPU tasks (``num_cpus=1``), one task per study.
* With a pixel stage, studies run on actors that build the stage once (the model is
  loaded once per actor): ``num_gpus`` each when the cluster has GPUs, else
  ``num_cpus=1``.

Ray's own task retry is off (``max_retries=0``) on purpose: the driver retries a
study whose worker died, up to ``max_attempts``, so that every attempt is counted
in the manifest (a retry inside Ray would be invisible to it). Exceptions raised by
a study are caught in the worker and come back as a failure category, never retried
automatically: they would fail the same way again (``batch retry`` reruns them).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from cadp_med.batch._runner import Ledger, StudyRunner
from cadp_med.batch._study import WORKER_CRASHED, StudyJob, StudyResult
from cadp_med.errors import ConfigError

__all__ = ["run_on_ray"]

logger = logging.getLogger(__name__)


def _study_task(runner: StudyRunner, job: StudyJob) -> StudyResult:
    return runner(job)


class _StudyActor:
    """Holds one pixel stage (one loaded model) and runs studies through it."""

    def __init__(self, stage_factory: Callable[[], object], runner: StudyRunner) -> None:
        self.stage = stage_factory()
        self.runner = runner

    def run(self, job: StudyJob) -> StudyResult:
        return self.runner(job, pixel_stage=self.stage)


def _connect(address: str | None, workers: int) -> bool:
    """Join or start Ray; return True when this call started it (and must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
    return True


def _lost(exc: BaseException) -> str | None:
    """Return a category when ``exc`` means the worker was lost (worth retrying)."""
    import ray.exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        return None  # raised by the study's own code path: not a lost worker
    if isinstance(exc, rex.RayError):
        return WORKER_CRASHED
    return None


def run_on_ray(
    jobs: list[StudyJob],
    ledger: Ledger,
    *,
    address: str | None,
    workers: int,
    stage_factory: Callable[[], object] | None,
    runner: StudyRunner,
    gpus_per_actor: float = 1.0,
) -> None:
    """Run ``jobs`` on Ray, recording every attempt and result in ``ledger``.

    Raises
    ------
    ConfigError
        When ray is not installed (``pip install 'cadp-med[ray]'``).
    """
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            "the ray backend needs the ray extra: pip install 'cadp-med[ray]'"
        ) from exc
    started = _connect(address, workers)
    try:
        if stage_factory is None:
            _run_tasks(ray, jobs, ledger, runner, workers)
        else:
            _run_actors(ray, jobs, ledger, runner, stage_factory, workers, gpus_per_actor)
    finally:
        if started:
            ray.shutdown()


def _window(ray: Any, workers: int) -> int:
    cpus = int(ray.cluster_resources().get("CPU", workers))
    # Twice the CPUs keeps every worker busy without queueing the whole batch in Ray.
    return max(1, 2 * cpus)


def _run_tasks(
    ray: Any, jobs: list[StudyJob], ledger: Ledger, runner: StudyRunner, workers: int
) -> None:
    task = ray.remote(num_cpus=1, max_retries=0)(_study_task)
    queue = deque(jobs)
    in_flight: dict[Any, StudyJob] = {}
    window = _window(ray, workers)
    while queue or in_flight:
        while queue and len(in_flight) < window:
            job = queue.popleft()
            ledger.started(job)
            in_flight[task.remote(runner, job)] = job
        done, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in done:
            job = in_flight.pop(ref)
            _collect(ray, ref, job, ledger, queue)


def _collect(ray: Any, ref: Any, job: StudyJob, ledger: Ledger, queue: deque[StudyJob]) -> bool:
    """Record the result behind ``ref``; return False when its worker was lost."""
    try:
        result = ray.get(ref)
    except Exception as exc:
        category = _lost(exc)
        if category is not None:
            if ledger.crashed(job, category):
                queue.append(job)
            return False
        ledger.finished(
            StudyResult(job.study_id, ok=False, error=f"unexpected:{type(exc).__name__}")
        )
        return True
    ledger.finished(result)
    return True


def _run_actors(
    ray: Any,
    jobs: list[StudyJob],
    ledger: Ledger,
    runner: StudyRunner,
    stage_factory: Callable[[], object],
    workers: int,
    gpus_per_actor: float,
) -> None:
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    if gpus >= gpus_per_actor:
        actor_class = ray.remote(num_gpus=gpus_per_actor, num_cpus=1)(_StudyActor)
        count = int(gpus // gpus_per_actor)
    else:
        actor_class = ray.remote(num_cpus=1)(_StudyActor)
        count = max(1, int(resources.get("CPU", workers)))
    count = min(count, len(jobs))
    idle = deque(actor_class.remote(stage_factory, runner) for _ in range(count))
    queue = deque(jobs)
    in_flight: dict[Any, tuple[StudyJob, Any]] = {}
    while queue or in_flight:
        while queue and idle:
            job, actor = queue.popleft(), idle.popleft()
            ledger.started(job)
            in_flight[actor.run.remote(job)] = (job, actor)
        done, _ = ray.wait(list(in_flight), num_returns=1)
        for ref in done:
            job, actor = in_flight.pop(ref)
            if _collect(ray, ref, job, ledger, queue):
                idle.append(actor)
            else:
                # The actor (and its model) is gone: start a replacement.
                idle.append(actor_class.remote(stage_factory, runner))
