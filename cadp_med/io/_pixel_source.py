"""Pixel Data checked from its bytes, and Pixel Data that stays in its file until written.

Header-only de-identification (``--pixels keep`` or ``blank``) never needs the image:
the element is checked structurally here (its length against the declared geometry;
for encapsulated data the item structure of PS3.5 A.4) and, when it is large, copied
from the input file to the output file in chunks at write time. Memory then holds the
header of one instance, whatever the size of its image.

A :class:`StreamedPixelData` is the value of a Pixel Data element in such a dataset;
``cadp_med.io.write`` streams it, anything else can call :meth:`~StreamedPixelData.tobytes`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import BinaryIO

import numpy as np
from pydicom.encaps import parse_basic_offsets

__all__ = [
    "EncapsulationError",
    "FilePixelData",
    "StreamedPixelData",
    "ZeroPixelData",
    "check_encapsulated",
    "swap_words",
]

_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_HEADER = struct.Struct("<HHL")
# Bytes per read and write when copying: large enough that the system calls do not
# matter, small against any image worth streaming.
_CHUNK = 1 << 22


def swap_words(data: bytes, word: int) -> bytes:
    """``data`` read as big endian ``word``-byte words, written little endian.

    A short last word is zero-padded first (the even length of 8-bit OW data); the
    result keeps the padded length, for the caller to cut.
    """
    data += bytes(-len(data) % word)
    return np.frombuffer(data, dtype=f">u{word}").astype(f"<u{word}").tobytes()


class EncapsulationError(ValueError):
    """Encapsulated Pixel Data whose item structure is broken.

    ``detail`` names what is wrong (an item, a table), never a value.
    """

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def check_encapsulated(
    stream: BinaryIO,
    start: int,
    end: int,
    *,
    frames: int,
    terminated: bool = True,
    extended_offsets: bytes | None = None,
    extended_lengths: bytes | None = None,
) -> int:
    """Check the items of encapsulated Pixel Data without reading the fragments.

    Only the 8-byte item headers are read; the fragments are skipped with ``seek``.
    The checks (PS3.5 A.4): a Basic Offset Table item first, whose offsets (when any)
    are one per frame, start at 0, increase and point inside the fragments; then
    fragment items (FFFE,E000) each inside the data; then the Sequence Delimitation
    Item (FFFE,E0DD); at least one fragment per frame; and an Extended Offset Table
    (7FE0,0001/0002), when present, of one offset and length per frame inside the
    fragments.

    Parameters
    ----------
    stream : binary file
        Seekable; holds the element's value from ``start``.
    start : int
        Where the value (the Basic Offset Table item) begins.
    end : int
        The end of what may be read: the end of the file, or of the value when it
        is in memory.
    frames : int
        Number of Frames (0028,0008); 1 when absent.
    terminated : bool, default True
        The items end with the Sequence Delimitation Item (in a file). False for a
        value in memory, which pydicom holds without it: the items end at ``end``.
    extended_offsets, extended_lengths : bytes, optional
        The values of (7FE0,0001) and (7FE0,0002), when present.

    Returns
    -------
    int
        The length of the value without the Sequence Delimitation Item, as pydicom
        reads it (Basic Offset Table and fragment items).

    Raises
    ------
    EncapsulationError
        Naming the first problem found.
    """
    stream.seek(start)
    if end - start < 8:
        raise EncapsulationError("basic offset table")
    try:
        offsets = parse_basic_offsets(stream)
    except (ValueError, struct.error):
        raise EncapsulationError("basic offset table") from None
    first_fragment = stream.tell()
    if first_fragment > end:
        raise EncapsulationError("basic offset table")
    fragments = 0
    position = first_fragment
    while True:
        if position == end and not terminated:
            break
        if position + 8 > end:
            raise EncapsulationError("sequence delimiter missing")
        stream.seek(position)
        group, element, length = _HEADER.unpack(stream.read(8))
        tag = group << 16 | element
        if tag == _SEQUENCE_DELIMITER:
            break
        if tag != _ITEM:
            raise EncapsulationError("fragment item tag")
        if length == 0xFFFFFFFF or position + 8 + length > end:
            raise EncapsulationError("fragment length")
        fragments += 1
        position += 8 + length
    fragment_bytes = position - first_fragment
    if fragments < max(frames, 1):
        raise EncapsulationError("fewer fragments than frames")
    if offsets:
        if len(offsets) != frames:
            raise EncapsulationError("basic offset table entries")
        if offsets[0] != 0 or any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)):
            raise EncapsulationError("basic offset table order")
        if offsets[-1] >= fragment_bytes:
            raise EncapsulationError("basic offset table offset")
    if extended_offsets is not None or extended_lengths is not None:
        _check_extended(extended_offsets, extended_lengths, frames, fragment_bytes, offsets)
    return position - start


def _check_extended(
    offsets: bytes | None,
    lengths: bytes | None,
    frames: int,
    fragment_bytes: int,
    basic: list[int],
) -> None:
    """Extended Offset Table (7FE0,0001) with its lengths (7FE0,0002), PS3.5 A.4."""
    if offsets is None or lengths is None or basic:
        # The two go together, and exclude a non-empty Basic Offset Table.
        raise EncapsulationError("extended offset table")
    if len(offsets) != 8 * frames or len(lengths) != 8 * frames:
        raise EncapsulationError("extended offset table entries")
    starts = struct.unpack(f"<{frames}Q", offsets)
    sizes = struct.unpack(f"<{frames}Q", lengths)
    for begin, size in zip(starts, sizes, strict=True):
        if begin + 8 + size > fragment_bytes:
            raise EncapsulationError("extended offset table offset")


class StreamedPixelData:
    """The value of a Pixel Data element that is written in chunks, never held whole.

    Subclasses say where the bytes come from. ``len()`` is the value's length (for
    encapsulated data: the items, without the Sequence Delimitation Item, as pydicom
    holds them).
    """

    length: int

    def __len__(self) -> int:
        return self.length

    def copy_to(self, stream: BinaryIO) -> None:
        """Write the value's bytes to ``stream``, in chunks."""
        raise NotImplementedError

    def head(self, length: int) -> StreamedPixelData:
        """The first ``length`` bytes (``length`` at most ``len(self)``)."""
        raise NotImplementedError

    def tobytes(self) -> bytes:
        """The whole value in memory, for writers that cannot stream."""
        from io import BytesIO

        buffer = BytesIO()
        self.copy_to(buffer)
        return buffer.getvalue()


@dataclass(frozen=True, eq=False)
class FilePixelData(StreamedPixelData):
    """Pixel Data left in the input file: ``length`` bytes from ``offset``.

    Attributes
    ----------
    path : str
        The input file (read only, never changed).
    offset : int
        Where the value begins in the file.
    length : int
        How many bytes to copy.
    swap : int
        Word size to byte-swap while copying (2, 4 or 8: big endian input written
        little endian), or 0. The bytes are read up to a whole word past ``length``
        (the even length of 8-bit OW data) and cut to ``length`` once swapped.
    """

    path: str
    offset: int
    length: int
    swap: int = 0

    def head(self, length: int) -> FilePixelData:
        """The first ``length`` bytes."""
        return replace(self, length=min(length, self.length))

    def byteswapped(self, word: int) -> FilePixelData:
        """The same bytes, each ``word``-byte word reversed while copying."""
        return replace(self, swap=word)

    def copy_to(self, stream: BinaryIO) -> None:
        """Copy the bytes to ``stream``; a file shorter than expected raises EOFError."""
        word = max(self.swap, 1)
        left = self.length + (-self.length) % word
        to_write = self.length
        with open(self.path, "rb") as source:
            source.seek(self.offset)
            while to_write > 0:
                data = source.read(min(_CHUNK, left))
                if not data:
                    raise EOFError("the input file is shorter than its Pixel Data")
                left -= len(data)
                if word > 1:
                    data = swap_words(data, word)  # a short word only at the end of a file
                data = data[:to_write]
                to_write -= len(data)
                stream.write(data)


@dataclass(frozen=True, eq=False)
class ZeroPixelData(StreamedPixelData):
    """``length`` zero bytes: blanked pixels of any size, written without holding them."""

    length: int

    def head(self, length: int) -> ZeroPixelData:
        """The first ``length`` bytes."""
        return ZeroPixelData(min(length, self.length))

    def copy_to(self, stream: BinaryIO) -> None:
        """Write the zeros to ``stream``."""
        zeros = bytes(min(_CHUNK, self.length))
        left = self.length
        while left > 0:
            stream.write(zeros if left >= len(zeros) else zeros[:left])
            left -= len(zeros)
