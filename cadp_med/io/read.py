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
* Native pixel data shorter than Rows x Columns x Samples x Frames x Bits says is
  quarantined. Longer pixel data (trailing padding) is accepted; the pipeline
  drops the trailing bytes so that nothing beyond the image is copied.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
from pydicom.charset import python_encoding
from pydicom.dataset import Dataset
from pydicom.uid import UID

from cadp_med._types import PathLike
from cadp_med.errors import InputError

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

_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


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


def _check_charset(ds: Dataset) -> None:
    declared = ds.get("SpecificCharacterSet")
    if declared is None:
        return
    values = [declared] if isinstance(declared, str) else list(declared)
    for value in values:
        term = (value or "").strip()
        if term and term not in python_encoding:
            raise UnreadableInstance(CHARSET, "(0008,0005)")


def _parse_everything(ds: Dataset) -> None:
    """Convert every raw element now, so that parse errors surface here."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for _ in ds.iterall():
                pass
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


def _check_pixels(ds: Dataset, *, decode: bool) -> None:
    sop_class = str(ds.SOPClassUID)
    has_pixels = any(name in ds for name in _PIXEL_ELEMENTS)
    if not has_pixels:
        if is_image_storage(sop_class):
            raise UnreadableInstance(MISSING_PIXELS, "(7FE0,0010)")
        return
    if "PixelData" not in ds:
        return
    transfer_syntax = UID(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    if not transfer_syntax.is_compressed:
        expected = expected_native_pixel_bytes(ds)
        if len(ds.PixelData) < expected:
            raise UnreadableInstance(PIXEL_LENGTH, "(7FE0,0010)")
    if decode:
        try:
            ds.pixel_array  # noqa: B018 - decoding is the check
        except Exception:
            raise UnreadableInstance(PIXEL_DECODE, transfer_syntax.name) from None


def read_instance(path: PathLike, *, decode_pixels: bool = False) -> Dataset:
    """Read and validate one DICOM instance.

    Parameters
    ----------
    path : str or os.PathLike
        The file. It is opened read-only and never modified.
    decode_pixels : bool, default False
        Also decode the pixel data (JPEG, JPEG-LS, JPEG 2000, RLE, deflate, big
        endian, multi-frame), as needed when pixels are kept or privatized.

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
        shorter than declared, or pixel data that cannot be decoded.
    """
    file_path = Path(path)
    if file_path.stat().st_size == 0:
        raise UnreadableInstance(EMPTY)
    with warnings.catch_warnings():
        # pydicom warns about oddities it repairs; such text can quote values
        # and belongs to no log of ours.
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(file_path, force=True)
        except NotImplementedError:
            raise UnreadableInstance(UNKNOWN_VR) from None
        except (EOFError, OSError):
            raise UnreadableInstance(TRUNCATED) from None
        except Exception:
            raise UnreadableInstance(UNPARSEABLE) from None
    _check_charset(ds)
    _parse_everything(ds)
    for keyword, tag in (("SOPClassUID", 0x00080016), ("SOPInstanceUID", 0x00080018)):
        value = ds.get(keyword)
        if not value or not str(value).strip():
            raise UnreadableInstance(MISSING_UID, _tag_path(tag))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_pixels(ds, decode=decode_pixels)
    return ds
