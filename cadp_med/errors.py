"""The one exception tree of cadp-med.

::

    CadpError (Exception)
     ├── InputError (ValueError)       a file that must be quarantined: corrupt, truncated,
     │                                 unsupported, over a resource limit
     ├── ConfigError (ValueError)      bad options, profile, key or paths; a usage error
     ├── DeidError (RuntimeError)      de-identification could not be applied safely
     ├── PrivacyError (ValueError)     an invalid privacy parameter or accounting request
     ├── ModelError (RuntimeError)     a model that cannot be built, loaded or applied,
     │                                 or metadata it cannot encode
     └── NetworkError (ConnectionError) DICOM network failures

Messages must never quote a header value: name tag paths, VRs and reasons only.
"""

from __future__ import annotations


class CadpError(Exception):
    """Base class of every error raised on purpose by cadp-med."""


class InputError(CadpError, ValueError):
    """An input file that cannot be processed and must be quarantined."""


class ConfigError(CadpError, ValueError):
    """Invalid configuration: options, profile, key material or paths."""


class DeidError(CadpError, RuntimeError):
    """De-identification could not be applied safely to a dataset."""


class PrivacyError(CadpError, ValueError):
    """An invalid privacy parameter, mechanism or accounting request."""


class ModelError(CadpError, RuntimeError):
    """A model that cannot be built, loaded or applied to the given metadata."""


class NetworkError(CadpError, ConnectionError):
    """A DICOM network operation failed."""


__all__ = [
    "CadpError",
    "ConfigError",
    "DeidError",
    "InputError",
    "ModelError",
    "NetworkError",
    "PrivacyError",
]
