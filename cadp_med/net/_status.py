"""Counters, the JSON health/metrics HTTP endpoint, and JSON-lines logging.

``GET /health`` answers ``{"status": "ok"}``; ``GET /metrics`` answers the counters
of :class:`Metrics` plus ``spool_bytes`` and ``studies_pending``.  Nothing here ever
holds a header value: counts and hashed study keys only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COUNTERS = ("received", "anonymized", "sent", "failed", "quarantined", "dead_lettered")


class Metrics:
    """Thread-safe event counters of one node."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)

    def add(self, name: str, amount: int = 1) -> None:
        """Increase counter ``name`` (one of :data:`COUNTERS`) by ``amount``."""
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        """A copy of the counters."""
        with self._lock:
            return dict(self._counts)


class StatusServer:
    """A small HTTP server in a daemon thread serving ``/health`` and ``/metrics``.

    Parameters
    ----------
    host, port : str, int
        Where to listen; port 0 picks a free one (see :attr:`port`).
    report : callable
        Returns the JSON-serialisable metrics dictionary.
    """

    def __init__(self, host: str, port: int, report: Callable[[], dict[str, Any]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if self.path == "/health":
                    self._reply(200, {"status": "ok"})
                elif self.path == "/metrics":
                    try:
                        body = report()
                    except Exception as exc:  # noqa: BLE001 - answer, never drop the client
                        self._reply(500, {"error": type(exc).__name__})
                        return
                    self._reply(200, body)
                else:
                    self._reply(404, {"error": "not found"})

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # request lines are noise in the node's structured log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="cadp-status", daemon=True
        )

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line: time, level, logger, event, fields.

    Extra fields come from ``logger.info("event", extra={"fields": {...}})``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: a message or traceback could quote a header value.
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send cadp-med's log records to stderr as JSON lines (for ``cadp-med serve``).

    pynetdicom's own logger is kept at WARNING: at INFO it prints peer AE titles and
    dataset summaries line by line, which is neither structured nor needed.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("cadp_med")
    root.handlers[:] = [h for h in root.handlers if isinstance(h, logging.NullHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    pnd = logging.getLogger("pynetdicom")
    pnd.handlers[:] = [handler]
    pnd.setLevel(logging.ERROR)
    pnd.propagate = False
