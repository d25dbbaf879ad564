"""Atomic file creation: write a temporary file next to the target, fsync, rename.

The rename is what makes the write atomic (readers see the old file or the whole new
one, a crashed process leaves only a ``.part`` file); it is always done. The fsync is
what makes it durable (after a power loss the renamed file has its bytes, so a rerun
that skips existing outputs never skips a torn one).

:func:`atomic_write` alone fsyncs each file before its rename: a disk flush per file.
With a :class:`WriteGroup` the temporary files of many writes are made durable
together at :meth:`WriteGroup.commit` (one ``fsync`` pass or one ``syncfs``) and only
then renamed into place, and the folders that got new entries are fsynced: a target
name never exists before its bytes are on disk, whichever way the process or the
machine stops. ``benchmarks/bench_durability.py`` measures what each mode costs.

Temporary files are named ``.tmp-<host>-<pid>-<random>.part``: a sweep for leftovers
(:func:`remove_stale_parts`) then removes only the parts of processes of this host that
are gone, never a file another study or run is still writing into the same folder.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = [
    "DURABILITY_MODES",
    "Durability",
    "WriteGroup",
    "atomic_write",
    "fsync_dir",
    "part_prefix",
    "remove_part",
    "remove_stale_parts",
    "syncfs",
    "write_part",
]

Durability = Literal["group", "syncfs", "file", "none"]
#: ``group``: fsync the group's files at commit, then rename; ``syncfs``: one syncfs of
#: the output file system instead; ``file``: fsync each file before its own rename
#: (no grouping); ``none``: atomic but not durable (a power loss can leave a renamed
#: file without its bytes; for scratch outputs and benchmarks only).
DURABILITY_MODES: tuple[str, ...] = ("group", "syncfs", "file", "none")

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


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so that the entries created or renamed in it are durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LIBC: ctypes.CDLL | None = None


def syncfs(folder: Path) -> None:
    """Flush the whole file system that holds ``folder`` (Linux ``syncfs``).

    Falls back to ``os.sync`` (every file system) where ``syncfs`` is missing.
    """
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    function = getattr(_LIBC, "syncfs", None)
    if function is None:
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if function(fd) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    finally:
        os.close(fd)


class WriteGroup:
    """Atomic writes under one folder that are made durable together.

    :func:`atomic_write` with ``group=`` leaves its temporary file in place;
    :meth:`commit` makes every such file durable (``mode``), renames them to their
    targets and fsyncs the folders that got new entries. Until then a target name does
    not exist, so a crash leaves either nothing or a complete file under it (plus a
    ``.part`` that :func:`remove_stale_parts` sweeps), and whatever a caller records
    after :meth:`commit` returns (an audit line) is about files that are on disk.

    Parameters
    ----------
    root : Path
        The top folder of the targets; it and the folders below it that a commit
        creates are fsynced once.
    mode : {"group", "syncfs", "file", "none"}
        How the files are made durable: see :data:`DURABILITY_MODES`. ``file`` and
        ``none`` rename at write time (``file`` after a per-file fsync); ``file`` still
        fsyncs new folder entries at commit.
    """

    def __init__(self, root: Path, mode: Durability = "group") -> None:
        if mode not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_MODES)}")
        self.root = Path(root).absolute()
        self.mode = mode
        self.bytes = 0
        self._parts: dict[Path, str] = {}  # target -> temporary file, in write order
        self._dirty: set[Path] = set()  # folders with entries not yet fsynced
        self._synced: set[Path] = set()  # folders known durable (entries and all)

    def __len__(self) -> int:
        return len(self._parts)

    def __contains__(self, target: object) -> bool:
        return target in self._parts

    def _add(self, target: Path, temp_name: str, size: int) -> None:
        self._parts[target] = temp_name
        self.bytes += size
        self._mark(target.parent)

    def _mark(self, folder: Path) -> None:
        """Note that ``folder`` got an entry (and its parents, if they are new)."""
        while folder not in self._synced and folder not in self._dirty:
            self._dirty.add(folder)
            if folder == self.root or folder.parent == folder:
                # The root's own entry in its parent: once, so a new output folder
                # survives too.
                if folder == self.root and folder.parent not in self._synced:
                    self._dirty.add(folder.parent)
                break
            folder = folder.parent

    def adopt(self, target: Path, temp_name: str, size: int) -> None:
        """Take over a temporary file that :func:`write_part` (maybe in another
        process) wrote for ``target``, as if :func:`atomic_write` had written it here."""
        if self.mode in ("group", "syncfs"):
            self._add(target, temp_name, size)
            return
        _place(temp_name, target, durable=self.mode == "file")
        self._mark(target.parent)

    def commit(self) -> None:
        """Make the written files durable, rename them into place, fsync their folders.

        Raises
        ------
        OSError
            When a file cannot be made durable or renamed; the group's remaining
            temporary files are removed (their targets were never created) and the
            caller must not record them.
        """
        try:
            if self._parts:
                if self.mode == "group":
                    _fsync_paths(list(self._parts.values()))
                elif self.mode == "syncfs":
                    syncfs(self.root)
                for target, temp_name in list(self._parts.items()):
                    os.replace(temp_name, target)
                    del self._parts[target]
            if self._dirty and self.mode != "none":
                if self.mode == "syncfs":
                    syncfs(self.root)  # the renames and new folders, in one go
                else:
                    # In any order: all are done before the caller records anything.
                    _fsync_paths([str(folder) for folder in self._dirty])
            self._synced |= self._dirty
            self._dirty.clear()
            self.bytes = 0
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the temporary files not yet renamed; their targets stay absent."""
        for temp_name in self._parts.values():
            remove_part(temp_name)
        self._parts.clear()
        self.bytes = 0


def _fsync_one(name: str) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some file systems (certain FUSE and network ones) refuse fsync on a folder;
        # their entries are then as durable as they can be made.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP) or not os.path.isdir(name):
            raise
    finally:
        os.close(fd)


_FSYNC_THREADS = 16


def _fsync_paths(names: list[str]) -> None:
    """fsync files (or folders) by name, many at once.

    Concurrent fsyncs share the file system's journal commits and the disk's cache
    flushes (ext4/jbd2 and XFS batch them), so a group costs about one flush instead
    of one per file: 0.2 against 5 ms per small file on the benchmark machine
    (``benchmarks/bench_durability.py``). ``os.fsync`` releases the GIL.
    """
    if len(names) == 1:
        _fsync_one(names[0])
        return
    # Threads for this call only: none is left running when a worker pool forks the
    # process (a forked child of a process with live pool threads can hang at exit).
    with ThreadPoolExecutor(min(_FSYNC_THREADS, len(names))) as pool:
        for _ in pool.map(_fsync_one, names):
            pass  # map re-raises the first error


def write_part(
    target: Path, write: Callable[[BinaryIO], None], *, mode: int = 0o644
) -> tuple[str, int]:
    """Write the temporary file of ``target`` (next to it) and leave it there.

    Returns its name and size, for :meth:`WriteGroup.adopt`: a worker process writes
    the bytes, the process that owns the group makes them durable and renames them.
    """
    handle, temp_name = tempfile.mkstemp(prefix=part_prefix(), suffix=".part", dir=target.parent)
    try:
        os.fchmod(handle, mode)  # on the open handle: no second path lookup
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            size = stream.tell()
    except BaseException:
        remove_part(temp_name)
        raise
    return temp_name, size


def _place(temp_name: str, target: Path, *, durable: bool) -> None:
    """Rename a temporary file to its target, after an fsync if ``durable``."""
    try:
        if durable:
            _fsync_one(temp_name)
        os.replace(temp_name, target)
    except BaseException:
        remove_part(temp_name)
        raise


def remove_part(name: str) -> None:
    """Remove a temporary file that will not be renamed (gone already is fine)."""
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def atomic_write(
    target: Path,
    write: Callable[[BinaryIO], None],
    *,
    mode: int = 0o644,
    durable: bool = True,
    group: WriteGroup | None = None,
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
        or recreated after a crash anyway. Ignored with ``group``.
    group : WriteGroup, optional
        Leave the temporary file for ``group.commit()`` to make durable and rename
        (modes ``group`` and ``syncfs``); modes ``file`` and ``none`` rename now,
        after an fsync for ``file``, and the commit fsyncs the folder.
    """
    temp_name, size = write_part(target, write, mode=mode)
    if group is not None:
        group.adopt(target, temp_name, size)
    else:
        _place(temp_name, target, durable=durable)
