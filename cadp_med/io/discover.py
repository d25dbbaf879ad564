"""Find DICOM files under a folder of any layout.

Files are recognised by content, never by name: by the ``DICM`` magic after the
128-byte preamble (PS3.10 7.1), or, for files written without preamble and File
Meta Information, by a cheap parse of the first data element. A DICOMDIR is an
index that repeats patient names and IDs, so it is skipped and never copied.
Symlinks are not followed out of the input tree.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.datadict import dictionary_has_tag

from cadp_med._types import PathLike
from cadp_med.errors import ConfigError

__all__ = ["DiscoveredFile", "Discovery", "SkippedFile", "discover", "looks_like_dicom", "scan"]

# Why a file that is not processed was skipped.  These reach the audit log.
SKIP_DICOMDIR = "dicomdir-index"
SKIP_NOT_DICOM = "not-dicom"
SKIP_SYMLINK_OUTSIDE = "symlink-outside-input"
SKIP_UNREADABLE = "unreadable-file"
SKIP_SYMLINKED_FOLDER = "symlinked-folder-not-followed"

# Names that suggest DICOM: such a file is handed to the reader (and quarantined if
# it is broken) rather than silently skipped, so that damage is visible.
_DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})

_EXPLICIT_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)


@dataclass(frozen=True)
class DiscoveredFile:
    """A file that looks like a DICOM instance.

    Attributes
    ----------
    path : Path
        Absolute path of the file inside the input tree.
    size : int
        Size in bytes when discovered.
    """

    path: Path
    size: int


@dataclass(frozen=True)
class SkippedFile:
    """A file that is not processed, with the reason category (never a value)."""

    path: Path
    reason: str


@dataclass
class Discovery:
    """What :func:`scan` found: candidate instances and skipped files."""

    files: list[DiscoveredFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def _has_dicm_magic(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _looks_like_bare_dataset(head: bytes) -> bool:
    """Recognise a dataset without preamble by its first element.

    Little endian (implicit or explicit VR), or explicit VR big endian: the retired
    syntax has no implicit VR variant (PS3.5 A.3).
    """
    if len(head) < 8:
        return False
    group, element = struct.unpack(">HH", head[:4])
    if group % 2 == 0 and 0x0002 <= group <= 0x0028 and head[4:6] in _EXPLICIT_VRS:
        return True
    group, element = struct.unpack("<HH", head[:4])
    # The first element of a bare dataset is File Meta (0002) or a low, even group.
    if group % 2 or not 0x0002 <= group <= 0x0028:
        return False
    tag = (group << 16) | element
    if head[4:6] in _EXPLICIT_VRS:
        return True
    # Implicit VR: a 4-byte length follows; it must be a known tag or a group
    # length, and a length that a header element can have.
    (length,) = struct.unpack("<I", head[4:8])
    known = element == 0 or dictionary_has_tag(tag)
    return known and (length < 0x10000 or length == 0xFFFFFFFF)


def _is_dicomdir(head: bytes) -> bool:
    # Media Storage Directory Storage SOP Class UID in the File Meta of a DICOMDIR.
    return b"1.2.840.10008.1.3.10" in head[:512]


def looks_like_dicom(path: PathLike) -> bool:
    """Return True when the file's first bytes say it is a DICOM dataset.

    Parameters
    ----------
    path : str or os.PathLike
        The file to test. Only the first 512 bytes are read.
    """
    with open(path, "rb") as handle:
        head = handle.read(512)
    return _has_dicm_magic(head) or _looks_like_bare_dataset(head)


def _classify(path: Path) -> str | None:
    """Return None for a candidate instance, otherwise the skip reason."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return SKIP_UNREADABLE
    if path.name.upper() == "DICOMDIR" or (_has_dicm_magic(head) and _is_dicomdir(head)):
        return SKIP_DICOMDIR
    if _has_dicm_magic(head) or _looks_like_bare_dataset(head):
        return None
    # Empty and broken files with a DICOM-like name go to the reader, which
    # quarantines them: the operator must see them, not lose them.
    if not head or path.suffix.lower() in _DICOM_SUFFIXES:
        return None
    return SKIP_NOT_DICOM


def scan(root: PathLike) -> Discovery:
    """Scan ``root`` recursively for DICOM files.

    Parameters
    ----------
    root : str or os.PathLike
        The input folder (or a single file).

    Returns
    -------
    Discovery
        Candidate instances and skipped files, each sorted by path so that runs
        are deterministic.

    Raises
    ------
    ConfigError
        If ``root`` does not exist.
    """
    root_path = Path(root).absolute()
    if not root_path.exists():
        raise ConfigError("the input folder does not exist")
    real_root = root_path.resolve()
    result = Discovery()
    candidates: list[Path]
    if root_path.is_file():
        candidates = [root_path]
    else:
        candidates = []
        # followlinks=False: a symlinked folder is never entered, so nothing
        # outside the tree (or a loop) is read.
        for directory, dirnames, filenames in os.walk(root_path, followlinks=False):
            dirnames.sort()
            for dirname in dirnames:
                if os.path.islink(os.path.join(directory, dirname)):
                    result.skipped.append(
                        SkippedFile(Path(directory, dirname), SKIP_SYMLINKED_FOLDER)
                    )
            candidates.extend(Path(directory, name) for name in sorted(filenames))
    for path in candidates:
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(real_root) or not target.is_file():
                result.skipped.append(SkippedFile(path, SKIP_SYMLINK_OUTSIDE))
                continue
        if not path.is_file():
            result.skipped.append(SkippedFile(path, SKIP_UNREADABLE))
            continue
        reason = _classify(path)
        if reason is None:
            result.files.append(DiscoveredFile(path, path.stat().st_size))
        else:
            result.skipped.append(SkippedFile(path, reason))
    result.files.sort(key=lambda item: str(item.path))
    result.skipped.sort(key=lambda item: str(item.path))
    return result


def discover(root: PathLike) -> list[DiscoveredFile]:
    """Return the candidate DICOM instances under ``root`` (see :func:`scan`)."""
    return scan(root).files
