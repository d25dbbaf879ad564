"""Output helpers shared by the CLI commands: Rich on a terminal, plain lines otherwise.

Nothing printed here may contain a header value; callers pass counts, tag paths,
reason categories and the operator's own paths only.
"""

from __future__ import annotations

import errno
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from cadp_med.errors import ConfigError

__all__ = [
    "configure_logging",
    "exit_usage",
    "is_tty",
    "output_errors",
    "print_json",
    "print_table",
    "progress_callback",
    "stop_on_sigterm",
    "usage_errors",
]

USAGE_EXIT_CODE = 2
OUTPUT_EXIT_CODE = 3


def is_tty() -> bool:
    """Return True when stdout is an interactive terminal."""
    return sys.stdout.isatty()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to whatever ``sys.stderr`` is at emit time."""

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # type: ignore[no-untyped-def]
        pass


def configure_logging() -> None:
    """Send cadp-med warnings to stderr (library modules only log; the CLI shows)."""
    logger = logging.getLogger("cadp_med")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def exit_usage(message: str) -> NoReturn:
    """Print a usage error to stderr and exit with status 2."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(USAGE_EXIT_CODE)


@contextmanager
def usage_errors() -> Iterator[None]:
    """Run a command body: a :class:`ConfigError` becomes exit status 2, and
    third-party warnings and log lines are silenced.

    pydicom's warnings and log messages can quote element values (``Invalid value
    for VR DA: '...'``); the terminal must show neither. Our own modules log
    without values and keep their handler.
    """
    pydicom_logger = logging.getLogger("pydicom")
    propagate = pydicom_logger.propagate
    null_handler = logging.NullHandler()
    pydicom_logger.addHandler(null_handler)
    pydicom_logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except ConfigError as exc:
        exit_usage(str(exc))
    finally:
        pydicom_logger.removeHandler(null_handler)
        pydicom_logger.propagate = propagate


@contextmanager
def stop_on_sigterm() -> Iterator[Callable[[], bool]]:
    """Yield ``stop()``, which turns True once SIGTERM arrives.

    The pipeline polls it after each file: the file in flight is finished, written
    and audited, then the run ends with status 143. Outside the main thread (no
    signal handlers there) ``stop()`` stays False.
    """
    requested = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield requested.is_set
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: requested.set())
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def output_errors() -> Iterator[None]:
    """Turn a failure to write the output (full disk, permissions) into exit status 3.

    The message names the cause (``strerror``) and no path of the input; atomic writes
    leave no partial file behind.
    """
    try:
        yield
    except OSError as exc:
        reason = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}
        message = reason.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        typer.echo(f"Error: cannot write the output: {message}", err=True)
        raise typer.Exit(OUTPUT_EXIT_CODE) from None


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """Print label/value rows: a Rich table on a terminal, ``label: value`` lines otherwise."""
    if is_tty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_header=False)
        table.add_column("item")
        table.add_column("value", justify="right")
        for label, value in rows:
            table.add_row(label, str(value))
        Console().print(table)
        return
    typer.echo(title)
    for label, value in rows:
        typer.echo(f"  {label}: {value}")


@contextmanager
def progress_callback(
    description: str, *, quiet: bool = False
) -> Iterator[Callable[[int, int], None]]:
    """Yield a ``progress(done, total)`` callback.

    A Rich progress bar on a terminal; otherwise about ten plain lines per run
    (and nothing when ``quiet``, e.g. under ``--json``).
    """
    if quiet:
        yield lambda done, total: None
        return
    if is_tty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        ) as progress:
            task = progress.add_task(description, total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            yield update
        return

    def plain(done: int, total: int) -> None:
        step = max(1, total // 10)
        if done == total or done % step == 0:
            typer.echo(f"{description}: {done}/{total}")

    yield plain
