"""Header-only pre-pass: what the pixel stage must know about a series before any slice.

``slice_pos`` is a slice's rank among *all* positions of its series, a study budget is
split over *all* slices of the study, and an MR-style percentile window is computed per
series: none of these can be known from one file. The pre-pass reads headers only
(``stop_before_pixels``), so it costs little memory for a study of any size. It keeps
original UIDs in memory only; nothing of it is logged or written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cadp_med.io.read import is_image_storage

# Instances whose pixels are read to fit a series' percentile window (evenly spaced).
WINDOW_SAMPLE = 8


@dataclass
class SeriesInfo:
    """What the pre-pass learned about one series (original UIDs, in memory only)."""

    study_uid: str
    positions: list[float] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    n_slices: int = 0
    has_images: bool = False

    def sample_paths(self, limit: int = WINDOW_SAMPLE) -> list[Path]:
        """Up to ``limit`` evenly spaced instance paths, in a stable order."""
        ordered = sorted(self.paths)
        if len(ordered) <= limit:
            return ordered
        step = (len(ordered) - 1) / (limit - 1)
        return [ordered[round(i * step)] for i in range(limit)]


@dataclass
class StudyIndex:
    """Series and study facts from the pre-pass, keyed by original UIDs."""

    series: dict[str, SeriesInfo] = field(default_factory=dict)
    study_slices: dict[str, int] = field(default_factory=dict)
    seen_instances: set[str] = field(default_factory=set)

    def image_series(self) -> list[str]:
        """Original Series Instance UIDs of series that hold image pixel data."""
        return [uid for uid, info in self.series.items() if info.has_images]


def _frames(ds: object) -> int:
    try:
        return max(1, int(getattr(ds, "NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def index_headers(paths: Iterable[Path]) -> StudyIndex:
    """Read every header once and index the image series.

    Files that do not parse are left out here; the main pass quarantines them.
    """
    import pydicom

    from cadp_med.model._derive import position_along_normal

    index = StudyIndex()
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            series_uid = str(ds.get("SeriesInstanceUID", "") or "")
            study_uid = str(ds.get("StudyInstanceUID", "") or "")
            sop_class = str(ds.get("SOPClassUID", "") or "")
            position = position_along_normal(ds)
            n_frames = _frames(ds)
            sop_uid = str(ds.get("SOPInstanceUID", "") or "")
        except Exception:  # the main pass reports unreadable files
            continue
        info = index.series.setdefault(series_uid, SeriesInfo(study_uid=study_uid))
        if not is_image_storage(sop_class) or int(ds.get("Rows", 0) or 0) == 0:
            continue
        info.has_images = True
        if sop_uid and sop_uid in index.seen_instances:
            continue  # one instance in several files (e.g. transfer syntaxes): one output
        index.seen_instances.add(sop_uid)
        info.paths.append(Path(path))
        info.n_slices += n_frames
        if position is not None:
            info.positions.append(position)
        index.study_slices[study_uid] = index.study_slices.get(study_uid, 0) + n_frames
    return index
