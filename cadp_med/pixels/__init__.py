"""Pixel privatization for ``cadp-med anonymize``: the CADP model applied to every image.

Public API::

    PixelOptions              mechanism, budget, model, grid (validated on construction)
    PixelStage                the ``pixel_stage`` of :class:`cadp_med.AnonymizeOptions`
    index_headers, StudyIndex header-only pre-pass (series positions, counts, windows)
    privatized_series_uid     keyed Series Instance UID of a privatized series
    read_parameters           the JSON of the ``CADP_MED 1`` private block
    DEFAULT_MODEL_PATH        the packaged model
"""

from __future__ import annotations

from cadp_med.pixels._options import DEFAULT_MODEL_PATH, PixelOptions
from cadp_med.pixels._prepass import SeriesInfo, StudyIndex, index_headers
from cadp_med.pixels._provenance import (
    BLANK_METHOD_CODES,
    PIXEL_METHOD_CODES,
    PRIVATE_CREATOR,
    read_parameters,
)
from cadp_med.pixels._stage import PixelStage
from cadp_med.pixels._uids import privatized_series_uid, series_uid_overrides

__all__ = [
    "BLANK_METHOD_CODES",
    "DEFAULT_MODEL_PATH",
    "PIXEL_METHOD_CODES",
    "PRIVATE_CREATOR",
    "PixelOptions",
    "PixelStage",
    "SeriesInfo",
    "StudyIndex",
    "index_headers",
    "privatized_series_uid",
    "read_parameters",
    "series_uid_overrides",
]
