"""Hashes that name an input file without revealing its path.

The audit log and the quarantine must let an operator match an entry to an input
file without writing the input path (which may hold a patient name) anywhere.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def path_hash(path: Path | str) -> str:
    """Return the SHA-256 hex digest of the absolute input path string.

    Parameters
    ----------
    path : Path or str
        The input file. It is made absolute (without resolving symlinks) so that
        the same file gives the same hash whichever working directory is current.

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    absolute = Path(path).absolute()
    return hashlib.sha256(str(absolute).encode("utf-8", "surrogateescape")).hexdigest()
