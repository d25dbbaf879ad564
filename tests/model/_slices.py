"""Real slices for model and training tests: pydicom's CT_small and MR_small pixels."""

from __future__ import annotations

import functools

import numpy as np
import pydicom
import torch
from pydicom.data import get_testdata_file


@functools.lru_cache(maxsize=4)
def _pixels(name: str) -> np.ndarray:
    ds = pydicom.dcmread(get_testdata_file(name))
    arr = ds.pixel_array.astype(np.float32)
    return (arr - arr.min()) / (arr.max() - arr.min())


def real_slice(name: str, size: int) -> torch.Tensor:
    """``[1, 1, size, size]`` slice in [0, 1] resized with torch interpolate."""
    x = torch.from_numpy(_pixels(name))[None, None]
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.clamp(0.0, 1.0)


def real_batch(size: int) -> tuple[torch.Tensor, list[dict[str, object]]]:
    """The CT and the MR slice with their metadata."""
    x = torch.cat([real_slice("CT_small.dcm", size), real_slice("MR_small.dcm", size)])
    meta = [
        {"modality": "CT", "plane": "axial", "slice_pos": 0.5},
        {"modality": "MR", "contrast": None, "plane": "axial", "slice_pos": 0.5},
    ]
    return x, meta


def derived_set(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[dict[str, object]]]:
    """``n`` real-derived slices: random crops (rescaled), flips and gamma of CT/MR pixels."""
    rng = np.random.default_rng(seed)
    xs, meta = [], []
    for i in range(n):
        name = ("CT_small.dcm", "MR_small.dcm")[i % 2]
        arr = _pixels(name)
        side = arr.shape[0]
        crop = int(rng.integers(side * 3 // 4, side + 1))
        top, left = rng.integers(0, side - crop + 1, size=2)
        patch = torch.from_numpy(arr[top : top + crop, left : left + crop].copy())[None, None]
        patch = torch.nn.functional.interpolate(patch, size=(size, size), mode="bilinear")
        patch = patch.clamp(0, 1) ** float(rng.uniform(0.7, 1.4))
        if rng.random() < 0.5:
            patch = patch.flip(-1)
        xs.append(patch[0].numpy())
        meta.append(
            {
                "modality": "CT" if i % 2 == 0 else "MR",
                "plane": "axial",
                "slice_pos": float(rng.random()),
            }
        )
    return np.stack(xs).astype(np.float32), meta
