"""Clean the PHI out of BIDS JSON sidecars and NIfTI headers.

The sidecar rule is data: ``data/bids_phi_keys.json`` (how it was made is in
``data/README.md``). A key is kept when it is on the ``keep`` list (acquisition
parameters such as ``EchoTime``, a duration that merely ends in "Time"); removed when it
is on the ``remove`` list or ends with a ``remove_suffixes`` entry (UID, Date, DateTime,
Time, Name, ID, ...); removed when it is a patient characteristic, unless the profile
retains those (PS3.15 E.3.4); kept otherwise.

The NIfTI-1/2 header has four free-text fields that converters fill with names, dates
and protocol text: ``descrip``, ``aux_file``, ``db_name`` (NIfTI-1 only) and
``intent_name``. They are cleared. Header extensions (AFNI, DICOM, JSON extensions can
carry a whole DICOM header) are dropped.
"""

from __future__ import annotations

import functools
import json
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cadp_med.errors import ConfigError

#: NIfTI header fields that hold free text, cleared on every output.
PHI_HEADER_FIELDS = ("descrip", "aux_file", "db_name", "intent_name")


@dataclass(frozen=True)
class SidecarRules:
    """The sidecar rule of ``data/bids_phi_keys.json`` (see the module doc)."""

    remove: frozenset[str]
    remove_suffixes: tuple[str, ...]
    patient_characteristics: frozenset[str]
    keep: frozenset[str]

    def __post_init__(self) -> None:
        overlap = self.keep & (self.remove | self.patient_characteristics)
        if overlap:
            raise ConfigError("a sidecar key cannot be both kept and removed")

    def removes(self, key: str, *, retain_patient_characteristics: bool = False) -> bool:
        """True when ``key`` must be removed from a sidecar."""
        if key in self.keep:
            return False
        if key in self.patient_characteristics:
            return not retain_patient_characteristics
        if key in self.remove:
            return True
        lowered = key.lower()
        return any(lowered.endswith(suffix) for suffix in self.remove_suffixes)


@functools.lru_cache(maxsize=1)
def sidecar_rules() -> SidecarRules:
    """Load the packaged sidecar rule (cached)."""
    raw = pkgutil.get_data("cadp_med.nifti", "data/bids_phi_keys.json")
    if raw is None:  # pragma: no cover - a broken installation
        raise ConfigError("the packaged BIDS PHI key list is missing")
    data = json.loads(raw.decode("utf-8"))
    return SidecarRules(
        remove=frozenset(data["remove"]),
        remove_suffixes=tuple(s.lower() for s in data["remove_suffixes"]),
        patient_characteristics=frozenset(data["patient_characteristics"]),
        keep=frozenset(data["keep"]),
    )


def clean_sidecar(
    sidecar: Mapping[str, Any], *, retain_patient_characteristics: bool = False
) -> tuple[dict[str, Any], int]:
    """Return a copy of ``sidecar`` without its PHI keys, and how many were removed.

    Nested objects (and objects inside lists) are cleaned by the same rule, since some
    converters group DICOM fields in sub-objects.
    """
    rules = sidecar_rules()
    removed = 0

    def clean(value: Any) -> Any:
        nonlocal removed
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if rules.removes(
                    str(key), retain_patient_characteristics=retain_patient_characteristics
                ):
                    removed += 1
                    continue
                out[str(key)] = clean(item)
            return out
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return clean(sidecar), removed


def clean_header(header: Any) -> Any:
    """Return a copy of a nibabel NIfTI header with its free-text fields cleared.

    Extensions are dropped: they can hold a DICOM header or any converter's notes.
    """
    cleaned = header.copy()
    for name in PHI_HEADER_FIELDS:
        if name in cleaned:
            cleaned[name] = b""
    extensions = getattr(cleaned, "extensions", None)
    if extensions is not None:
        extensions.clear()
    return cleaned
