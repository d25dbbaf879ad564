"""cadp-med: make medical imaging studies safe to share.

The public API is listed in ``__all__``; everything else is private. The pipeline's names
are loaded on first use, so that ``import cadp_med.errors`` (or the command line's entry
point, which decides what a run needs before pydicom is imported) stays light.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from cadp_med._pipeline import AnonymizeOptions, RunSummary, anonymize_study

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY = {
    "AnonymizeOptions": "cadp_med._pipeline",
    "RunSummary": "cadp_med._pipeline",
    "anonymize_study": "cadp_med._pipeline",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cadp_med' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
