"""The pixel stage of a batch: a picklable factory, and its settings for the manifest.

Workers (pool processes, Ray actors) call the factory once, so the cINN model is
loaded once per worker, not once per study. The settings are stored in the manifest's
run configuration so that ``batch retry`` rebuilds the same stage (same epsilon, seed
and model) without the operator repeating them.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["factory_from_config", "stage_factory"]


def stage_factory(stage: object) -> tuple[Callable[[], object], dict[str, Any]]:
    """Return a factory that builds a stage like ``stage``, and its JSON settings.

    ``stage`` is a :class:`cadp_med.pixels.PixelStage` (its ``options`` dataclass is
    what the factory rebuilds it from).
    """
    options = stage.options  # type: ignore[attr-defined]
    settings = {
        name: str(value) if isinstance(value, Path) else value
        for name, value in dataclasses.asdict(options).items()
    }
    return functools.partial(type(stage), options), settings


def factory_from_config(settings: dict[str, Any]) -> Callable[[], object]:
    """Rebuild the stage factory from the settings stored in a manifest."""
    from cadp_med.pixels import PixelOptions, PixelStage

    values = dict(settings)
    if values.get("model") is not None:
        values["model"] = Path(values["model"])
    return functools.partial(PixelStage, PixelOptions(**values))
