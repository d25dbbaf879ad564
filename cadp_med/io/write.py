"""Write a de-identified instance atomically under a path made of pseudonyms only.

Layout: ``OUT/<pseudo patient>/<pseudo study>/<pseudo series>/<pseudo sop>.dcm``.
Every component comes from the pseudonyms (never from a header value of the input),
is reduced to ``[A-Za-z0-9._-]`` and is checked to stay inside ``OUT``.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

import pydicom
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import tag_in_exception
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from cadp_med._types import PathLike
from cadp_med.errors import DeidError
from cadp_med.io._atomic import WriteGroup, atomic_write, write_part
from cadp_med.io._pixel_source import StreamedPixelData

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "PseudonymPath",
    "is_done",
    "output_path",
    "output_transfer_syntax",
    "part10_header",
    "write_instance",
    "write_instance_part",
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
    # One string join: four Path divisions cost more than the rest of the path logic.
    path = Path(
        os.path.join(
            root,
            _component(pseudonyms.patient_id, "patient"),
            _component(pseudonyms.study_uid, "study"),
            _component(pseudonyms.series_uid, "series"),
            f"{_component(pseudonyms.sop_uid, 'instance')}.dcm",
        )
    )
    if not _folder_inside(path.parent, root):
        raise DeidError("an output path would leave the output folder")
    return path


@functools.lru_cache(maxsize=1024)
def _folder_inside(folder: Path, root: Path) -> bool:
    """True when ``folder``, links resolved, lies inside ``root``.

    The components are reduced to ``[A-Za-z0-9._-]`` and never all dots, so only a
    symbolic link could lead out; the file name itself cannot (an atomic rename replaces
    a link, it does not follow it). Cached per series folder: ``resolve`` walks every
    component with ``lstat`` and cost more than the rest of the path logic.
    """
    return folder.resolve().is_relative_to(root.resolve())


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


_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
# Binary number VRs with a 16-bit length field, as struct codes.
_NUMBER_FORMAT = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
# String VRs whose ``str`` values pydicom writes as the text plus one pad byte to an even
# length (write_string, write_text, write_UI; write_DA/DT/TM for str values), and that pad
# byte (PS3.5 6.2). PN (its own writer) and DS/IS (number objects) are not among them.
_TEXT_PADDING = {
    "AE": b" ",
    "AS": b" ",
    "CS": b" ",
    "DA": b" ",
    "DT": b" ",
    "LO": b" ",
    "LT": b" ",
    "SH": b" ",
    "ST": b" ",
    "TM": b" ",
    "UC": b" ",
    "UI": b"\x00",
    "UR": b" ",
    "UT": b" ",
}
_PREAMBLE = b"\x00" * 128 + b"DICM"


def _meta_element(tag: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element of the File Meta group (PS3.10 7.1)."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr
    if vr == b"OB":
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _uid_bytes(uid: object) -> bytes:
    value = str(uid).encode("ascii")
    return value + b"\x00" if len(value) % 2 else value  # UIs are padded with NUL


def part10_header(
    sop_class_uid: object, sop_instance_uid: object, transfer_syntax: object
) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group of a Part 10 file, encoded.

    What pydicom writes for these values (and cadp-med's implementation UID and version
    name), encoded here because ``dcmwrite`` deep-copies, re-validates and re-encodes the
    same six elements for every file, which cost more than de-identifying a small
    header. ``tests/io/test_write.py`` checks the bytes against pydicom's own writer.
    """
    version = IMPLEMENTATION_VERSION_NAME.encode("ascii")
    body = b"".join(
        (
            _meta_element(0x00020001, b"OB", b"\x00\x01"),
            _meta_element(0x00020002, b"UI", _uid_bytes(sop_class_uid)),
            _meta_element(0x00020003, b"UI", _uid_bytes(sop_instance_uid)),
            _meta_element(0x00020010, b"UI", _uid_bytes(transfer_syntax)),
            _meta_element(0x00020012, b"UI", _uid_bytes(IMPLEMENTATION_CLASS_UID)),
            _meta_element(0x00020013, b"SH", version + b" " if len(version) % 2 else version),
        )
    )
    group_length = _meta_element(0x00020000, b"UL", struct.pack("<I", len(body)))
    return _PREAMBLE + group_length + body


def _needs_dcmwrite(ds: Dataset, syntax: UID) -> bool:
    """Cases the direct writer leaves to ``dcmwrite`` (its checks and deflation)."""
    return (
        syntax == DeflatedExplicitVRLittleEndian
        or syntax.is_private
        or not syntax.is_transfer_syntax
        or any(tag >> 16 in (0, 2) for tag in ds._dict)  # noqa: SLF001 - dcmwrite refuses these
    )


def _set_pixel_data_length_mode(ds: Dataset, syntax: UID) -> None:
    """Encapsulated Pixel Data has undefined length, native a defined one (PS3.5 A.4).

    What ``dcmwrite`` does, without decoding a raw Pixel Data element that is right already.
    """
    elem = ds._dict.get(_PIXEL_DATA)  # noqa: SLF001 - look without converting
    if elem is None:
        return
    undefined = elem.length == 0xFFFFFFFF if elem.is_raw else elem.is_undefined_length
    if undefined != syntax.is_compressed:
        ds[_PIXEL_DATA].is_undefined_length = syntax.is_compressed


def _write_dataset(fp: DicomBytesIO, ds: Dataset, parent_charset: object = "iso8859") -> None:
    """``pydicom.filewriter.write_dataset`` with shortcuts for kept raw elements.

    When ``ds`` is written in the encoding and character set it was read with, pydicom
    writes a raw (undecoded) element's value bytes unchanged anyway, but through a
    per-element buffer and checks that cost more than the rest of the write. Here such an
    element (explicit VR, defined length, the length field wide enough) is written as
    header + value directly: the same bytes. Sequences are written here too, so their
    items get the same shortcut. Everything else, and every dataset in any other case,
    goes through pydicom. ``tests/io/test_write.py`` checks the bytes against dcmwrite.
    """
    same_encoding = (
        fp.is_implicit_VR is False
        and ds.original_encoding == (False, fp.is_little_endian)
        # pydicom's own test for "no re-encoding needed" (filewriter.write_dataset)
        and ds.original_character_set == ds._character_set  # noqa: SLF001
    ) or (
        # Built here (the de-identification marks): nothing raw to re-encode and no
        # ambiguous VR to resolve, which is all pydicom's other path would do first.
        fp.is_implicit_VR is False
        and all(
            not elem.is_raw and elem.VR is not None and len(elem.VR) == 2
            for elem in ds._dict.values()  # noqa: SLF001
        )
    )
    if not same_encoding:
        write_dataset(fp, ds, parent_encoding=parent_charset)  # type: ignore[arg-type]
        return
    charset = ds.get("SpecificCharacterSet", parent_charset)  # as write_dataset does
    order = "<" if fp.is_little_endian else ">"
    short_head = struct.Struct(order + "HH2sH")
    long_head = struct.Struct(order + "HH2sHI")
    elements = ds._dict  # noqa: SLF001 - raw access is the point
    for tag in sorted(elements):
        group, number = tag >> 16, tag & 0xFFFF
        if number == 0 and group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2), as pydicom does
        elem = elements[tag]
        value = elem.value
        if elem.is_raw:
            if isinstance(value, bytes) and elem.length != 0xFFFFFFFF:
                vr = elem.VR
                if vr in EXPLICIT_VR_LENGTH_16 and len(value) <= 0xFFFF:
                    fp.write(short_head.pack(group, number, vr.encode(), len(value)))
                    fp.write(value)
                    continue
                if vr in EXPLICIT_VR_LENGTH_32 and vr != "SQ":
                    fp.write(long_head.pack(group, number, vr.encode(), 0, len(value)))
                    fp.write(value)
                    continue
        elif elem.VR in _TEXT_PADDING:
            encoded = _ascii_text_bytes(value, _TEXT_PADDING[elem.VR])
            if encoded is not None and len(encoded) <= 0xFFFF:
                vr = elem.VR
                if vr in EXPLICIT_VR_LENGTH_16:
                    fp.write(short_head.pack(group, number, vr.encode(), len(encoded)))
                else:
                    fp.write(long_head.pack(group, number, vr.encode(), 0, len(encoded)))
                fp.write(encoded)
                continue
        elif elem.VR in _NUMBER_FORMAT:
            encoded = _number_bytes(value, order + _NUMBER_FORMAT[elem.VR])
            if encoded is not None and len(encoded) <= 0xFFFF:
                fp.write(short_head.pack(group, number, elem.VR.encode(), len(encoded)))
                fp.write(encoded)
                continue
        elif elem.VR == "SQ" and isinstance(value, DicomSequence):
            body = _sequence_bytes(fp, value, convert_encodings(charset))
            undefined = elem.is_undefined_length
            fp.write(
                long_head.pack(group, number, b"SQ", 0, _UNDEFINED if undefined else len(body))
            )
            fp.write(body)
            if undefined:
                fp.write(struct.pack(order + "HHI", 0xFFFE, 0xE0DD, 0))  # sequence delimiter
            continue
        with tag_in_exception(tag):
            write_data_element(fp, ds.get_item(tag), charset)


def _ascii_text_bytes(value: object, padding: bytes) -> bytes | None:
    """A string element's value as pydicom's write_string/write_text encode it, or None.

    Only for plain ASCII ``str`` values (or lists of them): ASCII encodes to the same bytes
    in every character set DICOM allows (PS3.5 6.1), so no charset logic is needed. The
    new elements of a de-identified header (pseudonym UIDs, dummies, the method marks)
    are such values; anything else (PersonName, numbers, dates as objects, non-ASCII
    text) returns None and is left to pydicom.
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, MultiValue | list) and all(isinstance(v, str) for v in value):
        text = "\\".join(value)
    elif value is None:
        return b""
    else:
        return None
    if not text.isascii():
        return None
    encoded = text.encode("ascii")
    return encoded + padding if len(encoded) % 2 else encoded


def _number_bytes(value: object, code: str) -> bytes | None:
    """A binary number element's value as pydicom's write_numbers packs it, or None.

    Only ``int``/``float`` values and lists of them (what a read header's US, UL, FD...
    convert to); anything else is left to pydicom.
    """
    if type(value) in (int, float):
        values: list[object] = [value]
    elif isinstance(value, MultiValue | list) and all(type(v) in (int, float) for v in value):
        values = list(value)
    else:
        return None
    try:
        return struct.pack(code[0] + code[1] * len(values), *values)
    except struct.error:
        return None  # out of range for the VR: pydicom says so


def _sequence_bytes(fp: DicomBytesIO, items: DicomSequence, charset: list[str]) -> bytes:
    """The items of a sequence, encoded as pydicom's write_sequence_item encodes them."""
    order = "<" if fp.is_little_endian else ">"
    item_head = struct.Struct(order + "HHI")
    out = DicomBytesIO()
    for item in items:
        buffer = DicomBytesIO()
        buffer.is_implicit_VR, buffer.is_little_endian = fp.is_implicit_VR, fp.is_little_endian
        _write_dataset(buffer, item, charset)
        encoded = buffer.getvalue()
        if getattr(item, "is_undefined_length_sequence_item", False):
            out.write(item_head.pack(0xFFFE, 0xE000, _UNDEFINED))
            out.write(encoded)
            out.write(item_head.pack(0xFFFE, 0xE00D, 0))  # item delimiter
        else:
            out.write(item_head.pack(0xFFFE, 0xE000, len(encoded)))
            out.write(encoded)
    return out.getvalue()


def _write_part10(stream: BinaryIO, ds: Dataset, syntax: UID) -> None:
    """Preamble, File Meta Information and the dataset in ``syntax``: a Part 10 file.

    Encoded in memory and handed to ``stream`` in one write: pydicom's many small
    writes to a file object cost more than one copy of the bytes.
    """
    header = part10_header(ds.SOPClassUID, ds.SOPInstanceUID, syntax)  # raises before writing
    _set_pixel_data_length_mode(ds, syntax)
    fp = DicomBytesIO()
    fp.is_implicit_VR = syntax.is_implicit_VR
    fp.is_little_endian = syntax.is_little_endian
    fp.write(header)
    pixels = ds._dict.get(_PIXEL_DATA)  # noqa: SLF001 - look without converting
    if pixels is not None and not pixels.is_raw and isinstance(pixels.value, StreamedPixelData):
        _write_streamed(stream, fp, ds, pixels)
        return
    _write_dataset(fp, ds)
    stream.write(fp.getvalue())


def _part(ds: Dataset, tags: list[int]) -> Dataset:
    """The top-level elements ``tags`` of ``ds``, with its encoding (shared elements)."""
    part = Dataset()
    part._dict = {tag: ds._dict[tag] for tag in tags}  # noqa: SLF001
    implicit, little = ds.original_encoding
    part.set_original_encoding(implicit, little, ds.original_character_set)
    return part


def _write_streamed(stream: BinaryIO, fp: DicomBytesIO, ds: Dataset, pixels: object) -> None:
    """:func:`_write_part10` for Pixel Data left in the input file (or blanked).

    The elements before Pixel Data are encoded in memory as usual, the pixel value is
    copied in chunks (explicit VR little endian, which is all the pipeline writes), and
    the few elements after it, if any, follow. Memory holds the header only.
    """
    elements = sorted(ds._dict)  # noqa: SLF001
    _write_dataset(fp, _part(ds, [tag for tag in elements if tag < _PIXEL_DATA]))
    value: StreamedPixelData = pixels.value  # type: ignore[attr-defined]
    undefined = bool(pixels.is_undefined_length)  # type: ignore[attr-defined]
    length = len(value)
    head = struct.pack("<HH2sHI", 0x7FE0, 0x0010, pixels.VR.encode(), 0,  # type: ignore[attr-defined]
                       _UNDEFINED if undefined else length + length % 2)  # fmt: skip
    fp.write(head)
    stream.write(fp.getvalue())
    value.copy_to(stream)
    if undefined:
        stream.write(struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))  # sequence delimiter
    elif length % 2:
        stream.write(b"\x00")  # values have even length (PS3.5 7.1.1)
    after = [tag for tag in elements if tag > _PIXEL_DATA]
    if after:
        tail = DicomBytesIO()
        tail.is_implicit_VR, tail.is_little_endian = False, True
        _write_dataset(tail, _part(ds, after), ds.get("SpecificCharacterSet", "iso8859"))
        stream.write(tail.getvalue())


def _materialize_pixels(ds: Dataset) -> None:
    """Give ``ds`` (a shallow copy) the bytes of streamed Pixel Data, for pydicom's writer."""
    pixels = ds._dict.get(_PIXEL_DATA)  # noqa: SLF001
    if pixels is None or pixels.is_raw or not isinstance(pixels.value, StreamedPixelData):
        return
    ds._dict = dict(ds._dict)  # noqa: SLF001 - the caller's dataset keeps its element
    element = copy.copy(pixels)
    element._value = pixels.value.tobytes()  # noqa: SLF001
    ds._dict[_PIXEL_DATA] = element  # noqa: SLF001


def write_instance(
    ds: Dataset,
    out_root: PathLike,
    pseudonyms: PseudonymPath,
    *,
    transfer_syntax: str = ExplicitVRLittleEndian,
    durable: bool = True,
    group: WriteGroup | None = None,
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
    durable : bool, default True
        fsync the file before it is renamed into place (see
        :func:`cadp_med.io._atomic.atomic_write`). The write is atomic either way.
    group : cadp_med.io._atomic.WriteGroup, optional
        Make the file durable, and (by default) create it under its final name, only
        at ``group.commit()``: one flush for many files. ``durable`` is then ignored.

    Returns
    -------
    Path
        The written file.
    """
    target = output_path(out_root, pseudonyms)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, _writer(ds, transfer_syntax), durable=durable, group=group)
    return target


def write_instance_part(
    ds: Dataset, out_root: PathLike, pseudonyms: PseudonymPath, *, transfer_syntax: str
) -> tuple[Path, str, int]:
    """Write ``ds`` as :func:`write_instance` does, but only to a temporary file.

    Returns the target, the temporary file's name and its size, for
    :meth:`cadp_med.io._atomic.WriteGroup.adopt` in the process that commits the run's
    outputs: a worker process encodes and writes, and no dataset crosses processes.
    """
    target = output_path(out_root, pseudonyms)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp_name, size = write_part(target, _writer(ds, transfer_syntax))
    return target, temp_name, size


def _writer(ds: Dataset, transfer_syntax: str) -> Callable[[BinaryIO], None]:
    """The function that writes ``ds`` as a Part 10 file in ``transfer_syntax``."""
    syntax = UID(transfer_syntax)
    # A shallow copy (pydicom shares the element dict) so the caller's dataset keeps its
    # own file_meta and encoding flags.
    to_write = pydicom.Dataset(ds)
    # Dataset(ds) forgets the encoding ``ds`` was read (or built) with. Carry it over:
    # when it equals the output's, pydicom writes undecoded (raw) elements byte for byte
    # instead of decoding and re-encoding every one of them.
    implicit, little = ds.original_encoding
    to_write.set_original_encoding(implicit, little, ds.original_character_set)

    if _needs_dcmwrite(to_write, syntax) or syntax.is_implicit_VR or not syntax.is_little_endian:
        # Streamed Pixel Data is written explicit VR little endian only.
        _materialize_pixels(to_write)
    if _needs_dcmwrite(to_write, syntax):
        to_write.file_meta = _file_meta(ds, syntax)
        to_write.preamble = b"\x00" * 128

        def write(stream: BinaryIO) -> None:
            pydicom.dcmwrite(
                stream,
                to_write,
                enforce_file_format=True,
                implicit_vr=syntax.is_implicit_VR,
                little_endian=syntax.is_little_endian,
            )
    else:

        def write(stream: BinaryIO) -> None:
            _write_part10(stream, to_write, syntax)

    return write
