"""Which studies a batch input names.

The rule, also in docs/SCALING.md:

* ``INPUT`` is a folder with sub-folders: each immediate, non-hidden sub-folder is
  one study (any layout inside). Loose files beside them are not part of any study
  and are counted in a warning; symlinked sub-folders are skipped, as discovery
  never follows symlinks out of a tree.
* ``INPUT`` is a folder with no sub-folder (only loose files): it is one study.
* ``--input-list FILE``: one study folder per line; blank lines and lines starting
  with ``#`` are skipped; a relative line is relative to the list file's folder.

The manifest keeps each study's input as the operator gave it, plus its absolute path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cadp_med._types import PathLike
from cadp_med.errors import ConfigError

__all__ = ["StudyInput", "read_input_list", "studies_in_folder"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyInput:
    """One study: ``given`` as the operator wrote it, ``path`` absolute."""

    given: str
    path: str


def studies_in_folder(root: PathLike) -> list[StudyInput]:
    """Return the studies of a batch input folder, sorted by name.

    Raises
    ------
    ConfigError
        If ``root`` is not a folder, or holds neither a sub-folder nor a file.
    """
    given = str(root)
    folder = Path(root).absolute()
    if not folder.is_dir():
        raise ConfigError("the batch input is not a folder")
    entries = sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    subfolders = [entry for entry in entries if entry.is_dir() and not entry.is_symlink()]
    if not subfolders:
        if not entries:
            raise ConfigError("the batch input folder is empty")
        return [StudyInput(given, str(folder))]
    loose = sum(1 for entry in entries if not entry.is_dir())
    if loose:
        logger.warning("%d loose file(s) beside the study folders are not part of any study", loose)
    skipped = sum(1 for entry in entries if entry.is_dir() and entry.is_symlink())
    if skipped:
        logger.warning("%d symlinked study folder(s) skipped", skipped)
    return [StudyInput(str(Path(given) / entry.name), str(entry)) for entry in subfolders]


def read_input_list(list_file: PathLike) -> list[StudyInput]:
    """Return the studies named in an ETL worklist file, in file order, without duplicates.

    Raises
    ------
    ConfigError
        If the file cannot be read or names no study.
    """
    list_path = Path(list_file).absolute()
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the input list: {exc.strerror}") from exc
    studies: list[StudyInput] = []
    seen: set[str] = set()
    for line in lines:
        given = line.strip()
        if not given or given.startswith("#"):
            continue
        path = Path(given).expanduser()
        absolute = str(path if path.is_absolute() else (list_path.parent / path).absolute())
        if absolute not in seen:
            seen.add(absolute)
            studies.append(StudyInput(given, absolute))
    if not studies:
        raise ConfigError("the input list names no study")
    return studies
