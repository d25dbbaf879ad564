"""``cadp_med.__all__`` lists exactly the public names of the package (httpx style)."""

from __future__ import annotations

import types

import cadp_med


def test_all_matches_public_namespace() -> None:
    exported = set(cadp_med.__all__)
    # dir() includes the names loaded on first use (the pipeline's).
    public = {
        name
        for name in dir(cadp_med)
        if not name.startswith("_") and not isinstance(getattr(cadp_med, name), types.ModuleType)
    }
    # Names defined by ``from __future__ import annotations`` and the typing import.
    public -= {"annotations", "Any", "TYPE_CHECKING"}
    assert exported - {"__version__"} == public
    assert len(cadp_med.__all__) == len(exported), "duplicates in __all__"


def test_exported_members_come_from_cadp_med() -> None:
    for name in cadp_med.__all__:
        if name == "__version__":
            continue
        member = getattr(cadp_med, name)
        assert member.__module__.startswith("cadp_med."), name
