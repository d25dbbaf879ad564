"""The privatize pixel stage: decode, condition, normalise, privatize, restore, encode.

Per image instance (all frames of a multi-frame instance, in batches of
``options.batch_size``)::

    decode + Modality LUT (+ BT.601 luminance for colour)   cadp_med.imaging
    conditions from the header (slice_pos from the pre-pass) cadp_med.model
    window per series → [0, 1] (MONOCHROME1 flipped)        _window (fixed or DP), Normalizer
    pad + resample to the model grid                        cadp_med.imaging.to_model_grid
    encode, clip, noise, decode with the same conditions    cadp_med.model + privacy
    back to the original matrix, modality units, stored type ``_codec``

The stage is picklable without its model (each worker process loads it on first use).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from cadp_med.errors import ConfigError
from cadp_med.io.quarantine import OUTSIDE_DOMAIN_REASON as OUTSIDE_DOMAIN
from cadp_med.pixels._codec import apply_pixels, encode_frames, is_colour, lossy_history
from cadp_med.pixels._options import PixelOptions, card_temperature
from cadp_med.pixels._prepass import StudyIndex
from cadp_med.pixels._provenance import add_provenance
from cadp_med.pixels._window import set_voi

logger = logging.getLogger(__name__)

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


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
        if options.temperature is None:  # the temperature the card's training measured
            self.options = options = replace(options, temperature=card_temperature(self.card))
        self.index = index or StudyIndex()
        self._model: Any = None
        self._schema: Any = None
        self._windows: dict[str, dict[str, Any]] = {}
        # Body region of series without a DICOM header (NIfTI volumes), from their sidecar.
        self._series_regions: dict[str, str | None] = {}
        self._window_secret: bytes | None = None
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

        self.use_key(key)  # the pipeline's one call with the run key before any pixel
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

    def use_key(self, key: bytes) -> None:
        """Derive the window randomness from the run key (see ``cadp_med.pixels._window``)."""
        from cadp_med.pixels._window import window_secret

        self._window_secret = window_secret(key)

    def set_window(
        self,
        series_uid: str,
        slices: Iterable[np.ndarray],
        modality: str | None,
        *,
        header: Dataset,
        study_uid: str,
    ) -> None:
        """Fit the intensity window of a series from (subsampled) values of each slice.

        ``header`` is one of its datasets (its representable range bounds a DP window);
        ``study_uid`` the study whose budget the series spends.
        """
        self._load()
        self._windows[series_uid] = self._fit_window(
            series_uid, study_uid, slices, modality, header
        )

    def _fit_window(
        self,
        series_uid: str,
        study_uid: str,
        slices: Iterable[np.ndarray],
        modality: str | None,
        header: Dataset,
    ) -> dict[str, Any]:
        from cadp_med.pixels._window import fit_window, window_rng
        from cadp_med.privacy import split_window

        share = float(self.options.window_eps_share)
        config, _ = self._config_for(study_uid)
        # The window's epsilon per slice: its share of the slice's (a study budget's
        # share of this study); inf when nothing is DP.
        epsilon = split_window(config, share)[1] if config.is_dp else math.inf
        return fit_window(
            slices,
            normalizer=self._normalizer,
            modality=modality,
            header=header,
            epsilon=epsilon,
            share=share,
            rng=window_rng(self.options.seed, self._window_secret, series_uid),
        )

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
        if self.options.output_grid == "model":
            if str(original.get("SOPClassUID", "")) == SEG_SOP_CLASS:
                # Its masks are on the original grid; the images would be on the model grid.
                return "seg-on-model-grid"
            if "PerFrameFunctionalGroupsSequence" in original:
                return "functional-groups-on-model-grid"
        if "PixelData" in original and not self.options.allow_outside_domain:
            domain = self.domain_of(original)
            if domain is not None and not domain["inside"]:
                # The model would turn it into an image of what it knows (a spine CT
                # into a head): refuse unless the operator says otherwise.
                return OUTSIDE_DOMAIN
        return None

    def set_series_region(self, series_uid: str, header: Any) -> None:
        """Take the body region of a series from ``header`` (a NIfTI volume's BIDS sidecar)
        instead of its DICOM header; only the derived label is kept."""
        from cadp_med.model._region import body_region

        self._series_regions[series_uid] = body_region(header)

    def domain_of(self, original: Dataset) -> dict[str, Any] | None:
        """The instance's domain ``{modality, region, plane, inside}``; None when the model
        card declares no domains (a model trained before domains were recorded)."""
        from cadp_med.model import ConditionSchema, metadata_from_dataset
        from cadp_med.model._domains import domain_key, is_inside
        from cadp_med.model._region import body_region

        domains = self.card.get("domains")
        if not domains:
            return None
        schema = self._schema or ConditionSchema.from_dict(self.card["conditions"])
        meta = metadata_from_dataset(original, schema=schema)
        series_uid = str(original.get("SeriesInstanceUID", ""))
        meta["region"] = (
            self._series_regions[series_uid]
            if series_uid in self._series_regions
            else body_region(original, schema.tables.get("region"))
        )
        if meta["plane"] is None:  # enhanced multi-frame: orientation in functional groups
            meta["plane"] = _functional_group_plane(original)
        key = domain_key(meta, self.card["conditions"])
        return {**key, "inside": is_inside(domains, key)}

    def domain_warnings(self, original: Dataset) -> list[str]:
        """Audit warnings for an instance privatized outside the model's domains."""
        if not self.options.allow_outside_domain:
            return []  # refuse_reason has already quarantined any such instance
        domain = self.domain_of(original) if "PixelData" in original else None
        if domain is None or domain["inside"]:
            return []
        return [f"{OUTSIDE_DOMAIN} allowed (--allow-outside-domain)"]

    # -- per series ---------------------------------------------------------------------
    def _window(self, series_uid: str, ds: Dataset, records: list[Any]) -> dict[str, Any]:
        from cadp_med.pixels._window import WINDOW_INSTANCES, WINDOW_STRIDE, slice_values

        window = self._windows.get(series_uid)
        if window is not None:
            return window
        modality = records[0].metadata.get("contrast") or records[0].metadata.get("modality")
        info = self.index.series.get(series_uid)
        paths = info.sample_paths(WINDOW_INSTANCES) if info is not None else []

        def slices() -> Iterator[np.ndarray]:
            # Read lazily, one instance at a time: a fixed window reads nothing, and a
            # DP window keeps two numbers per slice, not the slices.
            found = False
            for path in paths:
                for values in slice_values(path):
                    found = True
                    yield values
            if not found:  # a one-instance series, or no pre-pass: this instance itself
                yield from (np.ravel(r.pixels)[::WINDOW_STRIDE] for r in records)

        window = self._fit_window(
            series_uid, str(ds.get("StudyInstanceUID", "")), slices(), modality, ds
        )
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

    def _latent_config(self, config: Any, window: dict[str, Any]) -> Any:
        """The latent's share of a slice config once its series' window has spent its own."""
        from cadp_med.privacy import split_window

        if window.get("method") != "dp-median":
            return config  # fixed, range or NOT DP: nothing spent on the window
        return split_window(config, float(window["share"]))[0]

    # -- the stage ----------------------------------------------------------------------
    @property
    def batches_across_instances(self) -> bool:
        """Whether the pipeline may send the slices of several instances in one model batch.

        Not with a ``seed``: the CPU and GPU kernels are not batch-invariant (oneDNN picks
        other convolution kernels for few input channels, a one-row Linear is a GEMV, cuDNN
        chooses algorithms per shape), so a slice's output would move by float rounding
        with its batch neighbours, and a seeded audit or resumed run must reproduce each
        instance's pixels exactly. Unseeded runs draw fresh noise anyway.
        """
        return self.options.seed is None and self.options.batch_size > 1

    def __call__(self, original: Dataset, deid_result: Any) -> Dataset:
        """Privatize the pixels of ``original`` into ``deid_result.dataset``."""
        (result,) = self.finish([self.prepare_instance(original, deid_result)])
        if isinstance(result, Exception):
            raise result
        return result

    def prepare_instance(self, original: Dataset, deid_result: Any) -> _PendingInstance:
        """Decode one instance and fix everything about it except the model step.

        The frames, window, conditions, budget and privatizer (its noise stream depends
        only on the seed and the pseudonymous SOP UID, never on the batch).
        """
        from cadp_med.imaging import slices_from_dicom_series
        from cadp_med.model import metadata_from_dataset

        self._load()
        series_uid = str(original.get("SeriesInstanceUID", ""))
        info = self.index.series.get(series_uid)
        records = sorted(
            slices_from_dicom_series([original]), key=lambda r: int(r.metadata["frame"])
        )
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
        config = self._latent_config(config, window)
        return _PendingInstance(
            original=original,
            deid_result=deid_result,
            series_uid=series_uid,
            records=records,
            metas=metas,
            window=window,
            monochrome1=str(original.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1",
            config=config,
            n_study=n_study,
            privatizer=self._privatizer(config, deid_result.pseudonyms.sop_uid),
            domain=self.domain_of(original),
        )

    def finish(self, pending: list[_PendingInstance]) -> list[Dataset | Exception]:
        """Run the model over the frames of ``pending`` and write each instance's pixels.

        Frames go to the model in batches of ``options.batch_size`` across instances;
        each instance's rows are privatized by its own privatizer with its own noise
        keys (the frame indices). Returns, per instance and in order, its output dataset
        or the exception that stopped it, so one bad instance never fails the others.
        """
        self._load()
        try:
            outputs = self._run(pending)
        except Exception:
            if len(pending) == 1:
                raise
            # A batch-wide failure: retry alone, so that only the guilty one fails. Fresh
            # privatizers: the failed batch may have spent some of their noise keys.
            return [
                result
                for one in pending
                for result in self.finish([replace(one, privatizer=self._fresh_privatizer(one))])
            ]
        results: list[Dataset | Exception] = []
        for item, (frames, grids) in zip(pending, outputs, strict=True):
            try:
                results.append(self._encode_instance(item, frames, grids))
            except Exception as exc:  # this instance only
                results.append(exc)
        return results

    def _encode_instance(
        self, item: _PendingInstance, frames: list[np.ndarray], grids: list[Any]
    ) -> Dataset:
        original = item.original
        out: Dataset = item.deid_result.dataset
        data, header = encode_frames(frames, original, colour=is_colour(original))
        if self.options.output_grid == "model":
            header.update(_model_grid_geometry(original, grids[0]))
        apply_pixels(out, data, header)
        set_voi(out, item.window)
        lossy = lossy_history(original, _syntax(original))
        if lossy is not None:
            for keyword, value in lossy.items():
                setattr(out, keyword, value)
        parameters = self._parameters(item.config, item.n_study, item.window)
        if item.domain is not None:
            parameters["domain"] = {
                **item.domain,
                "allowed_outside": not item.domain["inside"],
            }
        add_provenance(out, parameters, self.options.label())
        return out

    def _fresh_privatizer(self, item: _PendingInstance) -> Any:
        return self._privatizer(item.config, item.deid_result.pseudonyms.sop_uid)

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

    def _run(self, pending: list[_PendingInstance]) -> list[tuple[list[np.ndarray], list[Any]]]:
        """(frames in modality units, grid infos) per instance, model batches across them.

        Only one batch of model-grid slices exists at a time; the decoded frames of the
        pending instances are already in memory.
        """
        import torch

        from cadp_med.imaging import Normalizer, from_model_grid, to_model_grid

        size = int(self._model.config.size)
        outputs: list[tuple[list[np.ndarray], list[Any]]] = [([], []) for _ in pending]
        # (instance, frame) of every row, in order.
        rows = [(i, frame) for i, item in enumerate(pending) for frame in range(item.rows)]
        step = self.options.batch_size
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            grids, metas = [], []
            for i, frame in chunk:
                item = pending[i]
                x = Normalizer.forward(item.records[frame].pixels, item.window)
                if item.monochrome1:  # the model knows bright = dense; MONOCHROME1 is inverted
                    x = 1.0 - x
                grid, info = to_model_grid(x, size, _usable_spacing(item.records[frame].spacing))
                grids.append(grid)
                metas.append(item.metas[frame])
                outputs[i][1].append(info)
            x_batch = torch.from_numpy(np.stack(grids)[:, None]).to(self._device)
            c_batch = torch.from_numpy(self._schema.encode_batch(metas).astype(np.float32)).to(
                self._device
            )
            with torch.no_grad(), _audit_threads(self.options.seed is not None):
                z, _ = self._model.encode(x_batch, c_batch)
                # A conditional prior N(mu(c), sigma(c)^2): the privatizer clips and noises
                # (z - mu) / sigma and refills from it. None: N(0, I), as older models.
                prior = _prior_of(self._model, c_batch)
                z_private = torch.empty_like(z)
                for i, lo, hi in _runs_of_instances(chunk):
                    keys = [frame for _, frame in chunk[lo:hi]]
                    z_private[lo:hi] = pending[i].privatizer(
                        z[lo:hi].double(),
                        noise_keys=keys,
                        prior_mean=None if prior is None else prior[0][lo:hi],
                        prior_std=None if prior is None else prior[1][lo:hi],
                    )
                decoded = self._model.decode(z_private, c_batch).clamp(0.0, 1.0)
            for (i, frame), grid in zip(chunk, decoded[:, 0].cpu().numpy(), strict=True):
                item = pending[i]
                info = outputs[i][1][frame]
                restored = (
                    grid if self.options.output_grid == "model" else from_model_grid(grid, info)
                )
                if item.monochrome1:
                    restored = 1.0 - restored
                outputs[i][0].append(Normalizer.inverse(restored.astype(np.float64), item.window))
        return outputs

    def _parameters(self, config: Any, n_study: int, window: dict[str, Any]) -> dict[str, Any]:
        from cadp_med.pixels._window import provenance, window_note
        from cadp_med.privacy import per_slice, study_total

        # ``config`` is the latent's; the window's epsilon adds to it (``--eps`` in all).
        spent = window.get("epsilon", 0.0)
        window_eps = float(spent) if window.get("method") == "dp-median" else 0.0
        eps_slice, delta_slice = per_slice(config, window_eps)
        eps_study, delta_study = study_total(config, n_study, "basic", window_epsilon=window_eps)
        start, stop = config.released_range(int(self.card["latent"]["dim"]))
        finite = math.isfinite(eps_slice)
        return {
            "mechanism": config.kind.value,
            "dp": config.is_dp,
            "epsilon_slice": round(eps_slice, 6) if finite else "inf",
            "epsilon_latent": round(per_slice(config)[0], 6) if finite else "inf",
            "epsilon_window": round(window_eps, 6),
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
            "window": provenance(window),
            "window_note": window_note(window),
        }


@dataclass
class _PendingInstance:
    """One image instance, decoded and conditioned, waiting for its model batch."""

    original: Dataset
    deid_result: Any
    series_uid: str
    records: list[Any]
    metas: list[dict[str, Any]]
    window: dict[str, Any]
    monochrome1: bool
    config: Any
    n_study: int
    privatizer: Any
    domain: dict[str, Any] | None = None

    @property
    def rows(self) -> int:
        """Frames this instance sends to the model."""
        return len(self.records)


@contextlib.contextmanager
def _audit_threads(pinned: bool) -> Iterator[None]:
    """Run the model on one intra-op CPU thread in seeded (audit) runs.

    Float reductions split over a different number of threads round differently, so a
    seeded run would otherwise change by a grey level between a 2-thread process and a
    1-CPU Ray actor. One thread makes seeded output the same on every backend.
    """
    import torch

    if not pinned:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _prior_of(model: Any, c: Any) -> tuple[Any, Any] | None:
    """``(mu(c), sigma(c))`` in float64 of a model with a conditional prior, else None."""
    if not model.has_conditional_prior:
        return None
    mean, log_std = model.prior_params(c)
    return mean.double(), log_std.double().exp()


def _runs_of_instances(chunk: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(instance, lo, hi): the consecutive rows of ``chunk`` that belong to one instance."""
    runs: list[tuple[int, int, int]] = []
    for row, (i, _) in enumerate(chunk):
        if runs and runs[-1][0] == i:
            runs[-1] = (i, runs[-1][1], row + 1)
        else:
            runs.append((i, row, row + 1))
    return runs


def _normalizer(card: dict[str, Any]) -> Any:
    from cadp_med.imaging import Normalizer

    spec = card.get("normalization") or {}
    spec = spec.get("spec", spec)  # training writes {"spec": ..., "windows": ...}
    if spec.get("kind") == "window":
        # The card's fixed windows first; the packaged table only where it has none.
        return Normalizer.from_spec(spec).with_packaged_windows()
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


def _functional_group_plane(ds: Dataset) -> str | None:
    """Plane from the shared (else the first per-frame) Plane Orientation Sequence."""
    from cadp_med.model.conditions import plane_from_orientation

    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            orientation = ds[group][0].PlaneOrientationSequence[0].ImageOrientationPatient
        except (KeyError, IndexError, AttributeError, TypeError):
            continue
        return plane_from_orientation(orientation)
    return None
