"""The privatize pixel stage: decode, condition, normalise, privatize, restore, encode.

Per image instance (all frames of a multi-frame instance, in batches of
``options.batch_size``)::

    decode + Modality LUT (+ BT.601 luminance for colour)   cadp_med.imaging
    conditions from the header (slice_pos from the pre-pass) cadp_med.model
    window per series → [0, 1] (MONOCHROME1 flipped)        cadp_med.imaging.Normalizer
    pad + resample to the model grid                        cadp_med.imaging.to_model_grid
    encode, clip, noise, decode with the same conditions    cadp_med.model + privacy
    back to the original matrix, modality units, stored type ``_codec``

The stage is picklable without its model (each worker process loads it on first use).
"""

from __future__ import annotations

import hashlib
import logging
import math
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from cadp_med.errors import ConfigError
from cadp_med.pixels._codec import apply_pixels, encode_frames, is_colour, lossy_history
from cadp_med.pixels._options import PixelOptions
from cadp_med.pixels._prepass import StudyIndex
from cadp_med.pixels._provenance import add_provenance

logger = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
# Pixels read per sampled slice when fitting a percentile window (every n-th pixel).
_WINDOW_STRIDE = 4


class PixelStage:
    """``stage(original, deid_result) -> Dataset`` for ``AnonymizeOptions.pixel_stage``.

    Parameters
    ----------
    options : PixelOptions
        Mechanism, budget, model and output grid.
    index : StudyIndex, optional
        The header pre-pass (:func:`cadp_med.pixels.index_headers`); the pipeline sets it
        through :meth:`prepare`. Needed for ``slice_pos``, study budgets and windows.
    """

    def __init__(self, options: PixelOptions, index: StudyIndex | None = None) -> None:
        from cadp_med.model import read_model_card

        self.options = options
        path = options.model_path
        if not path.is_file():
            raise ConfigError(
                "pixel privatization needs a model: no model file at --model (or the "
                "packaged default); use --pixels keep for header-only de-identification"
            )
        self.card = read_model_card(path)
        self.index = index or StudyIndex()
        self._model: Any = None
        self._schema: Any = None
        self._windows: dict[str, dict[str, Any]] = {}
        self._base_config = self._mechanism(self.card)

    # -- set-up -------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # each worker loads its own copy
        return state

    def prepare(self, paths: list[Any]) -> StudyIndex:
        """Run the header pre-pass over ``paths`` and keep its index."""
        from cadp_med.pixels._prepass import index_headers

        self.index = index_headers(paths)
        return self.index

    def uid_overrides(
        self, key: bytes, imported: Any = None, *, retain_uids: bool = False
    ) -> dict[str, str]:
        """Original → privatized Series Instance UIDs of the indexed image series."""
        from cadp_med.pixels._uids import series_uid_overrides

        return series_uid_overrides(
            key, self.index.image_series(), imported, retain_uids=retain_uids
        )

    def add_series(self, series_uid: str, study_uid: str, positions: list[float]) -> None:
        """Index a series that has no DICOM files to pre-read (the slices of a NIfTI volume).

        ``positions`` are the slices' positions along the normal; ``slice_pos`` and a
        study budget count them as the pre-pass counts the instances of a DICOM series.
        """
        from cadp_med.pixels._prepass import SeriesInfo

        info = SeriesInfo(study_uid=study_uid, positions=list(positions), has_images=True)
        info.n_slices = len(positions)
        self.index.series[series_uid] = info
        self.index.study_slices[study_uid] = (
            self.index.study_slices.get(study_uid, 0) + info.n_slices
        )

    def set_window(self, series_uid: str, samples: np.ndarray, modality: str | None) -> None:
        """Fit the intensity window of a series from ``samples`` of all its voxels."""
        self._load()
        self._windows[series_uid] = self._normalizer.fit(samples, modality=modality)

    def _mechanism(self, card: dict[str, Any]) -> Any:
        from cadp_med.privacy import MechanismConfig

        opts = self.options
        norm = "clip_l1" if opts.mechanism == "laplace" else "clip_l2"
        if opts.release == "coarsest":
            rel = card["latent"]["default_release"]
            release: tuple[int, int] | None = (int(rel["start"]), int(rel["stop"]))
            defaults = card.get("privacy_defaults", {})
        else:
            release = None
            defaults = card.get("privacy_defaults", {}).get("full", {})
        clip = opts.clip if opts.clip is not None else defaults.get(norm)
        if clip is None:
            raise ConfigError("the model card has no default clip for this norm: pass --clip")
        return MechanismConfig(
            kind=opts.mechanism,
            epsilon=float(opts.epsilon),
            delta=opts.delta,
            clip=float(clip),
            release=release,
            postprocess=opts.postprocess,
            temperature=float(opts.temperature),
        )

    def _load(self) -> None:
        if self._model is not None:
            return
        from cadp_med.model import ConditionSchema, load_model
        from cadp_med.training.trainer import resolve_device

        device = resolve_device(self.options.device)
        self._model, _ = load_model(self.options.model_path, device=device)
        self._device = device
        self._schema = ConditionSchema.from_dict(self.card["conditions"])
        self._normalizer = _normalizer(self.card)

    # -- refusals -----------------------------------------------------------------------
    def refuse_reason(self, original: Dataset) -> str | None:
        """A reason category when this object must not be processed, else None."""
        if self.options.output_grid != "model":
            return None
        if str(original.get("SOPClassUID", "")) == SEG_SOP_CLASS:
            # Its masks are on the original grid; the images would be on the model grid.
            return "seg-on-model-grid"
        if "PerFrameFunctionalGroupsSequence" in original:
            return "functional-groups-on-model-grid"
        return None

    # -- per series ---------------------------------------------------------------------
    def _window(self, series_uid: str, ds: Dataset, records: list[Any]) -> dict[str, Any]:
        window = self._windows.get(series_uid)
        if window is not None:
            return window
        modality = records[0].metadata.get("contrast") or records[0].metadata.get("modality")
        info = self.index.series.get(series_uid)
        samples: list[np.ndarray] = []
        paths = info.sample_paths() if info is not None else []
        for path in paths:
            samples.extend(_sample_pixels(path))
        if not samples:  # a one-instance series, or no pre-pass: this instance itself
            samples = [np.ravel(r.pixels)[::_WINDOW_STRIDE] for r in records]
        window = self._normalizer.fit(np.concatenate(samples), modality=modality)
        self._windows[series_uid] = window
        return window

    def _config_for(self, study_uid: str) -> tuple[Any, int]:
        """(per-slice config, slices of the study) under the chosen budget."""
        from cadp_med.privacy import split_budget

        n_study = self.index.study_slices.get(study_uid, 0)
        if self.options.budget == "study":
            if n_study < 1:
                raise ConfigError("a study budget needs the header pre-pass")
            config = split_budget(
                float(self.options.epsilon), n_study, self.options.delta, base=self._base_config
            )
            return config, n_study
        return self._base_config, max(n_study, 1)

    # -- the stage ----------------------------------------------------------------------
    def __call__(self, original: Dataset, deid_result: Any) -> Dataset:
        """Privatize the pixels of ``original`` into ``deid_result.dataset``."""
        from cadp_med.imaging import slices_from_dicom_series
        from cadp_med.model import metadata_from_dataset

        self._load()
        out: Dataset = deid_result.dataset
        series_uid = str(original.get("SeriesInstanceUID", ""))
        info = self.index.series.get(series_uid)
        records = sorted(
            slices_from_dicom_series([original]), key=lambda r: int(r.metadata["frame"])
        )
        colour = is_colour(original)
        monochrome1 = str(original.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
        window = self._window(series_uid, original, records)
        base_meta = metadata_from_dataset(
            original,
            series_positions=info.positions if info is not None else None,
            schema=self._schema,
        )
        metas = []
        for record in records:
            meta = dict(base_meta)
            if len(records) > 1:  # frames: their own plane and rank within the object
                if record.metadata.get("plane") not in (None, "unknown"):
                    meta["plane"] = record.metadata["plane"]
                meta["slice_pos"] = record.metadata["slice_pos"]
            metas.append(meta)
        config, n_study = self._config_for(str(original.get("StudyInstanceUID", "")))
        privatizer = self._privatizer(config, deid_result.pseudonyms.sop_uid)
        outputs, grids = self._run(records, metas, window, monochrome1, privatizer)
        data, header = encode_frames(outputs, original, colour=colour)
        if self.options.output_grid == "model":
            header.update(_model_grid_geometry(original, grids[0]))
        apply_pixels(out, data, header)
        lossy = lossy_history(original, _syntax(original))
        if lossy is not None:
            for keyword, value in lossy.items():
                setattr(out, keyword, value)
        add_provenance(out, self._parameters(config, n_study, window), self.options.label())
        return out

    def _privatizer(self, config: Any, sop_pseudonym: str) -> Any:
        import torch

        from cadp_med.privacy import LatentPrivatizer

        if self.options.seed is None:
            return LatentPrivatizer(config)  # fresh OS entropy per instance
        # Audits: the noise of an instance depends only on the seed and its pseudonymous
        # SOP Instance UID, so a resumed run reproduces the same pixels.
        digest = hashlib.sha256(f"{self.options.seed}:{sop_pseudonym}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)
        return LatentPrivatizer(config, generator=generator)

    def _run(
        self,
        records: list[Any],
        metas: list[dict[str, Any]],
        window: dict[str, Any],
        monochrome1: bool,
        privatizer: Any,
    ) -> tuple[list[np.ndarray], list[Any]]:
        import torch

        from cadp_med.imaging import Normalizer, from_model_grid, to_model_grid

        size = int(self._model.config.size)
        outputs: list[np.ndarray] = []
        infos: list[Any] = []
        step = self.options.batch_size
        for start in range(0, len(records), step):
            chunk = records[start : start + step]
            grids = []
            for record in chunk:
                x = Normalizer.forward(record.pixels, window)
                if monochrome1:  # the model knows bright = dense; MONOCHROME1 is inverted
                    x = 1.0 - x
                grid, info = to_model_grid(x, size, _usable_spacing(record.spacing))
                grids.append(grid)
                infos.append(info)
            x_batch = torch.from_numpy(np.stack(grids)[:, None]).to(self._device)
            c_batch = torch.from_numpy(
                self._schema.encode_batch(metas[start : start + step]).astype(np.float32)
            ).to(self._device)
            with torch.no_grad():
                z, _ = self._model.encode(x_batch, c_batch)
                keys = list(range(start, start + len(chunk)))
                z_private = privatizer(z.double(), noise_keys=keys).to(z.dtype)
                decoded = self._model.decode(z_private, c_batch).clamp(0.0, 1.0)
            decoded_np = decoded[:, 0].cpu().numpy()
            for offset, grid in enumerate(decoded_np):
                info = infos[start + offset]
                restored = (
                    grid if self.options.output_grid == "model" else from_model_grid(grid, info)
                )
                if monochrome1:
                    restored = 1.0 - restored
                outputs.append(Normalizer.inverse(restored.astype(np.float64), window))
        return outputs, infos

    def _parameters(self, config: Any, n_study: int, window: dict[str, Any]) -> dict[str, Any]:
        from cadp_med.privacy import per_slice, study_total

        eps_slice, delta_slice = per_slice(config)
        eps_study, delta_study = study_total(config, n_study, "basic")
        start, stop = config.released_range(int(self.card["latent"]["dim"]))
        finite = math.isfinite(eps_slice)
        return {
            "mechanism": config.kind.value,
            "dp": config.is_dp,
            "epsilon_slice": round(eps_slice, 6) if finite else "inf",
            "delta_slice": delta_slice,
            "epsilon_study": round(eps_study, 6) if finite else "inf",
            "delta_study": delta_study,
            "study_slices": n_study,
            "composition": "basic",
            "budget": self.options.budget,
            "clip": config.clip,
            "norm": config.clip_norm,
            "released_dims": stop - start,
            "released_range": [start, stop],
            "postprocess": config.postprocess.value,
            "model_content_hash": self.card.get("content_hash"),
            "seeded": self.options.seed is not None,
            "output_grid": self.options.output_grid,
            "window": {"low": window["low"], "high": window["high"], "method": window["method"]},
            "window_note": "released unnoised with the image, like the conditions",
        }


def _normalizer(card: dict[str, Any]) -> Any:
    from cadp_med.imaging import Normalizer

    spec = card.get("normalization") or {}
    if spec.get("kind") == "window":
        return Normalizer.from_spec(spec)
    return Normalizer()  # the defaults the training-set builder uses


def _usable_spacing(spacing: tuple[float, float]) -> tuple[float, float]:
    """The pixel spacing, or square pixels when the header's is zero or nonsense.

    Some CR files carry Pixel Spacing 0\\0; only the aspect ratio matters for the grid.
    """
    if all(math.isfinite(v) and v > 0 for v in spacing):
        return spacing
    return (1.0, 1.0)


def _syntax(ds: Dataset) -> str | None:
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else None


def _sample_pixels(path: Any) -> list[np.ndarray]:
    """Subsampled modality values of one instance (for the series window)."""
    import pydicom

    from cadp_med.imaging import slices_from_dicom_series

    try:
        ds = pydicom.dcmread(path)
        records = slices_from_dicom_series([ds])
    except Exception:  # unreadable files are quarantined by the main pass
        return []
    return [np.ravel(r.pixels)[::_WINDOW_STRIDE].astype(np.float64) for r in records]


def _model_grid_geometry(original: Dataset, info: Any) -> dict[str, Any]:
    """Rows, Columns, PixelSpacing and the first pixel's position on the model grid.

    The model grid covers the padded square field of view, centred on the original; its
    first pixel centre lies half a grid pixel inside the padded field's corner, so the
    Image Position (Patient) moves by that offset along the row and column directions.
    """
    row_sp, col_sp = info.grid_spacing
    geometry: dict[str, Any] = {
        "Rows": info.size,
        "Columns": info.size,
        "PixelSpacing": [f"{row_sp:.6g}", f"{col_sp:.6g}"],
    }
    ipp, iop = original.get("ImagePositionPatient"), original.get("ImageOrientationPatient")
    if ipp is not None and iop is not None and len(ipp) == 3 and len(iop) == 6:
        top, _, left, _ = info.padding
        orig_row_sp, orig_col_sp = info.spacing
        along_row = np.asarray([float(v) for v in iop[:3]])  # direction of increasing column
        along_col = np.asarray([float(v) for v in iop[3:]])  # direction of increasing row
        shift_cols = -left * orig_col_sp - orig_col_sp / 2 + col_sp / 2
        shift_rows = -top * orig_row_sp - orig_row_sp / 2 + row_sp / 2
        position = np.asarray([float(v) for v in ipp]) + along_row * shift_cols
        position = position + along_col * shift_rows
        geometry["ImagePositionPatient"] = [f"{v:.6f}" for v in position]
    return geometry
