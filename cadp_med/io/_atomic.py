"""Atomic file creation: write a temporary file next to the target, fsync, rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(target: Path, write: Callable[[BinaryIO], None], *, mode: int = 0o644) -> None:
    """Create or replace ``target`` so that readers see the old file or the whole new one.

    Parameters
    ----------
    target : Path
        The final path. Its folder must exist.
    write : callable
        Called with the open binary temporary file.
    mode : int, default 0o644
        Permission bits of the new file.
    """
    handle, temp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
