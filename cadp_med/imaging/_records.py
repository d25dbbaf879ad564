"""Slice containers: one 2D slice with its labels, and a model-ready set of slices.

A :class:`SliceRecord` holds pixels in modality units (HU for CT) and is what the readers
(:mod:`cadp_med.imaging._nifti`, :mod:`cadp_med.imaging._dicom`) produce. A :class:`SliceSet`
holds normalized, resampled slices ready for the cINN, together with the normalization
windows needed to map model output back to modality units.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadp_med._types import PathLike
from cadp_med.errors import InputError

#: Condition vocabulary for ``metadata["contrast"]`` (what the cINN is conditioned on).
CONTRASTS: tuple[str, ...] = ("CT", "MR-T1", "MR-T2", "MR-PD", "MR-DWI", "MR-EPI", "MR-other")
#: Vocabulary for ``metadata["plane"]``; "unknown" when a DICOM object has no orientation.
PLANES: tuple[str, ...] = ("sagittal", "coronal", "axial", "oblique", "unknown")

# 16-bit quantization keeps a 3,400-slice 128x128 set at a few tens of MB while the error
# (<= 0.5/65535 per pixel) stays far below any intensity difference the model can resolve.
_QUANT_LEVELS = 65535
_FORMAT_VERSION = 1


@dataclass
class SliceRecord:
    """One 2D slice in modality units with its labels.

    Attributes
    ----------
    pixels : numpy.ndarray
        float32 array of shape ``[H, W]`` in modality units (HU for CT after the modality
        LUT). Rows and columns follow the radiological display convention of DICOM.
    spacing : tuple of float
        Pixel spacing in mm as ``(row spacing, column spacing)``, the order of DICOM
        PixelSpacing (0028,0030).
    metadata : dict
        Labels. Always has ``modality`` (DICOM code such as "CT", "MR"), ``contrast`` (one
        of :data:`CONTRASTS` for CT/MR, else the modality code), ``plane`` (one of
        :data:`PLANES`), ``slice_pos`` (normalized position in [0, 1] along the
        right/anterior/superior direction of the slicing axis), ``species`` and ``source``
        (a short id, never a file path or a header value). Readers may add more keys.
    """

    pixels: np.ndarray
    spacing: tuple[float, float]
    metadata: dict[str, Any]

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels, dtype=np.float32)
        if pixels.ndim != 2:
            raise InputError(f"a slice must be 2D, got {pixels.ndim} dimensions")
        self.pixels = pixels
        self.spacing = (float(self.spacing[0]), float(self.spacing[1]))


@dataclass
class SliceSet:
    """Model-ready slices: normalized to [0, 1] and resampled to a square grid.

    Attributes
    ----------
    x : numpy.ndarray
        float32 array of shape ``[N, 1, S, S]`` with values in [0, 1].
    metadata : list of dict
        One dict per slice: the :class:`SliceRecord` labels plus ``series`` (the id of the
        volume or series whose window normalized it), ``grid`` (the
        :class:`~cadp_med.imaging.GridInfo` as a dict) and, from the training-set builder,
        ``split`` ("train" or "heldout").
    normalization : dict
        ``{"spec": Normalizer.to_spec(), "windows": {series id: window}}``. The windows are
        derived from the images and are released unnoised with the model card (two numbers
        per series), like the conditions.
    provenance : dict
        Free-form build information (sources, split rule, sizes); empty by default.
    """

    x: np.ndarray
    metadata: list[dict[str, Any]]
    normalization: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = np.asarray(self.x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
            raise InputError(f"SliceSet.x must have shape [N, 1, S, S], got {x.shape}")
        if len(self.metadata) != x.shape[0]:
            raise InputError(f"{x.shape[0]} slices but {len(self.metadata)} metadata entries")
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def size(self) -> int:
        """Side length ``S`` of the square model grid."""
        return int(self.x.shape[-1])

    def save(self, path: PathLike) -> Path:
        """Write a compressed ``.npz``: pixels as uint16 (steps of 1/65535), labels as JSON.

        Parameters
        ----------
        path : str or os.PathLike
            Target file; parent folders are created. Written atomically (temp + rename).

        Returns
        -------
        pathlib.Path
            The written path.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        quantized = np.rint(np.clip(self.x, 0.0, 1.0) * _QUANT_LEVELS).astype(np.uint16)
        header = {
            "format_version": _FORMAT_VERSION,
            "quantization": f"uint16, value = q / {_QUANT_LEVELS}",
            "metadata": self.metadata,
            "normalization": self.normalization,
            "provenance": self.provenance,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            x=quantized,
            header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
        )
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: PathLike) -> SliceSet:
        """Read a file written by :meth:`save`.

        Raises
        ------
        InputError
            If the file is not a SliceSet archive.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as archive:
                quantized = archive["x"]
                header = json.loads(archive["header"].tobytes().decode("utf-8"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise InputError(f"not a SliceSet archive: {type(exc).__name__}") from exc
        if header.get("format_version") != _FORMAT_VERSION:
            raise InputError("unsupported SliceSet format version")
        x = quantized.astype(np.float32) / np.float32(_QUANT_LEVELS)
        return cls(
            x=x,
            metadata=header["metadata"],
            normalization=header["normalization"],
            provenance=header.get("provenance", {}),
        )
