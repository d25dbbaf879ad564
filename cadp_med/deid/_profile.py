"""De-identification profiles: the Basic Profile plus its options (PS3.15 E.2, E.3).

An option changes exactly the actions its column of Table E.1-1 gives; those columns are
data (``annex_e_2026c.json``), not code. This module validates option sets and looks up the
CID 7050 codes that describe them (PS3.16 CID 7050).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from cadp_med.deid._tables import cid7050
from cadp_med.errors import ConfigError


class Option(str, Enum):  # noqa: UP042 - the contract other packages code against
    """The options of the Basic Application Level Confidentiality Profile (PS3.15 E.3)."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain-longitudinal-full-dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean-structured-content"
    CLEAN_GRAPHICS = "clean-graphics"


# CID 7050 code of each option (PS3.16); the Basic Profile itself is 113100.
OPTION_CODES: dict[Option, str] = {
    Option.CLEAN_GRAPHICS: "113103",
    Option.CLEAN_STRUCTURED_CONTENT: "113104",
    Option.CLEAN_DESCRIPTORS: "113105",
    Option.RETAIN_LONGITUDINAL_FULL_DATES: "113106",
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: "113107",
    Option.RETAIN_PATIENT_CHARACTERISTICS: "113108",
    Option.RETAIN_DEVICE_IDENTITY: "113109",
    Option.RETAIN_UIDS: "113110",
    Option.RETAIN_SAFE_PRIVATE: "113111",
    Option.RETAIN_INSTITUTION_IDENTITY: "113112",
}
BASIC_PROFILE_CODE = "113100"


def to_option(value: Option | str) -> Option:
    """Convert a string to an :class:`Option`, suggesting the closest name on a typo."""
    if isinstance(value, Option):
        return value
    text = str(value).strip().lower().replace("_", "-")
    try:
        return Option(text)
    except ValueError:
        choices = [o.value for o in Option]
        close = difflib.get_close_matches(text, choices, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"unknown de-identification option {value!r}.{hint} Valid: {', '.join(choices)}"
        ) from None


@dataclass(frozen=True)
class Profile:
    """A de-identification profile: the Basic Profile plus a set of options.

    Parameters
    ----------
    options
        Options of PS3.15 E.3 applied on top of the Basic Profile.
    keep_overlays
        Keep overlay planes (60xx), which Table E.1-1 removes; their comments still go.
    keep_curves
        Keep curve data (50xx), which Table E.1-1 removes.

    Raises
    ------
    ConfigError
        When both Retain Longitudinal options are given: full dates and modified dates
        contradict each other (PS3.15 E.3.6).
    """

    options: frozenset[Option] = field(default_factory=frozenset)
    keep_overlays: bool = False
    keep_curves: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", frozenset(to_option(o) for o in self.options))
        both = {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        if both <= self.options:
            raise ConfigError(
                "options retain-longitudinal-full-dates and retain-longitudinal-modified-dates "
                "conflict: choose one"
            )

    @classmethod
    def from_options(
        cls,
        options: Iterable[Option | str],
        *,
        keep_overlays: bool = False,
        keep_curves: bool = False,
    ) -> Profile:
        """Build a profile from option enums or their string values."""
        return cls(frozenset(to_option(o) for o in options), keep_overlays, keep_curves)

    @classmethod
    def from_file(cls, path: Path) -> Profile:
        """Read a profile from TOML (``.toml``) or YAML (``.yaml``/``.yml``).

        The file holds ``options = [...]``, ``keep_overlays`` and ``keep_curves``.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read profile file {path.name}: {exc.strerror}") from exc
        data: Any
        if path.suffix.lower() == ".toml":
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"profile file {path.name} is not valid TOML: {exc}") from exc
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"profile file {path.name} is not valid YAML") from exc
        else:
            raise ConfigError(f"profile file {path.name}: use .toml, .yaml or .yml")
        if not isinstance(data, dict):
            raise ConfigError(f"profile file {path.name} must hold a table of fields")
        unknown = set(data) - {"options", "keep_overlays", "keep_curves"}
        if unknown:
            raise ConfigError(f"profile file {path.name}: unknown fields {sorted(unknown)}")
        options = data.get("options", [])
        if not isinstance(options, list):
            raise ConfigError(f"profile file {path.name}: options must be a list")
        return cls.from_options(
            options,
            keep_overlays=bool(data.get("keep_overlays", False)),
            keep_curves=bool(data.get("keep_curves", False)),
        )

    def method_codes(self) -> list[tuple[str, str]]:
        """CID 7050 ``(code, meaning)`` pairs: 113100, then each option's code, sorted."""
        meanings = cid7050()
        codes = [BASIC_PROFILE_CODE, *sorted(OPTION_CODES[o] for o in self.options)]
        return [(code, meanings[code]) for code in codes]

    def longitudinal_value(self) -> str:
        """Value of Longitudinal Temporal Information Modified (0028,0303), PS3.3 C.7.1.1."""
        if Option.RETAIN_LONGITUDINAL_FULL_DATES in self.options:
            return "UNMODIFIED"
        if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in self.options:
            return "MODIFIED"
        return "REMOVED"
