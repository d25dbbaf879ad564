"""The Series Instance UID of a privatized series.

A privatized series holds new pixels, so it gets a UID different from the header-only
pseudonym of the same series: the keyed pseudonym of the header-only series UID with the
salt ``cadp-privatized``. The same key gives the same UID, so reruns and resumed runs land
in the same place; objects that reference the series (SEG, SR, presentation states) are
given the same override, so their references point at the privatized series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SALT = "cadp-privatized"


def privatized_series_uid(key: bytes, pseudonymous_series_uid: str) -> str:
    """The privatized series UID derived from the header-only series pseudonym."""
    from cadp_med.deid._pseudo import pseudonym_uid

    return pseudonym_uid(key, f"{SALT}:{pseudonymous_series_uid}")


def series_uid_overrides(
    key: bytes,
    series_uids: Iterable[str],
    imported: Mapping[str, str] | None = None,
    *,
    retain_uids: bool = False,
) -> dict[str, str]:
    """Original series UID → privatized UID, for the Deidentifier's ``uid_map``.

    A UID already in ``imported`` (a mapping CSV of an earlier run) is kept as given, so
    a mapping exported by a privatizing run is reused unchanged.
    """
    from cadp_med.deid._pseudo import pseudonym_uid

    overrides: dict[str, str] = {}
    for uid in series_uids:
        if not uid:
            continue
        if imported and uid in imported:
            overrides[uid] = imported[uid]
            continue
        base = uid if retain_uids else pseudonym_uid(key, uid)
        overrides[uid] = privatized_series_uid(key, base)
    return overrides
