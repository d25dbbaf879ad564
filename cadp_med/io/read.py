"""Read one DICOM instance, or say in one category why it must be quarantined.

Every problem becomes an :class:`UnreadableInstance` (an ``InputError``) whose
message is a reason category plus, where useful, a tag path or VR. pydicom's own
messages are never passed on: they can quote element values.

Decisions
---------
* An unknown or unsupported Specific Character Set (0008,0005) is quarantined,
  as are text values that cannot be decoded with the declared one. pydicom would
  fall back to its default encoding with a warning; a name read with the wrong
  character set could escape the checks that look for it, so strict it is.
* Sizes a header claims are checked against :class:`~cadp_med.io.limits.ResourceLimits`
  before anything of that size is allocated: declared image size, frames, inflated
  size of a deflated dataset, sequence depth, element length (a length past the end
  of the file is truncation). Over a limit: ``over-resource-limit`` plus the tag path.
* Pixel data are checked from their bytes, without decoding
  (:mod:`cadp_med.io._pixel_source`): native data shorter than Rows x Columns x
  Samples x Frames x Bits says is quarantined (``pixel-data-length-mismatch``), as is
  encapsulated data whose items are broken (Basic Offset Table, fragment items inside
  the data, the sequence delimiter, at least one fragment per frame, the Extended
  Offset Table). Longer native data (trailing padding) is accepted; the pipeline
  drops the trailing bytes so that nothing beyond the image is copied.
* Decoding is a further, opt-in check (``decode_pixels``, what privatization needs).
  Compressed pixel data are decoded in a worker process (:mod:`cadp_med.io._isolation`):
  a decoder that crashes or hangs costs that file only.
* A file without File Meta (no Transfer Syntax UID) gets the transfer syntax it was
  parsed in: implicit VR little endian, explicit VR little or big endian.
* ``defer_pixel_data`` leaves large Pixel Data in the file: the element's value is a
  :class:`~cadp_med.io._pixel_source.FilePixelData` that the writer copies in chunks.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path
from typing import Literal

import pydicom
from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.pixels.utils import get_image_pixel_ids
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.values import converters

from cadp_med._types import PathLike
from cadp_med.errors import InputError
from cadp_med.io._pixel_source import EncapsulationError, FilePixelData, check_encapsulated
from cadp_med.io.limits import DEFAULT_LIMITS, ResourceLimits

__all__ = [
    "UnreadableInstance",
    "expected_native_pixel_bytes",
    "is_image_storage",
    "read_instance",
    "reason_category",
]

# Reason categories, as written to the quarantine and the audit log.
EMPTY = "empty-file"
UNPARSEABLE = "unparseable"
TRUNCATED = "truncated"
UNKNOWN_VR = "unknown-vr"
MISSING_UID = "missing-required-uid"
MISSING_PIXELS = "missing-pixel-data"
MISSING_GEOMETRY = "missing-image-geometry"
CHARSET = "undecodable-character-set"
PIXEL_LENGTH = "pixel-data-length-mismatch"
PIXEL_DECODE = "pixel-data-not-decodable"
UNEXPECTED = "unexpected-error"
OVER_LIMIT = "over-resource-limit"
UNSUPPORTED_SYNTAX = "unsupported-transfer-syntax"

DecodeIsolation = Literal["process", "inline"]
# Reads up to this size go straight through; larger ones are capped at the bytes left.
_SMALL_READ = 1 << 16

_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_DATA = 0x7FE00010
# Pixel Data above this size stays in the file when deferring (smaller is read: one
# read is cheaper than reopening the file to copy it).
_DEFER_BYTES = 1 << 20
_CHARSET_TAG = 0x00080005
# Character sets in which every byte string decodes (pydicom's names for Latin-1).
_LATIN = frozenset({"iso8859", "latin_1"})
# Text VRs decoded with the Specific Character Set (PS3.5 6.1.2.3).
_CHARSET_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})
_KNOWN_VRS = frozenset(str(vr) for vr in converters)
_FIXED_VALUE_SIZE = {
    "US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "UV": 8, "SV": 8,
}  # fmt: skip
# The first read of a file: preamble and File Meta, almost always.
_HEAD_BYTES = 4096
_DEFLATE_UID = DeflatedExplicitVRLittleEndian.encode()
_LONG_META_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN",
                            b"UR", b"UT", b"SV", b"UV"})  # fmt: skip
# The transfer syntax a dataset was parsed in, by (implicit VR, little endian).
_PARSED_SYNTAX = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


class UnreadableInstance(InputError):
    """An input file that must be quarantined.

    Parameters
    ----------
    category : str
        One of the reason categories of this module, e.g. ``"truncated"``.
    detail : str, optional
        A tag path, VR or transfer syntax name; never an element value.
    """

    def __init__(self, category: str, detail: str = "") -> None:
        self.category = category
        self.detail = detail
        super().__init__(f"{category}: {detail}" if detail else category)


def reason_category(exc: BaseException) -> str:
    """Return the reason category of an exception raised while processing a file."""
    if isinstance(exc, UnreadableInstance):
        return exc.category
    if isinstance(exc, InputError):
        return "input-error"
    return UNEXPECTED


def is_image_storage(sop_class_uid: str) -> bool:
    """Return True for a storage SOP class that must carry pixel data.

    Parameters
    ----------
    sop_class_uid : str
        The SOP Class UID (0008,0016).
    """
    name = UID(sop_class_uid).name
    return name.endswith("Image Storage") or "Image Storage -" in name


def _tag_path(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def expected_native_pixel_bytes(ds: Dataset) -> int:
    """Return the byte length native (uncompressed) Pixel Data must have.

    Raises
    ------
    UnreadableInstance
        If an attribute that defines the image geometry is missing.
    """
    try:
        rows = int(ds.Rows)
        columns = int(ds.Columns)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        raise UnreadableInstance(MISSING_GEOMETRY, "(0028,0010)/(0028,0011)/(0028,0100)") from None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    total_bits = rows * columns * samples * frames * bits
    return (total_bits + 7) // 8


class _CappedReader(io.BufferedReader):
    """A file whose ``read(n)`` never asks for more than the file holds.

    pydicom reads an element's value with ``read(length)``; CPython allocates
    ``length`` bytes before reading, so a forged 4 GB length in a 1 kB file would
    allocate 4 GB. Capping large reads at the remaining size bounds memory by the
    file size; the short read then reads as truncation.
    """

    def __init__(self, raw: io.FileIO, size: int) -> None:
        super().__init__(raw)
        self._size = size

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > _SMALL_READ:
            size = max(0, min(size, self._size - self.tell()))
        return super().read(size)


def _check_inflated_size(file_path: Path, limits: ResourceLimits) -> int | None:
    """Inflate a deflated dataset in bounded chunks, counting, before pydicom inflates it.

    pydicom inflates in one call with no bound: a deflate bomb (a few MB that
    inflate to many GB) would exhaust memory there. Returns the inflated size, or
    None for a dataset that is not deflated.
    """
    with open(file_path, "rb") as stream, warnings.catch_warnings():
        if _surely_not_deflated(stream.read(_HEAD_BYTES)):
            return None
        stream.seek(0)
        warnings.simplefilter("ignore")  # pydicom's warnings can quote values
        try:
            read_preamble(stream, True)
            syntax = _read_file_meta_info(stream).get("TransferSyntaxUID")
        except Exception:
            return None  # unreadable meta: the full read decides (and quarantines)
        if syntax != DeflatedExplicitVRLittleEndian:
            return None
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while chunk := stream.read(1 << 20):
            try:
                total += len(inflater.decompress(chunk, limits.max_inflated_bytes + 1 - total))
                while inflater.unconsumed_tail and total <= limits.max_inflated_bytes:
                    tail = inflater.unconsumed_tail
                    total += len(inflater.decompress(tail, limits.max_inflated_bytes + 1 - total))
            except zlib.error:
                raise UnreadableInstance(UNPARSEABLE, "deflate") from None
            if total > limits.max_inflated_bytes:
                raise UnreadableInstance(OVER_LIMIT, "inflated dataset size")
    return total


def _surely_not_deflated(head: bytes) -> bool:
    """True when the File Meta, whole in ``head``, names a syntax other than deflate.

    The common case, answered by walking the meta's elements in one small read instead
    of pydicom's meta parser. A file that does not start the usual way (preamble,
    ``DICM``, explicit VR group 2), or whose group 2 does not end inside ``head``, is
    left to the parser. The group length's value is not trusted: pydicom does not
    trust it either.
    """
    if head[128:132] != b"DICM":
        return False
    offset, syntax = 132, None
    while offset + 8 <= len(head):
        group, number = struct.unpack_from("<HH", head, offset)
        if group != 2:
            return syntax is not None and syntax != _DEFLATE_UID
        vr = head[offset + 4 : offset + 6]
        if vr in _LONG_META_VRS:
            if offset + 12 > len(head):
                return False
            length = struct.unpack_from("<I", head, offset + 8)[0]
            offset += 12
        else:
            length = struct.unpack_from("<H", head, offset + 6)[0]
            offset += 8
        if number == 0x0010:
            syntax = head[offset : offset + length].rstrip(b"\x00 ")
        offset += length
    return False


def _check_element_length(length: int, tag: int, data_size: int, limits: ResourceLimits) -> None:
    if length == 0xFFFFFFFF:
        return  # undefined length: the items are checked one by one
    if length > data_size:
        raise UnreadableInstance(TRUNCATED, _tag_path(tag))
    if length > limits.max_element_bytes:
        raise UnreadableInstance(OVER_LIMIT, f"{_tag_path(tag)} length")


def _is_deferred(raw: object) -> bool:
    """A raw element whose value pydicom left in the file (``defer_size``)."""
    return isinstance(raw, RawDataElement) and raw.value is None and raw.length != 0


def _walk(
    ds: Dataset,
    depth: int,
    data_size: int,
    limits: ResourceLimits,
    text_can_fail: bool | None = None,
) -> None:
    """Check every element, level by level: lengths and nesting first, then its value.

    A value is converted (pydicom's full parse) only where a problem can hide in it: the
    whole dataset when it is implicit VR or big endian (the writer re-encodes it anyway),
    sequences (their items are walked), and text when the character set can fail to
    decode. An explicit VR little endian element of any other kind is checked from its
    header: a known VR, and a length that fits its fixed-size values. Such an element is
    either removed or kept byte for byte (never decoded) downstream, so converting it
    here found nothing that could reach an output and cost ~40 % of a header-only run.
    """
    if depth > limits.max_sequence_depth:
        raise UnreadableInstance(OVER_LIMIT, "sequence depth")
    elements = ds._dict  # noqa: SLF001 - get_item() would read a deferred value
    lazy = getattr(ds, "original_encoding", None) == (False, True)
    if text_can_fail is None or _CHARSET_TAG in elements:
        # An item without its own character set is decoded in its parent's (PS3.5 7.5.3).
        text_can_fail = not _single_byte_latin(ds)
    for tag in list(elements):
        raw = elements[tag]
        if isinstance(raw, RawDataElement):
            _check_element_length(raw.length, tag, data_size, limits)
            if depth == 0 and tag == _PIXEL_DATA and _is_deferred(raw):
                continue  # stays in the file: _check_pixels checks it there
            if (
                lazy
                and raw.is_little_endian
                and not raw.is_implicit_VR
                and raw.length != 0xFFFFFFFF
                and raw.VR != "SQ"
                and not (text_can_fail and raw.VR in _CHARSET_VRS)
            ):
                _check_raw_value(raw, tag)
                continue
        element = ds[tag]
        if element.VR == "SQ":
            for item in element.value:
                _walk(item, depth + 1, data_size, limits, text_can_fail)


def _charset_terms(ds: Dataset) -> list[str]:
    """The defined terms of ``ds``'s Specific Character Set, stripped; [] when absent."""
    declared = ds.get("SpecificCharacterSet")
    if declared is None:
        return []
    values = [declared] if isinstance(declared, str) else list(declared)
    return [(value or "").strip() for value in values]


def _single_byte_latin(ds: Dataset) -> bool:
    """True when every byte string decodes in the dataset's character set (Latin-1).

    No declared set is the default repertoire, which pydicom decodes as Latin-1.
    """
    return all(python_encoding.get(term) in _LATIN for term in _charset_terms(ds))


def _check_raw_value(raw: RawDataElement, tag: int) -> None:
    vr = raw.VR
    if vr not in _KNOWN_VRS:
        raise UnreadableInstance(UNKNOWN_VR, _tag_path(tag))
    size = _FIXED_VALUE_SIZE.get(vr)
    if size is not None and raw.length % size:
        raise UnreadableInstance(UNPARSEABLE, _tag_path(tag))


def _set_parsed_transfer_syntax(ds: Dataset) -> None:
    """Give a dataset read without a Transfer Syntax UID the syntax it was parsed in.

    A file with neither preamble nor File Meta is valid input (PS3.10 7.1 allows media
    without it to be read by agreement); pydicom has worked out its encoding while
    parsing it, and nothing downstream works without a transfer syntax.
    """
    meta = ds.file_meta
    if meta.get("TransferSyntaxUID") is not None:
        return
    syntax = _PARSED_SYNTAX.get(tuple(ds.original_encoding))  # type: ignore[arg-type]
    if syntax is not None:
        meta.TransferSyntaxUID = syntax


def _check_transfer_syntax(ds: Dataset) -> None:
    """Refuse a Transfer Syntax UID (0002,0010) that names no known transfer syntax.

    pydicom's UID properties (``is_compressed``...) raise ``ValueError`` on one.
    """
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None:
        return
    try:
        known = UID(str(syntax)).is_transfer_syntax
    except ValueError:  # private or unknown
        known = False
    if not known:
        raise UnreadableInstance(UNSUPPORTED_SYNTAX, "(0002,0010)")


def _check_charset(ds: Dataset) -> None:
    for term in _charset_terms(ds):
        if term and term not in python_encoding:
            raise UnreadableInstance(CHARSET, "(0008,0005)")


def _parse_everything(ds: Dataset, data_size: int, limits: ResourceLimits) -> None:
    """Convert every raw element now, so that parse errors surface here."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _walk(ds, 0, data_size, limits)
        except UnreadableInstance:
            raise
        except NotImplementedError:
            # pydicom raises this for an unknown VR while converting an element.
            raise UnreadableInstance(UNKNOWN_VR) from None
        except (EOFError, OSError):
            raise UnreadableInstance(TRUNCATED) from None
        except Exception:
            raise UnreadableInstance(UNPARSEABLE) from None
    for warning in caught:
        if warning.filename.replace("\\", "/").endswith("pydicom/charset.py"):
            raise UnreadableInstance(CHARSET)


def _check_declared_size(ds: Dataset, limits: ResourceLimits) -> None:
    """Refuse an image whose declared size is over the limits, before decoding it."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError):
        raise UnreadableInstance(MISSING_GEOMETRY, "(0028,0010)/(0028,0011)/(0028,0100)") from None
    if min(rows, columns, samples, frames, bits) < 1:
        raise UnreadableInstance(MISSING_GEOMETRY, "(0028,0010)/(0028,0011)/(0028,0100)")
    if rows * columns > limits.max_pixels_per_frame:
        raise UnreadableInstance(OVER_LIMIT, "(0028,0010)x(0028,0011) pixels per frame")
    if frames > limits.max_frames:
        raise UnreadableInstance(OVER_LIMIT, "(0028,0008) frames")
    if (rows * columns * samples * frames * bits + 7) // 8 > limits.max_decoded_bytes:
        raise UnreadableInstance(OVER_LIMIT, "(7FE0,0010) decoded size")


def _decode(ds: Dataset, transfer_syntax: UID, limits: ResourceLimits, isolation: str) -> None:
    """Decode the pixel data once; later ``ds.pixel_array`` calls get the cached array."""
    if isolation == "inline" or not transfer_syntax.is_encapsulated:
        try:
            ds.pixel_array  # noqa: B018 - decoding is the check
        except Exception:
            raise UnreadableInstance(PIXEL_DECODE, transfer_syntax.name) from None
        return
    from cadp_med.io._isolation import DecodeFailed, shared_decoder

    try:
        array = shared_decoder().decode(ds, timeout_s=limits.decode_timeout_s)
    except DecodeFailed as exc:
        raise UnreadableInstance(exc.category, transfer_syntax.name) from None
    # What Dataset.pixel_array checks to reuse its cache (pydicom 3).
    ds._pixel_array = array
    ds._pixel_id = get_image_pixel_ids(ds)


def _check_structure(ds: Dataset, syntax: UID, path: Path, size: int) -> None:
    """Check Pixel Data from its bytes, never decoding it; see the module docstring.

    A deferred element (still in the file) becomes a :class:`FilePixelData` value.
    """
    raw = ds._dict[_PIXEL_DATA]  # noqa: SLF001 - get_item() would read a deferred value
    deferred = _is_deferred(raw)
    if deferred:
        undefined = raw.length == 0xFFFFFFFF
    else:
        undefined = ds[_PIXEL_DATA].is_undefined_length
    if undefined != syntax.is_encapsulated:
        # Encapsulated data has undefined length, native data a defined one (PS3.5 A.4).
        raise UnreadableInstance(PIXEL_LENGTH, "(7FE0,0010) encapsulation")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if syntax.is_encapsulated:
        eot = ds.get("ExtendedOffsetTable")
        eot_lengths = ds.get("ExtendedOffsetTableLengths")
        tables = {
            "extended_offsets": None if eot is None else bytes(eot or b""),
            "extended_lengths": None if eot_lengths is None else bytes(eot_lengths or b""),
        }
        try:
            if deferred:
                with open(path, "rb") as stream:
                    length = check_encapsulated(
                        stream, raw.value_tell, size, frames=frames, **tables
                    )
            else:
                value = ds.PixelData
                check_encapsulated(
                    io.BytesIO(value), 0, len(value), frames=frames, terminated=False, **tables
                )
        except EncapsulationError as exc:
            raise UnreadableInstance(PIXEL_LENGTH, f"(7FE0,0010) {exc.detail}") from None
    else:
        expected = expected_native_pixel_bytes(ds)
        length = raw.length if deferred else len(ds.PixelData)
        if deferred and raw.value_tell + length > size:
            raise UnreadableInstance(TRUNCATED, "(7FE0,0010)")
        if length < expected:
            raise UnreadableInstance(PIXEL_LENGTH, "(7FE0,0010)")
    if deferred:
        vr = raw.VR
        if vr not in ("OB", "OW"):  # implicit VR, UN or "OB or OW"
            vr = "OB" if syntax.is_encapsulated or int(ds.BitsAllocated) <= 8 else "OW"
        element = DataElement(_PIXEL_DATA, vr, b"", is_undefined_length=undefined)
        # Set past the value validation: the value is a reference, not the bytes.
        element._value = FilePixelData(str(path), raw.value_tell, length)  # noqa: SLF001
        ds._dict[_PIXEL_DATA] = element  # noqa: SLF001 - replaces the raw element


def _check_pixels(
    ds: Dataset,
    *,
    decode: bool,
    limits: ResourceLimits,
    isolation: str,
    path: Path,
    size: int,
) -> None:
    sop_class = str(ds.SOPClassUID)
    has_pixels = any(name in ds for name in _PIXEL_ELEMENTS)
    if not has_pixels:
        if is_image_storage(sop_class):
            raise UnreadableInstance(MISSING_PIXELS, "(7FE0,0010)")
        return
    if "PixelData" not in ds:
        return
    transfer_syntax = UID(ds.file_meta.get("TransferSyntaxUID", ImplicitVRLittleEndian))
    _check_declared_size(ds, limits)
    _check_structure(ds, transfer_syntax, path, size)
    if decode:
        _decode(ds, transfer_syntax, limits, isolation)


def read_instance(
    path: PathLike,
    *,
    decode_pixels: bool = False,
    limits: ResourceLimits = DEFAULT_LIMITS,
    decode_isolation: DecodeIsolation = "process",
    defer_pixel_data: bool = False,
) -> Dataset:
    """Read and validate one DICOM instance.

    Parameters
    ----------
    path : str or os.PathLike
        The file. It is opened read-only and never modified.
    decode_pixels : bool, default False
        Also decode the pixel data (JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big
        endian, multi-frame), as privatization needs. Without it, pixel data are
        checked from their bytes only (length, encapsulation items).
    limits : ResourceLimits, optional
        What the file may claim; see :mod:`cadp_med.io.limits`.
    decode_isolation : {"process", "inline"}
        ``"process"`` decodes compressed pixel data in a worker process (a crash
        or hang quarantines the file only); ``"inline"`` in this process, for
        benchmarks and trusted input.
    defer_pixel_data : bool, default False
        Leave Pixel Data over 1 MiB in the file: its value is then a
        :class:`~cadp_med.io._pixel_source.FilePixelData` (``len()``, ``tobytes()``,
        streamed by :func:`cadp_med.io.write.write_instance`). Ignored with
        ``decode_pixels`` and for deflated files (their data are inflated in memory).

    Returns
    -------
    pydicom.dataset.FileDataset
        The dataset, with every element parsed.

    Raises
    ------
    UnreadableInstance
        An ``InputError`` naming the reason category: empty, truncated,
        unparseable, unknown VR, missing SOP Class/Instance UID, missing pixel
        data of an image storage class, undecodable character set, pixel data
        shorter than declared, pixel data that cannot be decoded or whose decoder
        crashed or timed out, or a size over ``limits``.
    """
    file_path = Path(path)
    size = file_path.stat().st_size
    if size == 0:
        raise UnreadableInstance(EMPTY)
    inflated = _check_inflated_size(file_path, limits)
    defer = defer_pixel_data and not decode_pixels and inflated is None
    with warnings.catch_warnings():
        # pydicom warns about oddities it repairs; such text can quote values
        # and belongs to no log of ours.
        warnings.simplefilter("ignore")
        try:
            with _CappedReader(io.FileIO(str(file_path), "r"), size) as stream:
                ds = pydicom.dcmread(stream, force=True, defer_size=_DEFER_BYTES if defer else None)
        except NotImplementedError:
            raise UnreadableInstance(UNKNOWN_VR) from None
        except (EOFError, OSError):
            raise UnreadableInstance(TRUNCATED) from None
        except Exception:
            raise UnreadableInstance(UNPARSEABLE) from None
    _set_parsed_transfer_syntax(ds)
    _check_transfer_syntax(ds)
    _check_charset(ds)
    # No element can be longer than the data it was read from.
    _parse_everything(ds, inflated if inflated is not None else size, limits)
    for keyword, tag in (("SOPClassUID", 0x00080016), ("SOPInstanceUID", 0x00080018)):
        value = ds.get(keyword)
        if not value or not str(value).strip():
            raise UnreadableInstance(MISSING_UID, _tag_path(tag))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_pixels(
            ds,
            decode=decode_pixels,
            limits=limits,
            isolation=decode_isolation,
            path=file_path,
            size=size,
        )
    return ds
