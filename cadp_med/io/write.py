"""Write a de-identified instance atomically under a path made of pseudonyms only.

Layout: ``OUT/<pseudo patient>/<pseudo study>/<pseudo series>/<pseudo sop>.dcm``.
Every component comes from the pseudonyms (never from a header value of the input),
is reduced to ``[A-Za-z0-9._-]`` and is checked to stay inside ``OUT``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from cadp_med._types import PathLike
from cadp_med.errors import DeidError
from cadp_med.io._atomic import atomic_write

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "PseudonymPath",
    "is_done",
    "output_path",
    "output_transfer_syntax",
    "write_instance",
]

# A fixed UUID-derived UID (PS3.5 B.2) that names cadp-med as the implementation.
IMPLEMENTATION_CLASS_UID = UID("2.25.177201880453385466870385716937497003637")
IMPLEMENTATION_VERSION_NAME = "CADP_MED_0_1"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class PseudonymPath(Protocol):
    """The pseudonyms an output path is made of (``cadp_med.deid.Pseudonyms``)."""

    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str


def _component(value: str, what: str) -> str:
    cleaned = _UNSAFE.sub("_", str(value).strip())
    if cleaned.strip(".") == "":
        raise DeidError(f"the pseudonym for the {what} cannot name a folder")
    return cleaned


def output_path(out_root: PathLike, pseudonyms: PseudonymPath) -> Path:
    """Return where the instance with these pseudonyms is written.

    Raises
    ------
    DeidError
        If a pseudonym is empty or the path would leave ``out_root``.
    """
    root = Path(out_root).absolute()
    path = (
        root
        / _component(pseudonyms.patient_id, "patient")
        / _component(pseudonyms.study_uid, "study")
        / _component(pseudonyms.series_uid, "series")
        / f"{_component(pseudonyms.sop_uid, 'instance')}.dcm"
    )
    if not path.resolve().is_relative_to(root.resolve()):
        raise DeidError("an output path would leave the output folder")
    return path


def is_done(out_path: PathLike) -> bool:
    """Return True when an output instance already exists (resume support)."""
    return Path(out_path).is_file()


def output_transfer_syntax(source: str | None, *, pixels_unchanged: bool) -> UID:
    """Choose the transfer syntax of an output file.

    Compressed pixel data copied byte for byte keep the input's syntax. Everything
    else is written as explicit VR little endian: big endian input is converted
    (the caller swaps the pixel bytes) and deflated input is written inflated.

    Parameters
    ----------
    source : str or None
        The input's Transfer Syntax UID; None for a file without File Meta.
    pixels_unchanged : bool
        True when the Pixel Data element is the input's, unchanged.
    """
    if source is None:
        return ExplicitVRLittleEndian
    uid = UID(source)
    if pixels_unchanged and uid.is_compressed and uid != DeflatedExplicitVRLittleEndian:
        return uid
    return ExplicitVRLittleEndian


def is_big_endian(transfer_syntax: str | None) -> bool:
    """Return True for the (retired) explicit VR big endian syntax."""
    return transfer_syntax == ExplicitVRBigEndian


def _file_meta(ds: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def write_instance(
    ds: Dataset,
    out_root: PathLike,
    pseudonyms: PseudonymPath,
    *,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """Write ``ds`` with new File Meta Information, atomically.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The de-identified dataset (its own ``file_meta``, if any, is ignored).
    out_root : str or os.PathLike
        The output folder.
    pseudonyms : PseudonymPath
        Pseudonyms of the instance; they alone name the output path.
    transfer_syntax : str, default explicit VR little endian
        See :func:`output_transfer_syntax`.

    Returns
    -------
    Path
        The written file.
    """
    target = output_path(out_root, pseudonyms)
    target.parent.mkdir(parents=True, exist_ok=True)
    syntax = UID(transfer_syntax)
    meta = _file_meta(ds, syntax)
    # Write a shallow copy so the caller's dataset keeps its own file_meta.
    to_write = pydicom.Dataset(ds)
    to_write.file_meta = meta
    to_write.preamble = b"\x00" * 128

    def write(stream):  # type: ignore[no-untyped-def]
        pydicom.dcmwrite(
            stream,
            to_write,
            enforce_file_format=True,
            implicit_vr=syntax.is_implicit_VR,
            little_endian=syntax.is_little_endian,
        )

    atomic_write(target, write)
    return target
