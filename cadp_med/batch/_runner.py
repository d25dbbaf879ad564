"""Run a batch of studies on a backend, with the manifest as the record of progress.

The driver (this process) owns the manifest: it marks a study ``running`` with a new
attempt before handing it to a worker and records the result the worker sends back.
When a worker dies (a killed process, a lost node), the backend reports it here and
the study is handed out again until ``max_attempts`` is reached. Retrying is safe:
outputs are written atomically and named by keyed pseudonyms, so instances written
by a killed attempt are skipped as done, never duplicated.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cadp_med._pipeline import AnonymizeOptions
from cadp_med._types import PathLike
from cadp_med.batch._inputs import StudyInput
from cadp_med.batch._study import (
    StudyJob,
    StudyResult,
    key_check,
    options_from_config,
    options_to_config,
    run_one_study,
)
from cadp_med.batch.manifest import MANIFEST_NAME, Manifest
from cadp_med.errors import ConfigError
from cadp_med.io._atomic import remove_stale_parts

__all__ = ["BatchSummary", "Ledger", "retry_batch", "run_batch"]

logger = logging.getLogger(__name__)

Backend = Literal["local", "ray"]
StudyRunner = Callable[..., StudyResult]


@dataclass
class BatchSummary:
    """What a batch run did, from the manifest: counts and categories only."""

    manifest: Path
    ran: int
    status: dict[str, Any]

    @property
    def exit_code(self) -> int:
        """0 when every study is done with nothing quarantined, 1 otherwise."""
        failed = self.status["states"]["failed"]
        return 1 if failed or self.status["outputs"]["quarantined"] else 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"manifest": str(self.manifest), "ran": self.ran, **self.status}


class Ledger:
    """The backends' view of the manifest: attempt starts, results and crashes.

    Parameters
    ----------
    manifest : Manifest
        Where every transition is recorded at once.
    max_attempts : int
        Attempts per study before a crash counts as a failure.
    """

    def __init__(self, manifest: Manifest, max_attempts: int) -> None:
        self.manifest = manifest
        self.max_attempts = max_attempts
        self._attempts: dict[int, int] = {}

    def started(self, job: StudyJob) -> None:
        """Record a new attempt of ``job``."""
        self._attempts[job.study_id] = self.manifest.mark_running(job.study_id)

    def finished(self, result: StudyResult) -> None:
        """Record what a worker reported."""
        self.manifest.mark_finished(result)

    def crashed(self, job: StudyJob, category: str) -> bool:
        """Record a lost attempt; return True when the study should be handed out again."""
        attempts = self._attempts.get(job.study_id, 1)
        if attempts < self.max_attempts:
            logger.warning(
                "study %d: attempt %d lost (%s); retrying", job.study_id, attempts, category
            )
            return True
        self.manifest.mark_finished(StudyResult(job.study_id, ok=False, error=category))
        return False


@contextmanager
def _batch_lock(manifest_path: Path) -> Iterator[None]:
    """Hold an exclusive lock so that one driver at a time runs a manifest."""
    lock_path = manifest_path.with_name(manifest_path.name + ".lock")
    handle = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError("another batch run holds this manifest") from exc
        yield
    finally:
        os.close(handle)


def run_batch(
    studies: Sequence[StudyInput],
    output: PathLike,
    *,
    key: bytes,
    options: AnonymizeOptions | None = None,
    backend: Backend = "local",
    workers: int = 1,
    address: str | None = None,
    manifest: PathLike | None = None,
    max_attempts: int = 3,
    pixel_stage_factory: Callable[[], object] | None = None,
    pixel_config: dict[str, Any] | None = None,
    study_runner: StudyRunner = run_one_study,
) -> BatchSummary:
    """De-identify many studies into one output folder, recording progress in a manifest.

    Parameters
    ----------
    studies : sequence of StudyInput
        From :func:`studies_in_folder` or :func:`read_input_list`.
    output : str or os.PathLike
        The output folder shared by all studies.
    key : bytes
        The pseudonymisation key; never stored (the manifest keeps a keyed digest).
    options : AnonymizeOptions, optional
        Per-study options; ``workers`` and ``pixel_stage`` are ignored (studies are
        the unit of parallelism, and each worker builds its own pixel stage).
    backend : {"local", "ray"}
        ``local``: this process, or a process pool over studies when ``workers > 1``.
        ``ray``: Ray tasks (header-only) or actors holding the pixel model.
    workers : int
        Local processes, or the CPUs of a Ray instance started here.
    address : str, optional
        Ray cluster address (``auto`` or ``ray://host:port``); none starts a local Ray.
    manifest : str or os.PathLike, optional
        The manifest file; ``OUT/manifest.sqlite`` by default. Rerunning with the same
        manifest adds new studies and runs the pending ones; done studies are skipped.
    max_attempts : int
        Attempts per study when its worker dies.
    pixel_stage_factory : callable, optional
        A picklable zero-argument callable returning the pixel stage; each worker
        calls it once (the model is loaded once per worker). Needed by ``privatize``.
    pixel_config : dict, optional
        JSON-serialisable pixel settings (model, epsilon, seed) stored in the manifest.
    study_runner : callable
        Runs one study in a worker; replaceable for fault-injection tests.

    Returns
    -------
    BatchSummary

    Raises
    ------
    ConfigError
        For bad options, or a manifest made with other options or another key.
    """
    options = options if options is not None else AnonymizeOptions()
    if workers < 1 or max_attempts < 1:
        raise ConfigError("workers and max_attempts must be at least 1")
    if backend not in ("local", "ray"):
        raise ConfigError("backend must be one of local, ray")
    out_root = Path(output).absolute()
    manifest_path = Path(manifest).absolute() if manifest else out_root / MANIFEST_NAME
    config = options_to_config(options, pixel_config or {})
    with Manifest(manifest_path, create=True) as book, _batch_lock(book.path):
        book.bind_run_config(str(out_root), config, key_check(key))
        book.add_studies(studies)
        return _execute(
            book, key, backend, workers, address, max_attempts, pixel_stage_factory, study_runner
        )


def retry_batch(
    manifest: PathLike,
    *,
    key: bytes,
    backend: Backend = "local",
    workers: int = 1,
    address: str | None = None,
    max_attempts: int = 3,
    pixel_stage_factory: Callable[[], object] | None = None,
    study_runner: StudyRunner = run_one_study,
) -> BatchSummary:
    """Run a manifest's failed (and interrupted) studies again with its stored options.

    The key must be the batch's key again (checked against the manifest's digest). A
    batch with nothing failed or pending does nothing. Parameters are those of
    :func:`run_batch`.
    """
    manifest_path = Path(manifest).absolute()
    with Manifest(manifest_path) as book, _batch_lock(book.path):
        stored = book.run_config()
        if stored is None:
            raise ConfigError("the manifest has no run configuration")
        if stored["key_check"] != key_check(key):
            raise ConfigError("this manifest was created with another key")
        book.reset_failed()
        return _execute(
            book, key, backend, workers, address, max_attempts, pixel_stage_factory, study_runner
        )


def _execute(
    book: Manifest,
    key: bytes,
    backend: Backend,
    workers: int,
    address: str | None,
    max_attempts: int,
    pixel_stage_factory: Callable[[], object] | None,
    study_runner: StudyRunner,
) -> BatchSummary:
    stored = book.run_config()
    assert stored is not None
    options = options_from_config(stored["options"])
    if options.pixels == "privatize" and pixel_stage_factory is None:
        raise ConfigError(
            "pixel privatization needs a model: no pixel stage is configured; "
            "use --pixels keep for header-only de-identification"
        )
    # lock=False: this driver holds the batch lock, and its studies write into one
    # output folder at once, so no study may take the output lock for itself.
    options = dataclasses.replace(options, workers=1, pixel_stage=None, lock=False)
    interrupted = book.reset_running()
    if interrupted:
        logger.warning("%d study(ies) left running by an earlier run will run again", interrupted)
    jobs = [
        StudyJob(row.id, row.path, stored["output"], key, options)
        for row in book.studies("pending")
    ]
    ledger = Ledger(book, max_attempts)
    remove_stale_parts(Path(stored["output"]))
    if jobs:
        if backend == "ray":
            from cadp_med.batch._ray import run_on_ray

            run_on_ray(
                jobs,
                ledger,
                address=address,
                workers=workers,
                stage_factory=pixel_stage_factory,
                runner=study_runner,
            )
        else:
            from cadp_med.batch._local import run_locally

            run_locally(
                jobs,
                ledger,
                workers=workers,
                stage_factory=pixel_stage_factory,
                runner=study_runner,
            )
        # A killed worker can leave the temporary file of an unfinished atomic write.
        remove_stale_parts(Path(stored["output"]))
    return BatchSummary(book.path, len(jobs), book.summary())
