"""From decoded frames in modality units back to stored pixel values, and the header that
describes them.

The inverse of what :func:`cadp_med.imaging.slices_from_dicom_series` applies: the
Modality LUT is inverted (``stored = (value - intercept) / slope``), values are rounded
and clipped to the range BitsStored and PixelRepresentation can represent, and the data
are written native little endian. Colour and palette input was reduced to luminance
(BT.601 Y) by the reader, so it is written as MONOCHROME2 with one sample per pixel.
MONOCHROME1 is kept: the stored values keep their meaning (the model works on the
inverted, MONOCHROME2-like scale; see ``_stage``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from cadp_med.errors import InputError

# Transfer syntaxes whose pixel data were lossy compressed, and the method names of
# Lossy Image Compression Method (0028,2114), PS3.3 C.7.6.1.1.5.
_LOSSY_METHODS = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",
    "1.2.840.10008.1.2.4.100": "ISO_13818_2",
    "1.2.840.10008.1.2.4.102": "ISO_14496_10",
}
_PALETTE_KEYWORDS = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
    "PlanarConfiguration",
    "ICCProfile",
    "ColorSpace",
)
# Pixel-value statistics of the original image would describe pixels that are gone.
_STALE_KEYWORDS = ("SmallestImagePixelValue", "LargestImagePixelValue")


def stored_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    """The representable stored values of BitsStored and PixelRepresentation."""
    if signed:
        return -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    return 0, 2**bits_stored - 1


def _dtype(bits_allocated: int, signed: bool) -> np.dtype[Any]:
    kind = "i" if signed else "u"
    return np.dtype(f"<{kind}{max(1, bits_allocated // 8)}")


def is_colour(ds: Dataset) -> bool:
    """True when the reader reduced the image to luminance (RGB, YBR or palette)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    return int(ds.get("SamplesPerPixel", 1) or 1) > 1 or photometric == "PALETTE COLOR"


def luminance_bits(ds: Dataset) -> tuple[int, float]:
    """Bits of the luminance written for colour input, and the factor to reach them.

    Palette colour is written with 8 bits (the US Image module allows only 8 for
    MONOCHROME2); 16-bit LUT entries are scaled by 255/65535. RGB keeps its sample depth.
    """
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
        wide = descriptor is not None and int(descriptor[2]) > 8
        return 8, (255.0 / 65535.0 if wide else 1.0)
    return (8 if int(ds.get("BitsStored", 8)) <= 8 else 16), 1.0


def rescale_of(ds: Dataset, frame: int) -> tuple[float, float]:
    """(slope, intercept) of a frame, from functional groups or the top level."""
    from cadp_med.imaging._dicom import _frame_attr

    if "ModalityLUTSequence" in ds:
        raise InputError("a Modality LUT Sequence cannot be inverted exactly")
    slope = _frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = _frame_attr(ds, frame, "PixelValueTransformationSequence", "RescaleIntercept")
    slope = float(slope) if slope is not None else 1.0
    if slope == 0.0:
        raise InputError("Rescale Slope is zero")
    return slope, float(intercept) if intercept is not None else 0.0


def encode_frames(
    frames: list[np.ndarray], ds: Dataset, *, colour: bool
) -> tuple[bytes, dict[str, Any]]:
    """Stored bytes of ``frames`` (modality units, or luminance for colour input).

    Returns
    -------
    data : bytes
        Native little-endian pixel data, even length.
    header : dict
        Keyword → value of the Image Pixel attributes to set on the output.
    """
    scale = 1.0
    if colour:
        bits, scale = luminance_bits(ds)
        signed, bits_allocated = False, bits
    else:
        bits = int(ds.BitsStored)
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        bits_allocated = int(ds.BitsAllocated)
    low, high = stored_range(bits, signed)
    dtype = _dtype(bits_allocated, signed)
    parts = []
    for index, values in enumerate(frames):
        slope, intercept = (1.0, 0.0) if colour else rescale_of(ds, index)
        stored = np.rint((np.asarray(values, dtype=np.float64) * scale - intercept) / slope)
        parts.append(np.clip(stored, low, high).astype(dtype).tobytes())
    data = b"".join(parts)
    if len(data) % 2:
        data += b"\x00"
    header: dict[str, Any] = {"Rows": int(frames[0].shape[0]), "Columns": int(frames[0].shape[1])}
    if colour:
        header.update(
            SamplesPerPixel=1,
            PhotometricInterpretation="MONOCHROME2",
            BitsAllocated=bits_allocated,
            BitsStored=bits,
            HighBit=bits - 1,
            PixelRepresentation=0,
        )
    return data, header


def apply_pixels(out: Dataset, data: bytes, header: dict[str, Any]) -> None:
    """Put the new pixel data and Image Pixel attributes on ``out``."""
    for keyword in _STALE_KEYWORDS:
        if keyword in out:
            delattr(out, keyword)
    if header.get("SamplesPerPixel") == 1 and "PhotometricInterpretation" in header:
        for keyword in _PALETTE_KEYWORDS:
            if keyword in out:
                delattr(out, keyword)
    for keyword, value in header.items():
        setattr(out, keyword, value)
    out.PixelData = data
    out["PixelData"].VR = "OB" if int(out.BitsAllocated) <= 8 else "OW"


def lossy_history(original: Dataset, source_syntax: str | None) -> dict[str, Any] | None:
    """Lossy Image Compression attributes to carry over, or None if never lossy.

    Our output is uncompressed, but pixels once lossy compressed stay lossy
    (PS3.3 C.7.6.1.1.5): keep "01" with the original's ratio and method.
    """
    was_lossy = str(original.get("LossyImageCompression", "")).strip() == "01"
    method = _LOSSY_METHODS.get(str(source_syntax or ""))
    if not was_lossy and method is None:
        return None
    result: dict[str, Any] = {"LossyImageCompression": "01"}
    if "LossyImageCompressionRatio" in original:
        result["LossyImageCompressionRatio"] = original.LossyImageCompressionRatio
    if "LossyImageCompressionMethod" in original:
        result["LossyImageCompressionMethod"] = original.LossyImageCompressionMethod
    elif method is not None:
        result["LossyImageCompressionMethod"] = method
    return result
