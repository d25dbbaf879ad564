"""Atomic file creation: write a temporary file next to the target, fsync, rename.

The rename is what makes the write atomic (readers see the old file or the whole new
one, a crashed process leaves only a ``.part`` file); it is always done. The fsync is
what makes it durable (after a power loss the renamed file has its bytes, so a rerun
that skips existing outputs never skips a torn one); it costs a disk flush per file,
in proportion to the bytes (about 0.35 ms for a small header, 3.7 ms for a 0.5 MB
instance on the benchmark machine, more on network storage), and is on unless the
caller opts out.

Temporary files are named ``.tmp-<host>-<pid>-<random>.part``: a sweep for leftovers
(:func:`remove_stale_parts`) then removes only the parts of processes of this host that
are gone, never a file another study or run is still writing into the same folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "part_prefix", "remove_stale_parts"]

logger = logging.getLogger(__name__)

_PART_NAME = re.compile(r"^\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-.*\.part$")


def _host_tag() -> str:
    # A hash, not the host name: output folders get shared, host names need not be.
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def part_prefix() -> str:
    """Return the prefix of this process's temporary files: ``.tmp-<host>-<pid>-``."""
    return f".tmp-{_host_tag()}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def remove_stale_parts(root: Path) -> int:
    """Delete the temporary files that dead processes of this host left under ``root``.

    A part of a live process (another study writing into the same folder), of
    another host (a shared file system) or with a name this module did not make is
    left alone: its owner may still rename it.

    Parameters
    ----------
    root : Path
        The folder to sweep, recursively.

    Returns
    -------
    int
        How many files were removed.
    """
    if not root.is_dir():
        return 0
    host, removed = _host_tag(), 0
    for part in root.rglob(".tmp-*.part"):
        match = _PART_NAME.match(part.name)
        if match is None or match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        try:
            part.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError:
            logger.warning("a stale temporary file could not be removed")
    return removed


def atomic_write(
    target: Path,
    write: Callable[[BinaryIO], None],
    *,
    mode: int = 0o644,
    durable: bool = True,
) -> None:
    """Create or replace ``target`` so that readers see the old file or the whole new one.

    Parameters
    ----------
    target : Path
        The final path. Its folder must exist.
    write : callable
        Called with the open binary temporary file.
    mode : int, default 0o644
        Permission bits of the new file.
    durable : bool, default True
        fsync the file before the rename. False keeps the write atomic but lets a power
        loss leave a renamed file without its data: only for outputs that are checked
        or recreated after a crash anyway.
    """
    handle, temp_name = tempfile.mkstemp(prefix=part_prefix(), suffix=".part", dir=target.parent)
    try:
        os.fchmod(handle, mode)  # on the open handle: no second path lookup
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
