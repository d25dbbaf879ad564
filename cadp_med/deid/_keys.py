"""The pseudonymization key: where it comes from and how it is guarded.

Pseudonyms are keyed hashes (HMAC-SHA256) because plain hashes of identifiers are open to
dictionary attacks (PS3.15 E.1.1, note on hashing). The key never appears in a log line.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cadp_med.errors import ConfigError

logger = logging.getLogger(__name__)
KEY_ENV = "CADP_MED_KEY"
NO_KEY_MESSAGE = (
    "no pseudonymization key: set CADP_MED_KEY or pass --key-file, or --ephemeral-key for a "
    "one-off run whose pseudonyms can never be linked again"
)


def load_key(key_file: Path | None = None, *, ephemeral: bool = False) -> bytes:
    """Return the pseudonymization key.

    Parameters
    ----------
    key_file
        A file whose bytes are the key. Takes precedence over the environment.
    ephemeral
        Without a key file or ``CADP_MED_KEY``, draw 32 random bytes: pseudonyms from such a
        run can never be linked to another run.

    Raises
    ------
    ConfigError
        When no key is available, or the key file cannot be read or is empty.
    """
    if key_file is not None:
        path = Path(key_file)
        try:
            mode = path.stat().st_mode
            key = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {path.name}: {exc.strerror}") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "key file %s is readable by group or others; restrict it with chmod 600",
                path.name,
            )
        if not key.strip():
            raise ConfigError(f"key file {path.name} is empty")
        return key
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode("utf-8")
    if ephemeral:
        logger.warning(
            "using an ephemeral pseudonymization key: this run's pseudonyms cannot be "
            "linked to any other run"
        )
        return os.urandom(32)
    raise ConfigError(NO_KEY_MESSAGE)
