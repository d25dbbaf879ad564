"""cadp-med: make medical imaging studies safe to share.

The public API is listed in ``__all__``; everything else is private.
"""

from __future__ import annotations

import logging

from cadp_med._pipeline import AnonymizeOptions, RunSummary, anonymize_study
from cadp_med._version import __version__
from cadp_med.errors import (
    CadpError,
    ConfigError,
    DeidError,
    InputError,
    ModelError,
    NetworkError,
    PrivacyError,
)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AnonymizeOptions",
    "CadpError",
    "ConfigError",
    "DeidError",
    "InputError",
    "ModelError",
    "NetworkError",
    "PrivacyError",
    "RunSummary",
    "__version__",
    "anonymize_study",
]
