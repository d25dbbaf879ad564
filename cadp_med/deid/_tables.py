"""Lazy access to the generated PS3.15 Annex E tables in ``cadp_med/deid/data``.

The tables are data, made by ``pipelines/generate_annex_e.py`` (see ``data/README.md``).
They are read once, on first use, with :mod:`importlib.resources` and cached.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

EDITION = "2026c"
VALID_BASIC_CODES = frozenset(
    {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
)
VALID_OPTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U"})


def _load(name: str) -> Any:
    text = (
        resources.files("cadp_med.deid").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    )
    return json.loads(text)


@lru_cache(maxsize=1)
def annex_e_table() -> dict[str, Any]:
    """Return Table E.1-1 (PS3.15 E.1) of edition :data:`EDITION` as parsed JSON."""
    return _load(f"annex_e_{EDITION}.json")


@lru_cache(maxsize=1)
def cid7050() -> dict[str, str]:
    """Return PS3.16 CID 7050 as ``{code: meaning}``."""
    return {item["code"]: item["meaning"] for item in _load("cid7050.json")["codes"]}


@lru_cache(maxsize=1)
def safe_private() -> frozenset[tuple[str, int, int]]:
    """Return the Retain Safe Private list (PS3.15 E.3.10) as ``(creator, group, element)``.

    ``element`` is the low byte of the private element (the ``xx`` of ``(gggg,xxEE)``).
    """
    entries = _load("safe_private.json")["entries"]
    return frozenset(
        (e["private_creator"], int(e["group"], 16), int(e["element"], 16)) for e in entries
    )


def parse_tag(text: str) -> int:
    """Turn ``"(gggg,eeee)"`` into an int; masks (``x``) are not accepted here."""
    return int(text[1:5] + text[6:10], 16)
