"""The main job: de-identify every instance of a study folder into an output folder.

Flow per file: discover → read (quarantine on ``InputError``) → burned-in check →
header de-identification → pixel policy → atomic write → audit record. One bad
file never stops the batch, and the input is only ever read.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import signal
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset

from cadp_med._types import PathLike
from cadp_med.errors import ConfigError, DeidError, InputError
from cadp_med.io import audit as audit_status
from cadp_med.io._atomic import DURABILITY_MODES, WriteGroup, remove_part, remove_stale_parts
from cadp_med.io._commit import GroupCommit
from cadp_med.io.audit import AuditLog
from cadp_med.io.discover import scan
from cadp_med.io.limits import DEFAULT_LIMITS, ResourceLimits
from cadp_med.io.pixel_policy import apply_pixel_policy
from cadp_med.io.quarantine import Quarantine, check_quarantine_location, default_quarantine_root
from cadp_med.io.read import is_image_storage, read_instance, reason_category
from cadp_med.io.write import (
    is_done,
    output_path,
    output_transfer_syntax,
    write_instance,
    write_instance_part,
)

__all__ = ["AnonymizeOptions", "RunSummary", "anonymize_study"]

logger = logging.getLogger(__name__)

PixelMode = Literal["privatize", "keep", "blank"]
_PIXEL_MODES = ("privatize", "keep", "blank")
AUDIT_LOG_NAME = "audit.jsonl"
LOCK_NAME = ".cadp-med.lock"
_PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
# Write errors that no other file would escape: the run stops (CLI exit status 3).
_FATAL_WRITE_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
)
# Exit status of a run stopped by SIGTERM (128 + 15, as a shell reports it).
INTERRUPTED_EXIT_CODE = 143


def _default_profile() -> Any:
    from cadp_med.deid import Profile

    return Profile()


@dataclass(frozen=True)
class AnonymizeOptions:
    """Options of :func:`anonymize_study`.

    Attributes
    ----------
    profile : cadp_med.deid.Profile
        The PS3.15 Annex E profile and options; the Basic Profile by default.
    pixels : {"privatize", "keep", "blank"}
        ``"keep"`` copies pixel data unchanged, ``"blank"`` sets every pixel of
        image objects to zero (geometry kept, written uncompressed),
        ``"privatize"`` runs ``pixel_stage`` (a differentially private model).
    quarantine : Path, optional
        Quarantine folder; default ``<output>.quarantine`` beside the output.
    allow_burned_in : bool
        Process images flagged with burned-in annotation (with a warning)
        instead of quarantining them.
    uid_map_csv : Path, optional
        A mapping CSV from an earlier run, to reuse its pseudonyms.
    export_mapping_csv : Path, optional
        Where to write the original-to-pseudonym mapping (mode 0600).
    workers : int
        Processes for the per-file work; the results equal ``workers=1``.
    pixel_stage : callable, optional
        ``stage(original_dataset, deid_result) -> Dataset``; needed by
        ``pixels="privatize"``.
    nifti : cadp_med.nifti.NiftiOptions, optional
        Modality, patient and output format of ``.nii``/``.nii.gz`` input (defaults
        when None).
    limits : cadp_med.io.limits.ResourceLimits
        What one input file may claim (image size, frames, inflated size, nesting,
        element length, decode time) before it is quarantined.
    decode_isolation : {"process", "inline"}
        Decode compressed pixel data in a worker process (a native decoder crash
        or hang quarantines that file only) or in this process (benchmarks).
    validate_pixels : {"structure", "decode"}
        How ``keep`` and ``blank`` check pixel data: ``"structure"`` from the bytes
        only (length against the geometry, encapsulation items and frame count;
        nothing decoded, large data copied from the input file in chunks),
        ``"decode"`` also decodes them (quarantining what no decoder reads).
        ``privatize`` always decodes.
    lock : bool
        Hold ``OUT/.cadp-med.lock`` for the run, refusing a second run on the same
        output. The batch runner passes False: it holds its own lock and runs
        several studies into one output at once.
    durability : {"group", "syncfs", "file", "none"}
        How written files are made durable before their audit lines are committed
        (:mod:`cadp_med.io._commit`): ``group`` fsyncs the files of a group of up to
        64 files (or 1 s) and then their folders; ``syncfs`` flushes the output file
        system once per group instead; ``file`` fsyncs each file before its rename;
        ``none`` writes atomically without any flush (scratch outputs only).
    """

    profile: Any = field(default_factory=_default_profile)
    pixels: PixelMode = "privatize"
    quarantine: Path | None = None
    allow_burned_in: bool = False
    uid_map_csv: Path | None = None
    export_mapping_csv: Path | None = None
    workers: int = 1
    pixel_stage: object | None = None
    nifti: Any = None
    limits: ResourceLimits = DEFAULT_LIMITS
    decode_isolation: Literal["process", "inline"] = "process"
    lock: bool = True
    validate_pixels: Literal["structure", "decode"] = "structure"
    durability: Literal["group", "syncfs", "file", "none"] = "group"

    def __post_init__(self) -> None:
        if self.pixels not in _PIXEL_MODES:
            raise ConfigError(f"pixels must be one of {', '.join(_PIXEL_MODES)}")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")
        if self.decode_isolation not in ("process", "inline"):
            raise ConfigError("decode_isolation must be one of process, inline")
        if self.validate_pixels not in ("structure", "decode"):
            raise ConfigError("validate_pixels must be one of structure, decode")
        if self.durability not in DURABILITY_MODES:
            raise ConfigError(f"durability must be one of {', '.join(DURABILITY_MODES)}")


@dataclass
class RunSummary:
    """What a run did; counts only, no header values.

    ``exit_code`` is 0 when every DICOM input was written (or already done), 1
    when any was quarantined, and 143 when the run was stopped (SIGTERM) before
    every file was processed.
    """

    files_seen: int = 0
    written: int = 0
    skipped_done: int = 0
    quarantined: int = 0
    non_dicom: int = 0
    warnings: int = 0
    patients: int = 0
    studies: int = 0
    series: int = 0
    output: Path = Path()
    quarantine: Path = Path()
    audit_log: Path = Path()
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """143 when stopped early, else 0 when nothing was quarantined, else 1."""
        if self.interrupted:
            return INTERRUPTED_EXIT_CODE
        return 1 if self.quarantined else 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (paths as strings)."""
        return {
            "files_seen": self.files_seen,
            "written": self.written,
            "skipped_done": self.skipped_done,
            "quarantined": self.quarantined,
            "non_dicom": self.non_dicom,
            "warnings": self.warnings,
            "patients": self.patients,
            "studies": self.studies,
            "series": self.series,
            "output": str(self.output),
            "quarantine": str(self.quarantine),
            "audit_log": str(self.audit_log),
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "interrupted": self.interrupted,
            "exit_code": self.exit_code,
        }


@dataclass
class _Outcome:
    """The result of the per-file work, returned from a worker to the main process."""

    path: Path
    status: str
    reason: str | None = None
    dataset: Dataset | None = None
    pseudonyms: Any = None
    transfer_syntax: str | None = None
    actions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # A privatized image waiting for its model batch (``dataset`` is set once it ran).
    pending_pixels: Any = None
    # Written by a worker process: (target, temporary file, size), for the main process
    # to adopt into its write group; ``dataset`` is then None (nothing large is pickled).
    part: tuple[Path, str, int] | None = None
    # The errno of a write error in a worker that must stop the run (disk full...).
    fatal_errno: int | None = None


@dataclass(frozen=True)
class _JobConfig:
    options: AnonymizeOptions
    key: bytes
    output: Path
    uid_map: Any
    patient_id_map: Any
    method_codes: tuple[tuple[str, str], ...] = ()


class _FileJob:
    """Per-process state: one Deidentifier, built once (in each worker)."""

    def __init__(self, config: _JobConfig, recorder: Any = None) -> None:
        from cadp_med.deid import Deidentifier

        self.config = config
        self.options = config.options
        kwargs: dict[str, Any] = {}
        if config.uid_map is not None:
            kwargs["uid_map"] = config.uid_map
        if config.patient_id_map is not None:
            kwargs["patient_id_map"] = config.patient_id_map
        if recorder is not None:
            kwargs["recorder"] = recorder
        if config.method_codes:
            kwargs["extra_method_codes"] = config.method_codes
        self.deidentifier = Deidentifier(config.options.profile, config.key, **kwargs)

    def __call__(self, path: Path, *, defer_pixels: bool = False) -> _Outcome:
        try:
            return self._process(path, defer_pixels=defer_pixels)
        except Exception as exc:  # one file must never stop the batch
            return _quarantined(path, exc)

    def pixel_batch_size(self) -> int:
        """Slices per model batch across instances; 1 when the stage cannot batch them."""
        stage = self.options.pixel_stage
        if self.options.pixels != "privatize" or not getattr(
            stage, "batches_across_instances", False
        ):
            return 1
        return int(stage.options.batch_size)  # type: ignore[attr-defined]

    def finish_pixels(self, outcomes: list[_Outcome]) -> list[_Outcome]:
        """Run the model once over the pending images among ``outcomes`` (order kept)."""
        waiting = [o for o in outcomes if o.pending_pixels is not None]
        if waiting:
            stage: Any = self.options.pixel_stage
            results = stage.finish([o.pending_pixels for o in waiting])
            for outcome, result in zip(waiting, results, strict=True):
                outcome.pending_pixels = None
                if isinstance(result, Exception):
                    replacement = _quarantined(outcome.path, result)
                    outcome.status, outcome.reason = replacement.status, replacement.reason
                else:
                    outcome.dataset = result
        return outcomes

    def _process(self, path: Path, *, defer_pixels: bool = False) -> _Outcome:
        from cadp_med.deid import burned_in_reason

        options = self.options
        # Only the model needs the image; keep and blank check the bytes (and leave
        # large pixel data in the input file until it is copied to the output).
        decode = options.pixels == "privatize" or options.validate_pixels == "decode"
        original = read_instance(
            path,
            decode_pixels=decode,
            limits=options.limits,
            decode_isolation=options.decode_isolation,
            defer_pixel_data=not decode,
        )
        pseudonyms = self.deidentifier.pseudonyms(original)
        if is_done(output_path(self.config.output, pseudonyms)):
            return _Outcome(path, audit_status.SKIPPED_DONE, pseudonyms=pseudonyms)
        warnings: list[str] = []
        burned_in = burned_in_reason(original)
        if burned_in is not None:
            if options.allow_burned_in:
                warnings.append(f"burned-in annotation allowed: {burned_in}")
            elif options.pixels != "privatize":
                return _Outcome(path, audit_status.BURNED_IN_QUARANTINED, reason="burned-in")
        refuse = getattr(options.pixel_stage, "refuse_reason", None)
        if options.pixels == "privatize" and refuse is not None:
            refusal = refuse(original)
            if refusal is not None:
                return _Outcome(path, audit_status.QUARANTINED, reason=refusal)
            # e.g. an image outside the model's domains, let through on request.
            domain_warnings = getattr(options.pixel_stage, "domain_warnings", None)
            if domain_warnings is not None:
                warnings.extend(domain_warnings(original))
        result = self.deidentifier(original, pseudonyms)
        warnings.extend(result.warnings)
        source_syntax = original.file_meta.get("TransferSyntaxUID") if original.file_meta else None
        has_image = "PixelData" in original and is_image_storage(str(original.SOPClassUID))
        if (
            defer_pixels
            and has_image
            and options.pixels == "privatize"
            and "PixelData" in result.dataset
        ):
            # Decode and condition now; the model runs with the next batch of slices.
            return _Outcome(
                path,
                audit_status.WRITTEN,
                pseudonyms=result.pseudonyms,
                transfer_syntax=output_transfer_syntax(source_syntax, pixels_unchanged=False),
                actions=dict(result.actions),
                warnings=warnings,
                pending_pixels=options.pixel_stage.prepare_instance(original, result),  # type: ignore[union-attr]
            )
        dataset, pixels_unchanged, pixel_warnings = apply_pixel_policy(
            original,
            result,
            mode=options.pixels if has_image else "keep",
            source_syntax=source_syntax,
            pixel_stage=options.pixel_stage,
        )
        warnings.extend(pixel_warnings)
        syntax = output_transfer_syntax(source_syntax, pixels_unchanged=pixels_unchanged)
        return _Outcome(
            path,
            audit_status.WRITTEN,
            dataset=dataset,
            pseudonyms=result.pseudonyms,
            transfer_syntax=syntax,
            actions=dict(result.actions),
            warnings=warnings,
        )


def _quarantined(path: Path, exc: Exception) -> _Outcome:
    """The outcome of a file whose processing raised ``exc``."""
    if isinstance(exc, InputError):
        return _Outcome(path, audit_status.QUARANTINED, reason=reason_category(exc))
    if isinstance(exc, DeidError):
        logger.warning("de-identification failed (%s); file quarantined", type(exc).__name__)
        return _Outcome(path, audit_status.QUARANTINED, reason="deid-error")
    logger.warning("unexpected %s; file quarantined", type(exc).__name__)
    return _Outcome(path, audit_status.QUARANTINED, reason="unexpected-error")


_WORKER_JOB: _FileJob | None = None


# The output lock's descriptor while a run holds it; a forked worker closes its copy.
_HELD_LOCK_FD: int | None = None
# Files in flight per worker. Outcomes are small (workers write their own outputs), so
# a deep window costs little and keeps the workers busy while the run's process
# waits on a group commit's fsyncs.
_WINDOW_PER_WORKER = 32
# Files per task sent to a worker. One per task: the pool's queues and pickling cost a
# header-only run about a tenth of its time. Not more than four: two workers then write
# files far apart in input order, and on a full disk later files took the space of the
# first ones, so a run stopped having written none (tasks of eight, reverted in 7e9a5ef).
_FILES_PER_TASK = 4
# The process that starts the worker pool (set before it forks).
_PARENT_PID = os.getpid()


def _init_worker(config: _JobConfig) -> None:
    global _WORKER_JOB
    if _HELD_LOCK_FD is not None:
        # flock belongs to the open file, which fork shares: a worker that kept its copy
        # would hold the lock past the death of the run that took it.
        os.close(_HELD_LOCK_FD)
    _die_with_parent()
    # The run's process handles SIGTERM/SIGINT (finishing what is in flight); a worker
    # that died of a signal sent to the whole group would break the pool instead.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_JOB = _FileJob(config)


def _die_with_parent() -> None:
    """Have the kernel kill this worker when the run's process dies (Linux).

    A killed run (``kill -9``, OOM killer) would otherwise leave its workers waiting on
    their queue forever, writing nothing, holding memory.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the pool's own shutdown is all there is
    if os.getppid() != _PARENT_PID:
        os._exit(1)  # the parent died before the request took effect


def _run_files_in_worker(paths: list[Path]) -> list[_Outcome]:
    """:func:`_run_in_worker` for each of ``paths``, in order: one task, one reply."""
    return [_run_in_worker(path) for path in paths]


def _run_in_worker(path: Path) -> _Outcome:
    """Process one file and write its output to a temporary file, in a worker process.

    The main process adopts the temporary file into its write group (durability, rename,
    audit): only the outcome's few fields cross the process boundary, never a dataset.
    """
    assert _WORKER_JOB is not None, "worker initializer did not run"
    outcome = _WORKER_JOB(path)
    if outcome.status != audit_status.WRITTEN or outcome.dataset is None:
        return outcome
    try:
        outcome.part = write_instance_part(
            outcome.dataset,
            _WORKER_JOB.config.output,
            outcome.pseudonyms,
            transfer_syntax=outcome.transfer_syntax or "",
        )
    except OSError as exc:
        if exc.errno in _FATAL_WRITE_ERRORS:
            outcome.fatal_errno = exc.errno
        else:
            logger.warning("writing failed (%s); file quarantined", type(exc).__name__)
            outcome.status, outcome.reason = audit_status.QUARANTINED, "write-failed"
    except Exception as exc:  # one bad dataset: quarantine, keep going
        logger.warning("writing failed (%s); file quarantined", type(exc).__name__)
        outcome.status, outcome.reason = audit_status.QUARANTINED, "write-failed"
    outcome.dataset = None
    return outcome


def _outcomes(config: _JobConfig, paths: list[Path], recorder: Any) -> Iterator[_Outcome]:
    """Yield outcomes in input order, so that any worker count gives the same result."""
    workers = config.options.workers
    if workers == 1 or len(paths) <= 1:
        job = _FileJob(config, recorder)
        batch_size = job.pixel_batch_size()
        if batch_size == 1:
            for path in paths:
                yield job(path)
            return
        yield from _batched_outcomes(job, paths, batch_size)
        return
    global _PARENT_PID
    _PARENT_PID = os.getpid()
    with ProcessPoolExecutor(
        max_workers=workers, initializer=_init_worker, initargs=(config,)
    ) as pool:
        # A bounded window keeps at most a few outcomes waiting at once.
        pending: deque[Future[list[_Outcome]]] = deque()
        ready: deque[_Outcome] = deque()  # a finished task's outcomes not yet taken
        window = max(1, _WINDOW_PER_WORKER * workers // _FILES_PER_TASK)

        def take_oldest_task() -> Iterator[_Outcome]:
            ready.extend(pending.popleft().result())
            while ready:
                yield ready.popleft()

        try:
            for start in range(0, len(paths), _FILES_PER_TASK):
                task = paths[start : start + _FILES_PER_TASK]
                pending.append(pool.submit(_run_files_in_worker, task))
                if len(pending) >= window:
                    yield from take_oldest_task()
            while pending:
                yield from take_oldest_task()
        finally:
            # A stopped run (SIGTERM, a fatal write error): the outcomes nobody takes
            # are not audited, so their temporary files must not outlive the run.
            _discard(ready, pending)


def _discard(ready: deque[_Outcome], pending: deque[Future[list[_Outcome]]]) -> None:
    outcomes = list(ready)
    for future in pending:
        if future.cancel():
            continue
        try:
            outcomes += future.result()
        except Exception:  # noqa: BLE001 - the run is ending; nothing to record
            continue
    for outcome in outcomes:
        if outcome.part is not None:
            remove_part(outcome.part[1])


def _batched_outcomes(job: _FileJob, paths: list[Path], batch_size: int) -> Iterator[_Outcome]:
    """Outcomes in input order, the slices of consecutive images sharing model batches.

    Files are prepared (read, de-identified, decoded) one by one and queue until
    ``batch_size`` slices (or files) wait, the series changes, or a multi-frame image
    comes (it is run alone, its frames batched as before); then one model pass serves
    the queue. At most one batch of images is held in memory.
    """
    queue: list[_Outcome] = []
    rows = 0
    series: str | None = None
    for path in paths:
        outcome = job(path, defer_pixels=True)
        item = outcome.pending_pixels
        if (
            item is not None
            and queue
            and (rows + item.rows > batch_size or item.series_uid != series or item.rows > 1)
        ):
            yield from job.finish_pixels(queue)
            queue, rows = [], 0
        queue.append(outcome)
        if item is not None:
            rows += item.rows
            series = item.series_uid
        if rows >= batch_size or len(queue) >= batch_size:
            yield from job.finish_pixels(queue)
            queue, rows = [], 0
    yield from job.finish_pixels(queue)


def _check_locations(input_root: Path, output: Path, quarantine: Path) -> None:
    real_in, real_out = input_root.resolve(), output.resolve()
    if real_out == real_in or (real_in.is_dir() and real_out.is_relative_to(real_in)):
        raise ConfigError("the output folder must not be inside the input folder")
    if real_in.is_relative_to(real_out):
        raise ConfigError("the input folder must not be inside the output folder")
    check_quarantine_location(quarantine, output)
    if real_in.is_dir() and quarantine.resolve().is_relative_to(real_in):
        raise ConfigError("the quarantine folder must not be inside the input folder")


def _load_maps(options: AnonymizeOptions) -> tuple[Any, Any]:
    if options.uid_map_csv is None:
        return None, None
    from cadp_med.deid import read_mapping_csv

    return read_mapping_csv(options.uid_map_csv)


@contextmanager
def _output_lock(out_root: Path, *, enabled: bool) -> Iterator[None]:
    """Hold ``OUT/.cadp-med.lock`` so that a second run on the same output is refused.

    Two runs into one folder would race on the audit log and on resumed outputs. The
    lock is advisory (``flock``) and dies with the process, so a killed run never
    leaves a stale lock behind.
    """
    if not enabled:
        yield
        return
    handle = os.open(out_root / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                "another cadp-med run is writing to this output folder (it holds "
                f"{LOCK_NAME}); wait for it to finish or choose another output"
            ) from None
        global _HELD_LOCK_FD
        _HELD_LOCK_FD = handle
        yield
    finally:
        _HELD_LOCK_FD = None
        os.close(handle)


def _pixel_setup(
    options: AnonymizeOptions, key: bytes, paths: list[Path], uid_map: Any
) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """Header pre-pass of the pixel stage, privatized series UIDs and pixel method codes.

    A privatized series gets its own Series Instance UID; giving the override to the
    Deidentifier makes every reference to the series (SEG, SR, presentation states)
    point at it.
    """
    if options.pixels == "keep":
        return uid_map, ()  # without importing the pixel package (startup time)
    from cadp_med.pixels._provenance import BLANK_METHOD_CODES, PIXEL_METHOD_CODES

    if options.pixels == "blank":
        return uid_map, BLANK_METHOD_CODES
    if options.pixels != "privatize":
        return uid_map, ()
    stage = options.pixel_stage
    prepare = getattr(stage, "prepare", None)
    overrides = getattr(stage, "uid_overrides", None)
    if prepare is not None:
        prepare(paths)
    if overrides is not None:
        retain = "retain-uids" in {str(getattr(o, "value", o)) for o in options.profile.options}
        uid_map = {**dict(uid_map or {}), **overrides(key, uid_map, retain_uids=retain)}
    return uid_map, PIXEL_METHOD_CODES


def anonymize_study(
    input: PathLike,
    output: PathLike,
    *,
    key: bytes,
    options: AnonymizeOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> RunSummary:
    """De-identify every DICOM instance under ``input`` into ``output``.

    Parameters
    ----------
    input : str or os.PathLike
        A study folder of any layout (or one file). It is never modified.
    output : str or os.PathLike
        The output folder; created if needed. Instances already there (from an
        earlier run with the same key) are skipped, so a run can be resumed.
    key : bytes
        The pseudonymisation key (see :func:`cadp_med.deid.load_key`).
    options : AnonymizeOptions, optional
        Profile, pixel policy, quarantine and worker settings.
    progress : callable, optional
        Called as ``progress(done, total)`` after each DICOM candidate file.
    stop : callable, optional
        Polled after each file; when it returns True the run ends there (the file
        in flight is finished and audited) with ``summary.interrupted`` set. The
        CLI sets it from SIGTERM.

    Returns
    -------
    RunSummary
        Counts of what happened; ``summary.exit_code`` is 0, 1 or 143.

    Raises
    ------
    ConfigError
        For bad options or folders (output inside input, quarantine inside
        output, missing input, another run holding the output's lock) before any
        file is touched.
    OSError
        When the output cannot be written at all (full disk, quota, read-only or
        permission denied); the run stops there, leaving no partial file.
    """
    options = options if options is not None else AnonymizeOptions()
    if options.pixels == "privatize" and options.pixel_stage is None:
        raise ConfigError(
            "pixel privatization needs a model: no pixel stage is configured; "
            "use --pixels keep for header-only de-identification"
        )
    input_root = Path(input).absolute()
    out_root = Path(output).absolute()
    if not input_root.exists():
        raise ConfigError("the input folder does not exist")
    quarantine_root = (
        Path(options.quarantine).absolute()
        if options.quarantine is not None
        else default_quarantine_root(out_root)
    )
    _check_locations(input_root, out_root, quarantine_root)
    if options.export_mapping_csv is not None and options.workers > 1:
        raise ConfigError("--export-mapping needs --workers 1 (the mapping is recorded in-process)")
    maps = _load_maps(options)

    discovery = scan(input_root)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the output folder: {exc.strerror}") from None
    with _output_lock(out_root, enabled=options.lock):
        return _run(
            input_root, out_root, quarantine_root, discovery, maps, key, options, progress, stop
        )


def _run(
    input_root: Path,
    out_root: Path,
    quarantine_root: Path,
    discovery: Any,
    maps: tuple[Any, Any],
    key: bytes,
    options: AnonymizeOptions,
    progress: Callable[[int, int], None] | None,
    stop: Callable[[], bool] | None,
) -> RunSummary:
    """The body of :func:`anonymize_study`, under the output lock."""
    uid_map, patient_id_map = maps
    # Only dead processes' parts: concurrent studies may be writing into these folders.
    # Quarantine copies are parts until their group commits, like the outputs.
    remove_stale_parts(out_root)
    remove_stale_parts(quarantine_root)
    summary = RunSummary(
        files_seen=len(discovery.files) + len(discovery.skipped),
        output=out_root,
        quarantine=quarantine_root,
        audit_log=out_root / AUDIT_LOG_NAME,
    )
    quarantine = Quarantine(quarantine_root)
    recorder = None
    if options.export_mapping_csv is not None:
        from cadp_med.deid import MappingRecorder

        recorder = MappingRecorder()
    paths = [item.path for item in discovery.files]
    volumes, skipped_files = [], list(discovery.skipped)
    if skipped_files:
        # Only then: the NIfTI package loads the pixel stage's modules, which a
        # header-only run of DICOM files never needs (startup time).
        from cadp_med.nifti import split_nifti

        volumes, skipped_files = split_nifti(discovery.skipped)
    uid_map, method_codes = _pixel_setup(options, key, paths, uid_map)
    config = _JobConfig(options, key, out_root, uid_map, patient_id_map, method_codes)
    reasons: Counter[str] = Counter()
    groups: dict[str, set[Any]] = {"patients": set(), "studies": set(), "series": set()}
    with AuditLog(summary.audit_log, deferred=True) as audit:
        # Audit lines wait for their files to be durable (cadp_med.io._commit).
        commit = GroupCommit(out_root, audit, options.durability, quarantine_root=quarantine_root)
        try:
            for skipped in skipped_files:
                summary.non_dicom += 1
                audit.record(skipped.path, audit_status.SKIPPED_NON_DICOM, reason=skipped.reason)
            for done, outcome in enumerate(_outcomes(config, paths, recorder), start=1):
                _finish(outcome, out_root, quarantine, audit, summary, reasons, groups,
                        commit)  # fmt: skip
                commit.maybe_commit()
                if progress is not None:
                    progress(done, len(paths))
                if stop is not None and stop():
                    summary.interrupted = True
                    break
        finally:
            # Also when a fatal write error stops the run: what was written is kept.
            commit.close()
        if volumes and not summary.interrupted:
            from cadp_med.nifti import anonymize_volumes

            for volume in anonymize_volumes(
                volumes,
                input_root=input_root,
                output=out_root,
                key=key,
                options=options,
                audit=audit,
            ):
                _count_volume(volume, quarantine, audit, summary, reasons, groups)
    if recorder is not None:
        recorder.write_csv(options.export_mapping_csv)
    summary.quarantine_reasons = dict(reasons)
    summary.patients = len(groups["patients"])
    summary.studies = len(groups["studies"])
    summary.series = len(groups["series"])
    return summary


def _finish(
    outcome: _Outcome,
    out_root: Path,
    quarantine: Quarantine,
    audit: AuditLog,
    summary: RunSummary,
    reasons: Counter[str],
    groups: dict[str, set[Any]],
    commit: GroupCommit,
) -> None:
    """Write, quarantine and audit one outcome, in the main process."""
    group = commit.group
    if outcome.fatal_errno is not None:
        raise OSError(outcome.fatal_errno, os.strerror(outcome.fatal_errno))
    target: Path | None = None
    if outcome.status == audit_status.WRITTEN:
        try:
            target = output_path(out_root, outcome.pseudonyms)
            if is_done(target) or target in group:
                # A duplicate instance earlier in this very run wrote it.
                outcome.status = audit_status.SKIPPED_DONE
                if outcome.part is not None:
                    remove_part(outcome.part[1])
            elif outcome.part is not None:
                group.adopt(*outcome.part)
            else:
                assert outcome.dataset is not None
                write_instance(
                    outcome.dataset,
                    out_root,
                    outcome.pseudonyms,
                    transfer_syntax=outcome.transfer_syntax or "",
                    group=group,
                )
        except OSError as exc:
            if exc.errno in _FATAL_WRITE_ERRORS:
                # Every later write would fail the same way: stop the run instead
                # of quarantining every remaining input. No partial file is left
                # (atomic writes remove their temporary file).
                raise
            logger.warning("writing failed (%s); file quarantined", type(exc).__name__)
            outcome.status, outcome.reason = audit_status.QUARANTINED, "write-failed"
        except Exception as exc:  # one bad dataset: quarantine, keep going
            logger.warning("writing failed (%s); file quarantined", type(exc).__name__)
            outcome.status, outcome.reason = audit_status.QUARANTINED, "write-failed"
    if outcome.status in (audit_status.QUARANTINED, audit_status.BURNED_IN_QUARANTINED):
        _quarantine_input(outcome.path, outcome.status, outcome.reason, quarantine, audit,
                          summary, reasons, commit.quarantine_group)  # fmt: skip
        return
    pseudonyms = outcome.pseudonyms
    groups["patients"].add(pseudonyms.patient_id)
    groups["studies"].add(pseudonyms.study_uid)
    groups["series"].add(pseudonyms.series_uid)
    target = target or output_path(out_root, pseudonyms)
    relative = target.relative_to(out_root).as_posix()
    if outcome.status == audit_status.SKIPPED_DONE:
        summary.skipped_done += 1
        audit.record(outcome.path, outcome.status, output=relative)
        return
    summary.written += 1
    summary.warnings += len(outcome.warnings)
    audit.record(
        outcome.path,
        outcome.status,
        output=relative,
        actions=outcome.actions,
        warnings=outcome.warnings,
    )


def _quarantine_input(
    path: Path,
    status: str,
    reason: str | None,
    quarantine: Quarantine,
    audit: AuditLog,
    summary: RunSummary,
    reasons: Counter[str],
    group: WriteGroup | None = None,
) -> None:
    """Copy one input to the quarantine, audit it and count its reason.

    With ``group`` the copy becomes durable at the group's commit, before the audit
    line (which the deferred audit log holds until then); without, at once.
    """
    summary.quarantined += 1
    reasons[reason or "unknown"] += 1
    quarantine.put(path, reason or "unknown", group=group)
    audit.record(path, status, reason=reason)


def _count_volume(
    volume: Any,
    quarantine: Quarantine,
    audit: AuditLog,
    summary: RunSummary,
    reasons: Counter[str],
    groups: dict[str, set[Any]],
) -> None:
    """Count one NIfTI volume (``cadp_med.nifti`` wrote and audited its outputs)."""
    if volume.status == audit_status.QUARANTINED:
        _quarantine_input(volume.path, volume.status, volume.reason, quarantine, audit,
                          summary, reasons)  # fmt: skip
        return
    summary.written += volume.written
    summary.skipped_done += volume.skipped_done
    summary.warnings += volume.warnings
    groups["patients"].add(volume.patient_id)
    groups["studies"].add(volume.study_uid)
    groups["series"].add(volume.series_uid)
