"""Resource limits on untrusted input: what a file may claim before it is quarantined.

A DICOM header states sizes (Rows, Columns, frames, element lengths) that the reader
would otherwise believe: a 200-byte file can claim a 60000 x 60000 x 1000 frame image,
and a 1 MB deflated file can inflate to gigabytes. Every check here runs on declared
numbers before anything of that size is allocated, so peak memory stays bounded by the
limits, whatever the input claims.
"""

from __future__ import annotations

from dataclasses import dataclass

from cadp_med.errors import ConfigError

__all__ = ["DEFAULT_LIMITS", "ResourceLimits"]

_MiB = 1 << 20
_GiB = 1 << 30


@dataclass(frozen=True)
class ResourceLimits:
    """Limits on what one input file may claim.

    The defaults admit every clinical image seen in practice (a 4k x 5k
    mammogram has 20 Mpx; a 2000-frame cine is common) and stop the forged ones.

    Attributes
    ----------
    max_pixels_per_frame : int
        Rows x Columns of one frame.
    max_frames : int
        Number of Frames (0028,0008).
    max_decoded_bytes : int
        Rows x Columns x Samples x Frames x BitsAllocated / 8: the decoded array.
    max_inflated_bytes : int
        A Deflated Explicit VR Little Endian dataset after inflation (PS3.5 A.5).
    max_sequence_depth : int
        Nesting of sequences (an item inside an item inside ...).
    max_element_bytes : int
        The value of any one element, Pixel Data included.
    decode_timeout_s : float
        Wall-clock time one file's pixel decoding may take in an isolated worker.
    """

    max_pixels_per_frame: int = 256 * _MiB
    max_frames: int = 20_000
    max_decoded_bytes: int = 4 * _GiB
    max_inflated_bytes: int = 2 * _GiB
    max_sequence_depth: int = 32
    max_element_bytes: int = 2 * _GiB
    decode_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        for name in (
            "max_pixels_per_frame",
            "max_frames",
            "max_decoded_bytes",
            "max_inflated_bytes",
            "max_sequence_depth",
            "max_element_bytes",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"resource limit {name} must be at least 1")
        if not self.decode_timeout_s > 0:
            raise ConfigError("resource limit decode_timeout_s must be > 0")


DEFAULT_LIMITS = ResourceLimits()
