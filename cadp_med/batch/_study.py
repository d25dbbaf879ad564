"""One unit of batch work: a whole study, run by :func:`cadp_med.anonymize_study`.

A study is never split across workers, so its pseudonyms, its audit records and
(with pixel privatization) its privacy budget stay within one task. This module is
shared by both backends and imports nothing heavy: a Ray task or a process-pool
worker unpickles a :class:`StudyJob`, calls :func:`run_one_study` and sends a
:class:`StudyResult` back. Neither carries a header value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadp_med._pipeline import AnonymizeOptions, anonymize_study
from cadp_med.errors import (
    CadpError,
    ConfigError,
    DeidError,
    InputError,
    ModelError,
    PrivacyError,
)

__all__ = [
    "COUNT_FIELDS",
    "StudyJob",
    "StudyResult",
    "error_category",
    "key_check",
    "options_from_config",
    "options_to_config",
    "run_one_study",
]

logger = logging.getLogger(__name__)

# The RunSummary counts recorded per study in the manifest.
COUNT_FIELDS = (
    "files_seen",
    "written",
    "skipped_done",
    "quarantined",
    "non_dicom",
    "warnings",
    "patients",
    "studies",
    "series",
)

# Categories of a failed study.  Only these names (and exception class names, which
# are code, not data) ever reach the manifest: an exception message may quote a
# header value or a path, so it is never stored.
_CATEGORIES: tuple[tuple[type[BaseException], str], ...] = (
    (ConfigError, "config-error"),
    (InputError, "input-error"),
    (DeidError, "deid-error"),
    (PrivacyError, "privacy-error"),
    (ModelError, "model-error"),
    (CadpError, "cadp-error"),
    (MemoryError, "out-of-memory"),
    (FileNotFoundError, "file-not-found"),
    (PermissionError, "permission-denied"),
    (OSError, "os-error"),
)
NO_DICOM = "no-dicom-files"
INPUT_MISSING = "input-missing"
WORKER_CRASHED = "worker-crashed"


def error_category(exc: BaseException) -> str:
    """Return the manifest category of an exception, never its message."""
    for kind, category in _CATEGORIES:
        if isinstance(exc, kind):
            return category
    return f"unexpected:{type(exc).__name__}"


@dataclass(frozen=True)
class StudyJob:
    """What a worker needs to de-identify one study.

    Attributes
    ----------
    study_id : int
        The manifest row of the study.
    path : str
        Absolute path of the study folder (or file).
    output : str
        The batch output folder shared by every study.
    key : bytes
        The pseudonymisation key; travels to the worker, is never stored.
    options : AnonymizeOptions
        Per-study options, ``workers=1`` and no pixel stage (a worker adds its own).
    """

    study_id: int
    path: str
    output: str
    key: bytes = field(repr=False)
    options: AnonymizeOptions


@dataclass(frozen=True)
class StudyResult:
    """What came of one study: counts, or the category of the failure."""

    study_id: int
    ok: bool
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


def run_one_study(
    job: StudyJob,
    *,
    pixel_stage: object | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StudyResult:
    """De-identify one study and report counts; exceptions become a category.

    Parameters
    ----------
    job : StudyJob
        The study.
    pixel_stage : callable, optional
        A pixel stage already built by the worker (model loaded once per worker).
    progress : callable, optional
        Passed to :func:`cadp_med.anonymize_study`.

    Returns
    -------
    StudyResult
        ``ok`` is False when the study raised or held no DICOM file at all.
    """
    if not Path(job.path).exists():
        # Common in ETL worklists (a study not yet exported); say so plainly.
        return StudyResult(job.study_id, ok=False, error=INPUT_MISSING)
    options = job.options
    if pixel_stage is not None:
        options = dataclasses.replace(options, pixel_stage=pixel_stage)
    try:
        summary = anonymize_study(
            job.path, job.output, key=job.key, options=options, progress=progress
        )
    except Exception as exc:  # one study must never stop the batch
        category = error_category(exc)
        logger.warning("study %d failed (%s)", job.study_id, category)
        return StudyResult(job.study_id, ok=False, error=category)
    counts = {name: int(getattr(summary, name)) for name in COUNT_FIELDS}
    if counts["written"] + counts["skipped_done"] + counts["quarantined"] == 0:
        return StudyResult(job.study_id, ok=False, counts=counts, error=NO_DICOM)
    return StudyResult(job.study_id, ok=True, counts=counts)


def key_check(key: bytes) -> str:
    """Return a keyed digest of a constant: tells keys apart, reveals nothing of them.

    The manifest stores it so that ``batch retry`` refuses a different key, which
    would give the retried studies pseudonyms that never link to the rest.
    """
    return hmac.new(key, b"cadp-med batch manifest key check v1", hashlib.sha256).hexdigest()[:16]


def options_to_config(options: AnonymizeOptions, pixel_config: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON-serialisable options of a batch (no key, no callable).

    Raises
    ------
    ConfigError
        For options a batch cannot honour: one mapping CSV for many studies run in
        parallel would be overwritten by each.
    """
    if options.export_mapping_csv is not None:
        raise ConfigError("--export-mapping is not supported by batch runs (one CSV per study)")
    profile = options.profile
    return {
        "profile": {
            "options": sorted(option.value for option in profile.options),
            "keep_overlays": bool(profile.keep_overlays),
            "keep_curves": bool(profile.keep_curves),
        },
        "pixels": options.pixels,
        "quarantine": None if options.quarantine is None else str(options.quarantine),
        "allow_burned_in": bool(options.allow_burned_in),
        "uid_map_csv": None if options.uid_map_csv is None else str(options.uid_map_csv),
        "pixel_config": dict(pixel_config),
    }


def options_from_config(config: dict[str, Any]) -> AnonymizeOptions:
    """Rebuild per-study options from :func:`options_to_config` output (no pixel stage)."""
    from cadp_med.deid import Option, Profile

    profile = config["profile"]
    return AnonymizeOptions(
        profile=Profile(
            frozenset(Option(name) for name in profile["options"]),
            keep_overlays=profile["keep_overlays"],
            keep_curves=profile["keep_curves"],
        ),
        pixels=config["pixels"],
        quarantine=None if config["quarantine"] is None else Path(config["quarantine"]),
        allow_burned_in=config["allow_burned_in"],
        uid_map_csv=None if config["uid_map_csv"] is None else Path(config["uid_map_csv"]),
        workers=1,
    )
