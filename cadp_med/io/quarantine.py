"""Keep a copy of every input that could not be processed, with the reason.

The quarantine holds original, identifiable files: it must never sit inside the
output folder, which is what gets shared. Files are copied, never moved, so the
input tree is left exactly as it was.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from cadp_med._types import PathLike
from cadp_med.errors import ConfigError
from cadp_med.io._atomic import WriteGroup, atomic_write
from cadp_med.io._hashing import path_hash

__all__ = [
    "OUTSIDE_DOMAIN_HINT",
    "OUTSIDE_DOMAIN_REASON",
    "Quarantine",
    "check_quarantine_location",
    "default_quarantine_root",
]

OUTSIDE_DOMAIN_REASON = "pixels-outside-model-domain"
OUTSIDE_DOMAIN_HINT = (
    "the image's modality/contrast, body region or plane is not among the domains the "
    "model card declares (a region the header does not name counts as outside). Train a "
    "model on such images with `cadp-med train DATA... --conditions "
    "modality,plane,slice_pos,region -o MODEL.safetensors` and anonymize with "
    "`--model MODEL.safetensors`, or pass --allow-outside-domain to privatize them with "
    "this model anyway (recorded in each output's provenance)"
)
# What to do about a reason, written into its note (fixed text: never a value).
_HINTS = {OUTSIDE_DOMAIN_REASON: OUTSIDE_DOMAIN_HINT}


def default_quarantine_root(output: PathLike) -> Path:
    """Return the default quarantine folder: the sibling ``OUT.quarantine``."""
    out = Path(output).absolute()
    return out.with_name(out.name + ".quarantine")


def check_quarantine_location(quarantine: PathLike, output: PathLike) -> None:
    """Refuse a quarantine folder inside (or equal to) the output folder.

    Raises
    ------
    ConfigError
        If ``quarantine`` resolves to ``output`` or a folder below it.
    """
    q = Path(quarantine).resolve()
    out = Path(output).resolve()
    if q == out or q.is_relative_to(out):
        raise ConfigError(
            "the quarantine folder must not be inside the output folder: it keeps "
            "identifiable originals (use --quarantine DIR outside the output)"
        )


class Quarantine:
    """A folder of copied inputs, each named by a hash of its input path.

    Parameters
    ----------
    root : str or os.PathLike
        The quarantine folder; created on the first :meth:`put`.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root).absolute()

    def put(self, path: PathLike, reason: str, *, group: WriteGroup | None = None) -> Path:
        """Copy ``path`` into the quarantine with a ``.reason.json`` beside it.

        Parameters
        ----------
        path : str or os.PathLike
            The input file; it is read, never moved or changed.
        reason : str
            The reason category (and tag path); never an element value.
        group : WriteGroup, optional
            Make both files durable at the group's commit instead of with an fsync each;
            the caller audits the input only after that commit (a run's
            :class:`~cadp_med.io._commit.GroupCommit` does).

        Returns
        -------
        Path
            The quarantined copy, ``root/<first 16 hex of sha256(path)>.dcm``.
        """
        source = Path(path)
        digest = path_hash(source)
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.root / f"{digest[:16]}.dcm"

        def copy(stream):  # type: ignore[no-untyped-def]
            with open(source, "rb") as original:
                shutil.copyfileobj(original, stream)

        # 0600: these are identifiable originals.
        atomic_write(target, copy, mode=0o600, group=group)
        note = {
            "reason": reason,
            "input_path_hash": digest,
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if reason in _HINTS:
            note["message"] = _HINTS[reason]
        payload = (json.dumps(note, sort_keys=True) + "\n").encode()
        atomic_write(
            self.root / f"{digest[:16]}.reason.json",
            lambda s: s.write(payload),
            mode=0o600,
            group=group,
        )
        return target
