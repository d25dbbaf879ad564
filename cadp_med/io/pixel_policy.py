"""What happens to the pixel data of an image object: keep, blank or privatize.

* ``keep``: Pixel Data are copied unchanged, so the output decodes to the same
  array. Big endian input is re-encoded little endian (the output is always
  little endian) and trailing bytes beyond the declared image are dropped.
* ``blank``: every pixel is zero. Rows, Columns, Samples per Pixel, Bits and the
  number of frames are kept; the data are written uncompressed, so colour data
  that were YBR-compressed are declared RGB.
* ``privatize``: the configured pixel stage returns the dataset to write.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from cadp_med.errors import ConfigError
from cadp_med.io.read import expected_native_pixel_bytes
from cadp_med.io.write import is_big_endian

__all__ = ["apply_pixel_policy"]

_PIXEL_TAG = "(7FE0,0010)"


def _native_length(ds: Dataset) -> int:
    length = expected_native_pixel_bytes(ds)
    return length + (length % 2)  # an element's value has even length


def _keep(original: Dataset, out: Dataset, source_syntax: str | None) -> list[str]:
    warnings: list[str] = []
    syntax = UID(source_syntax) if source_syntax else None
    if syntax is not None and syntax.is_compressed and not syntax.is_deflated:
        return warnings  # encapsulated bytes, written under the same syntax
    if is_big_endian(source_syntax):
        array = original.pixel_array
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        out.PixelData = little.tobytes()
        return warnings
    expected = _native_length(original)
    if len(out.PixelData) > expected:
        # Bytes beyond the image could carry anything: do not copy them.
        out.PixelData = bytes(out.PixelData[:expected])
        warnings.append(f"{_PIXEL_TAG}: trailing bytes beyond the image removed")
    return warnings


def _blank(original: Dataset, out: Dataset, source_syntax: str | None) -> list[str]:
    out.PixelData = bytes(_native_length(original))
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
