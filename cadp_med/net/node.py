"""The receive → anonymize → forward node behind ``cadp-med serve``.

Threads: pynetdicom's acceptor (one per association) spools instances and stamps the
study's last arrival; one worker thread takes what a study has received, runs
:func:`cadp_med.anonymize_study` on it into staging, and delivers each output file to
every destination, retrying with backoff and dead-lettering what still fails.  In
header-only mode (``pixels`` keep or blank) every instance stands alone, so the worker
takes a study's instances in batches of ``batch_instances`` while it is still
arriving, and a study's transfer, de-identification and delivery overlap; the study
is complete, and its spool released, when it has been quiet for ``idle_seconds``.
Privatization fits each series' window from the whole series, so there the worker
waits for the quiet study.  State lives on disk only (spool folders and markers,
ledger), so a node killed at any point resumes on restart without loss and without
sending twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cadp_med.errors import CadpError, ConfigError, NetworkError
from cadp_med.net._destinations import open_session
from cadp_med.net._scp import StoreHandlers, server_ssl_context, transfer_syntaxes
from cadp_med.net._spool import LEDGER, Ledger, Spool, durable_copy, durable_write
from cadp_med.net._status import Metrics, StatusServer
from cadp_med.net.config import Destination, NodeConfig

LOGGER = logging.getLogger(__name__)

Anonymizer = Callable[[Path, Path, str], Any]
"""``anonymize(spooled_study, staging_output, study_key) -> RunSummary``."""


class _Stopping(Exception):
    """Raised inside the worker when the node shuts down mid-delivery."""


class Node:
    """A DICOM node: C-STORE SCP, anonymizing worker, destinations and status endpoint.

    Parameters
    ----------
    config : NodeConfig
        The validated configuration.
    anonymizer : callable, optional
        Replaces the call to :func:`cadp_med.anonymize_study`; for embedding and tests.
    """

    def __init__(self, config: NodeConfig, anonymizer: Anonymizer | None = None) -> None:
        self.config = config
        self.metrics = Metrics()
        self.spool = Spool(config.spool, config.staging)
        self._anonymizer = anonymizer or self._anonymize_study
        self._key: bytes | None = None
        self._options: Any = None
        self._lock = threading.Lock()  # guards _due and _study_locks
        self._due: dict[str, float] = {}  # study key -> monotonic time of last arrival
        self._arrived: dict[str, int] = {}  # study key -> instances not yet in a batch
        self._study_locks: dict[str, threading.Lock] = {}
        self._active: str | None = None  # the study the worker is on, still pending
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._worker = threading.Thread(target=self._run, name="cadp-worker", daemon=True)
        self._server: Any = None
        self._ae: Any = None
        self._status: StatusServer | None = None
        self.port = config.port
        self.http_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Load the key, resume pending studies, and start listening."""
        from pynetdicom import AE, AllStoragePresentationContexts

        if self._anonymizer == self._anonymize_study:
            # Fail now, not at the first study, on a missing key or a bad profile.
            self._key = self.config.key_bytes()
            self._options = self._build_options()
        for study in self.spool.pending_studies():
            self._due[study] = 0.0  # quiet since before the restart: due at once
        if self._due:
            LOGGER.info("resuming studies", extra={"fields": {"studies": len(self._due)}})
        ae = self._ae = AE(ae_title=self.config.ae_title)
        ae.maximum_associations = self.config.max_associations
        ae.maximum_pdu_size = 0  # no limit: fewer, larger P-DATA PDUs from fast peers
        syntaxes = transfer_syntaxes()
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        handlers = StoreHandlers(self.config, self.metrics, self._accept)
        self._server = ae.start_server(
            (self.config.host, self.config.port),
            block=False,
            evt_handlers=handlers.handlers(),
            ssl_context=server_ssl_context(self.config),
        )
        self.port = self._server.server_address[1]
        if self.config.http_port is not None:
            self._status = StatusServer(self.config.http_host, self.config.http_port, self.report)
            self._status.start()
            self.http_port = self._status.port
        self._worker.start()
        LOGGER.info(
            "node started",
            extra={
                "fields": {
                    "ae_title": self.config.ae_title,
                    "port": self.port,
                    "http_port": self.http_port,
                }
            },
        )

    def stop(self, timeout: float = 30.0, grace: float = 5.0) -> None:
        """Stop accepting, let the worker finish its current step, and close down.

        Open associations get ``grace`` seconds to finish, then are aborted: what they
        had not been acknowledged is the sender's to resend.  Work not delivered stays
        in the spool without a DONE marker and resumes on the next start.
        """
        if self._server is not None:
            # Don't let server_close() join association threads: a peer that keeps its
            # association open would otherwise block shutdown indefinitely.
            self._server.block_on_close = False
            self._server.shutdown()
            deadline = time.monotonic() + grace
            while self._ae.active_associations and time.monotonic() < deadline:
                time.sleep(0.05)
            for assoc in self._ae.active_associations:
                assoc.abort()
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self._status is not None:
            self._status.stop()
        LOGGER.info("node stopped", extra={"fields": {"studies_pending": len(self._due)}})

    def report(self) -> dict[str, Any]:
        """The metrics served at ``/metrics``."""
        counts: dict[str, Any] = self.metrics.snapshot()
        counts["spool_bytes"] = self.spool.size_bytes()
        with self._lock:
            counts["studies_pending"] = len(self._due.keys() | {self._active} - {None})
        return counts

    # -- scheduling --------------------------------------------------------------------

    def _study_lock(self, study: str) -> threading.Lock:
        with self._lock:
            return self._study_locks.setdefault(study, threading.Lock())

    def _accept(self, study: str, sop_key: str, data: bytes) -> None:
        """Spool one instance and (re)schedule its study, under the study's lock, so
        the worker cannot discard the study folder between the two."""
        with self._study_lock(study):
            self.spool.store(study, sop_key, data)
            with self._lock:
                self._due[study] = time.monotonic()
                self._arrived[study] = self._arrived.get(study, 0) + 1
        if self._streaming and self._arrived.get(study, 0) >= self.config.batch_instances:
            self._wake.set()

    @property
    def _streaming(self) -> bool:
        return self.config.pixels != "privatize" and self.config.batch_instances > 0

    def _next_due(self) -> tuple[str, bool] | None:
        """The next study to work on, and whether it is complete (quiet)."""
        now = time.monotonic()
        with self._lock:
            for study, last in sorted(self._due.items(), key=lambda item: item[1]):
                if now - last >= self.config.idle_seconds:
                    return study, True
            if self._streaming:
                for study, count in self._arrived.items():
                    if count >= self.config.batch_instances and study in self._due:
                        return study, False
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self._next_due()
            if due is None:
                self._wake.wait(min(0.2, self.config.idle_seconds / 4))
                self._wake.clear()
                continue
            study, complete = due
            with self._lock:
                if complete:
                    self._due.pop(study, None)
                self._active = study
            try:
                self._process(study, complete)
            except _Stopping:
                LOGGER.info("delivery interrupted by shutdown", extra={"fields": {"study": study}})
                return
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any study
                # The study stays in the spool without a marker: it resumes on restart
                # or when another instance of it arrives.
                self.metrics.add("failed")
                LOGGER.error(
                    "study failed",
                    extra={"fields": {"study": study, "error": type(exc).__name__}},
                )
            finally:
                with self._lock:
                    self._active = None

    # -- one study ---------------------------------------------------------------------

    def _build_options(self) -> Any:
        """``AnonymizeOptions`` from the config; raises ConfigError for a bad profile."""
        from cadp_med import _pipeline
        from cadp_med.deid import Profile

        profile_table = dict(self.config.profile)
        profile = Profile.from_options(
            profile_table.pop("options", []),
            keep_overlays=bool(profile_table.pop("keep_overlays", False)),
            keep_curves=bool(profile_table.pop("keep_curves", False)),
        )
        if profile_table:
            raise ConfigError(f"profile: unknown keys {', '.join(sorted(profile_table))}")
        kwargs: dict[str, Any] = {"profile": profile, "pixels": self.config.pixels}
        if self.config.pixels == "privatize":
            kwargs["pixel_stage"] = self._pixel_stage()
        # Header-only de-identification runs in two worker processes, so that it does
        # not share a GIL with this process's receiving and sending threads.
        workers = 1 if self.config.pixels == "privatize" else 2
        return _pipeline.AnonymizeOptions(allow_burned_in=False, workers=workers, **kwargs)

    def _pixel_stage(self) -> Any:
        """The DP pixel stage from ``eps``, ``model`` and ``[privacy]``; loads the model once."""
        from cadp_med.pixels import PixelOptions, PixelStage

        settings: dict[str, Any] = dict(self.config.privacy)
        if self.config.eps is not None:
            settings["epsilon"] = self.config.eps
        if self.config.model is not None:
            settings["model"] = Path(self.config.model)
        return PixelStage(PixelOptions(**settings))

    def _anonymize_study(self, source: Path, output: Path, study: str) -> Any:
        from cadp_med import _pipeline

        assert self._key is not None and self._options is not None
        options = dataclasses.replace(
            self._options, quarantine=self.config.quarantine / "studies" / study
        )
        return _pipeline.anonymize_study(source, output, key=self._key, options=options)

    def _process(self, study: str, complete: bool) -> None:
        """Anonymize and deliver what ``study`` has received; release it when complete."""
        with self._study_lock(study):
            batch = self.spool.take_batch(study)
            with self._lock:
                self._arrived.pop(study, None)
        if batch is not None:
            self._process_batch(study, batch)
        if not complete:
            return
        with self._study_lock(study):
            with self._lock:
                if study in self._due:
                    return  # more instances arrived meanwhile: run again when quiet
            # Anything dead-lettered or quarantined keeps its originals in the spool
            # (marked done) so an operator can re-drive it; otherwise nothing is kept.
            if self.config.retain_spool or self.spool.must_keep(study):
                self.spool.mark_done(study)
            else:
                self.spool.discard(study)
        LOGGER.info("study delivered", extra={"fields": {"study": study}})

    def _process_batch(self, study: str, batch: Path) -> None:
        output = self.spool.output_dir(study)
        summary = self._anonymizer(batch, output, study)
        quarantined = int(getattr(summary, "quarantined", 0))
        self.metrics.add("anonymized", int(getattr(summary, "written", 0)))
        self.metrics.add("quarantined", quarantined)
        if quarantined:
            # Reason categories only (e.g. "missing-pixel-data"): never a header value.
            reasons = dict(getattr(summary, "quarantine_reasons", {}))
            LOGGER.warning(
                "instances quarantined by the pipeline",
                extra={"fields": {"study": study, "files": quarantined, "reasons": reasons}},
            )
        files = _output_files(output)
        ledger = Ledger(self.config.staging / study / LEDGER)
        dead = 0
        try:
            for destination in self.config.destinations:
                dead += self._deliver(study, destination, output, files, ledger)
        finally:
            ledger.sync()  # before the batch is marked handled
        if dead or quarantined:
            self.spool.keep_originals(study)
        self.spool.finish_batch(study)
        LOGGER.info(
            "batch delivered",
            extra={"fields": {"study": study, "files": len(files), "dead_lettered": dead}},
        )

    def _deliver(
        self, study: str, destination: Destination, root: Path, files: list[Path], ledger: Ledger
    ) -> int:
        """Send ``files`` not yet in the ledger; return how many were dead-lettered."""
        retry = self.config.retry
        pending = [f for f in files if not ledger.is_sent(destination.name, _rel(f, root))]
        reasons: dict[Path, str] = {}
        for attempt in range(1, retry.attempts + 1):
            if not pending:
                return 0
            if attempt > 1 and self._stop.wait(retry.delay(attempt - 1)):
                raise _Stopping
            reasons = {}
            try:
                with open_session(destination, pending, self.config.ae_title) as send:
                    for path in pending:
                        if self._stop.is_set():
                            raise _Stopping
                        relpath = _rel(path, root)
                        try:
                            send(path, relpath)
                        except NetworkError as exc:
                            reasons[path] = str(exc)
                            continue
                        ledger.record(destination.name, relpath)
                        self.metrics.add("sent")
            except (NetworkError, OSError, CadpError) as exc:
                for path in pending:
                    if not ledger.is_sent(destination.name, _rel(path, root)):
                        reasons.setdefault(path, str(exc))
            pending = [p for p in pending if p in reasons]
            self.metrics.add("failed", len(pending))
            if pending:
                LOGGER.warning(
                    "delivery failed",
                    extra={
                        "fields": {
                            "study": study,
                            "destination": destination.name,
                            "attempt": attempt,
                            "files": len(pending),
                        }
                    },
                )
        for path in pending:
            self._dead_letter(study, destination, path, _rel(path, root), reasons[path])
        return len(pending)

    def _dead_letter(
        self, study: str, destination: Destination, path: Path, relpath: str, reason: str
    ) -> None:
        target = self.config.dead_letter / study / destination.name / relpath
        durable_copy(path, target)
        record = {
            "study": study,
            "destination": destination.name,
            "file": relpath,
            "attempts": self.config.retry.attempts,
            "reason": reason,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        durable_write(target.with_name(target.name + ".json"), json.dumps(record).encode())
        self.metrics.add("dead_lettered")
        LOGGER.error(
            "dead-lettered",
            extra={"fields": {"study": study, "destination": destination.name, "reason": reason}},
        )


def _output_files(root: Path) -> list[Path]:
    """The study's output files, sorted; the folder grows batch by batch, so this walks
    it with os.walk (pathlib's rglob took longer than sending the batch)."""
    found = []
    for folder, _, names in os.walk(root):
        found += [os.path.join(folder, n) for n in names if n.endswith(".dcm") and n[0] != "."]
    return [Path(name) for name in sorted(found)]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
