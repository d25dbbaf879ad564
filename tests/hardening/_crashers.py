"""A test-only "decoder" for the isolated decoder pool: crashes, hangs or panics on a marker.

The marker sits in Lossy Image Compression Method (0028,2114), which travels to the
worker with the Image Pixel module. Without a marker it decodes as pydicom does.
"""

from __future__ import annotations

import os
import time

import numpy as np
from pydicom.dataset import Dataset

CRASH = "CADP_CRASH"
HANG = "CADP_HANG"
PANIC = "CADP_PANIC"


class FakePanic(BaseException):
    """Stands in for pyo3's PanicException, which derives from BaseException too."""


def decode_or_crash(payload: Dataset) -> np.ndarray:
    """Abort, hang or panic on a marker; otherwise decode."""
    marker = str(payload.get("LossyImageCompressionMethod", ""))
    if marker == CRASH:
        os.abort()  # SIGABRT, as a native decoder's failed assertion would
    if marker == HANG:
        time.sleep(3600)
    if marker == PANIC:
        raise FakePanic("decoder panicked")
    return payload.pixel_array
