"""What happens to the pixel data of an image object: keep, blank or privatize.

* ``keep``: Pixel Data are copied unchanged, so the output decodes to the same
  array. Big endian input is re-encoded little endian (the output is always
  little endian: each word's bytes swapped) and trailing bytes beyond the declared
  image are dropped. Nothing is decoded (and no colour space converted).
* ``blank``: every pixel is zero. Rows, Columns, Samples per Pixel, Bits and the
  number of frames are kept; the data are written uncompressed, so colour data
  that were YBR-compressed are declared RGB. Nothing is decoded either: the zeros
  take the declared geometry.
* ``privatize``: the configured pixel stage returns the dataset to write.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from cadp_med.errors import ConfigError
from cadp_med.io._pixel_source import (
    FilePixelData,
    StreamedPixelData,
    ZeroPixelData,
    swap_words,
)
from cadp_med.io.read import expected_native_pixel_bytes
from cadp_med.io.write import is_big_endian

__all__ = ["apply_pixel_policy"]

_PIXEL_TAG = "(7FE0,0010)"


def _native_length(ds: Dataset) -> int:
    length = expected_native_pixel_bytes(ds)
    return length + (length % 2)  # an element's value has even length


def _set_value(out: Dataset, value: bytes | StreamedPixelData) -> None:
    if isinstance(value, StreamedPixelData):
        # A reference to bytes in the input file: set past pydicom's value validation.
        out["PixelData"]._value = value  # noqa: SLF001
    else:
        out.PixelData = value


def _little_endian(
    original: Dataset, value: bytes | StreamedPixelData
) -> bytes | StreamedPixelData:
    """Big endian native Pixel Data as little endian: each word's bytes reversed.

    What pydicom's native decoder reads the data as (one word per BitsAllocated),
    without building the image.
    """
    bits = int(original.BitsAllocated)
    expected = expected_native_pixel_bytes(original)
    if bits in (16, 32, 64):
        word = bits // 8
    elif bits == 8 and original["PixelData"].VR == "OW":
        word = 2  # 8-bit data encoded as OW: swapped in 16-bit words (PS3.5 A.3)
    else:
        return value.head(expected) if isinstance(value, StreamedPixelData) else value[:expected]
    if isinstance(value, FilePixelData):
        return value.head(expected).byteswapped(word)
    data = value.tobytes() if isinstance(value, StreamedPixelData) else bytes(value)
    return swap_words(data[: expected + (-expected) % word], word)[:expected]


def _keep(original: Dataset, out: Dataset, source_syntax: str | None) -> list[str]:
    warnings: list[str] = []
    syntax = UID(source_syntax) if source_syntax else None
    if syntax is not None and syntax.is_compressed and not syntax.is_deflated:
        return warnings  # encapsulated bytes, written under the same syntax
    value = out["PixelData"].value
    if is_big_endian(source_syntax):
        _set_value(out, _little_endian(original, value))
        return warnings
    expected = _native_length(original)
    if len(value) > expected:
        # Bytes beyond the image could carry anything: do not copy them.
        _set_value(
            out,
            value.head(expected) if isinstance(value, StreamedPixelData) else value[:expected],
        )
        warnings.append(f"{_PIXEL_TAG}: trailing bytes beyond the image removed")
    return warnings


def _blank(original: Dataset, out: Dataset, source_syntax: str | None) -> list[str]:
    length = _native_length(original)
    if isinstance(out["PixelData"].value, StreamedPixelData):
        # The input's data stayed in its file; the zeros are not held either.
        out["PixelData"].is_undefined_length = False
        _set_value(out, ZeroPixelData(length))
    else:
        out.PixelData = bytes(length)
    out["PixelData"].VR = "OB" if int(original.BitsAllocated) <= 8 else "OW"
    syntax = UID(source_syntax) if source_syntax else None
    if syntax is not None and syntax.is_compressed and int(original.get("SamplesPerPixel", 1)) > 1:
        out.PhotometricInterpretation = "RGB"
        out.PlanarConfiguration = 0
    return [f"{_PIXEL_TAG}: pixels blanked"]


def apply_pixel_policy(
    original: Dataset,
    deid_result: Any,
    *,
    mode: str,
    source_syntax: str | None,
    pixel_stage: Any = None,
) -> tuple[Dataset, bool, list[str]]:
    """Apply the pixel policy to a de-identified dataset.

    Parameters
    ----------
    original : pydicom.dataset.Dataset
        The input dataset (read only).
    deid_result : cadp_med.deid.DeidResult
        Header de-identification result; its ``dataset`` is modified for
        ``keep`` and ``blank``.
    mode : {"keep", "blank", "privatize"}
        The policy; non-image objects are always passed as ``"keep"``.
    source_syntax : str or None
        The input's Transfer Syntax UID.
    pixel_stage : callable, optional
        Used by ``"privatize"``.

    Returns
    -------
    dataset : pydicom.dataset.Dataset
        The dataset to write.
    pixels_unchanged : bool
        True when the Pixel Data bytes are the input's own (compressed syntax kept).
    warnings : list of str
        Tag paths and what was done, no values.
    """
    out: Dataset = deid_result.dataset
    if "PixelData" not in out:
        return out, True, []
    if mode == "keep":
        warnings = _keep(original, out, source_syntax)
        unchanged = not is_big_endian(source_syntax)
        return out, unchanged, warnings
    if mode == "blank":
        return out, False, _blank(original, out, source_syntax)
    if mode == "privatize":
        if pixel_stage is None:
            raise ConfigError("pixel privatization needs a model: no pixel stage is configured")
        return pixel_stage(original, deid_result), False, []
    raise ConfigError("pixels must be one of privatize, keep, blank")
