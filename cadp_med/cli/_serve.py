"""``cadp-med serve``: run the receive → anonymize → forward DICOM node."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer


def serve(
    config: Path = typer.Option(
        ..., "--config", "-c", help="The node's TOML configuration (see docs/NODE.md)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    """Receive studies over DICOM C-STORE, de-identify them, and forward them.

    Runs until SIGTERM or SIGINT, then stops accepting, leaves unfinished studies in the
    spool (they resume on the next start) and exits 0. Logs are JSON lines on stderr;
    with an http_status table in the config, counts are served as JSON at /metrics.
    """
    from cadp_med.errors import ConfigError
    from cadp_med.net import Node, load_config
    from cadp_med.net._status import configure_json_logging

    configure_json_logging(logging.DEBUG if verbose else logging.INFO)
    log = logging.getLogger("cadp_med.net")
    try:
        node = Node(load_config(config))
        node.start()
    except (ConfigError, OSError) as exc:
        # OSError: the port is taken or a folder cannot be created.
        log.error("node failed to start", extra={"fields": {"error": str(exc)}})
        raise typer.Exit(2) from None
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal received", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    while not stop.wait(1.0):
        pass
    node.stop()
