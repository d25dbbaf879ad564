"""De-identify NIfTI volumes: a pre-pass over their headers, then one volume at a time.

Per volume::

    nibabel header (lazy) → keyed identity → slice geometry      pre-pass (all volumes)
    voxels (first volume of 4D) → stored int16/uint16            _dicom.store_volume
    one DICOM dataset per slice, header from pseudonyms only     _dicom.slice_datasets
    keep | blank | privatize (the same PixelStage as DICOM)
    write DICOM instances (or one .nii.gz + .json) atomically, audit each

The pre-pass registers every volume's slices with the pixel stage before any pixel is
privatized, so a study budget (``--budget study``) is split over all slices of a study.
Identity (all HMAC under the run key, see ``cadp_med.deid._pseudo``):

* patient: ``"P" + patient_token(key, source)`` where ``source`` is ``--patient-id``
  (so DICOM and NIfTI of one patient share a pseudonym) or ``"nifti:" + relative path``;
* study: ``pseudonym_uid(key, "nifti-study:" + source + ":" + relative folder)``;
* series: ``pseudonym_uid(key, "nifti-series:" + relative path)``, privatized as DICOM
  series are (:func:`cadp_med.pixels.privatized_series_uid`);
* frame of reference and SOP instances: keyed from the relative path and slice index.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadp_med.errors import ConfigError, InputError
from cadp_med.io import audit as audit_status
from cadp_med.io.read import UnreadableInstance, reason_category
from cadp_med.nifti._dicom import SeriesIdentity, slice_datasets, store_volume
from cadp_med.nifti._geometry import slice_geometry
from cadp_med.nifti._options import NiftiOptions, is_nifti_path, sidecar_path
from cadp_med.nifti._output import (
    dicom_targets,
    nifti_target,
    write_dicom_series,
    write_nifti_volume,
)
from cadp_med.pixels._provenance import BLANK_METHOD_CODES, PIXEL_METHOD_CODES

logger = logging.getLogger(__name__)

_METHOD_CODES = {"keep": (), "blank": BLANK_METHOD_CODES, "privatize": PIXEL_METHOD_CODES}
# Voxels read per slice for its percentiles when the window is estimated (every n-th).
_WINDOW_STRIDE = 7


@dataclass
class VolumeOutcome:
    """What happened to one volume; counts and pseudonyms only."""

    path: Path
    status: str
    reason: str | None = None
    written: int = 0
    skipped_done: int = 0
    warnings: int = 0
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""


@dataclass
class _Plan:
    """A volume after the header pre-pass."""

    path: Path
    image: Any
    identity: SeriesIdentity
    modality: str
    sidecar: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def split_nifti(skipped: list[Any]) -> tuple[list[Path], list[Any]]:
    """Separate NIfTI volumes (and their sidecars) from discovery's skipped files.

    Discovery recognises DICOM by content, so a volume arrives as "not DICOM"; its
    ``<stem>.json`` sidecar is consumed with it and is not reported as skipped.
    """
    volumes = [item.path for item in skipped if is_nifti_path(item.path)]
    consumed = set(volumes) | {sidecar_path(path) for path in volumes}
    return volumes, [item for item in skipped if item.path not in consumed]


def anonymize_volumes(
    paths: list[Path],
    *,
    input_root: Path,
    output: Path,
    key: bytes,
    options: Any,
    audit: Any,
) -> Iterator[VolumeOutcome]:
    """De-identify each volume of ``paths``; one outcome per volume, in input order.

    Parameters
    ----------
    paths : list of Path
        The volumes, inside ``input_root`` (or ``input_root`` itself).
    input_root, output : Path
        The input folder (or file) and the output folder.
    key : bytes
        The pseudonymization key.
    options : cadp_med.AnonymizeOptions
        Its ``nifti`` (:class:`NiftiOptions`), ``pixels``, ``pixel_stage`` and profile.
    audit : cadp_med.io.audit.AuditLog
        Written instances and skips are recorded here; quarantines by the caller.
    """
    nifti = getattr(options, "nifti", None) or NiftiOptions()
    stage = options.pixel_stage if options.pixels == "privatize" else None
    if nifti.output_format == "nifti" and stage is not None:
        if getattr(stage.options, "output_grid", "original") == "model":
            raise ConfigError("--format nifti needs --output-grid original")
    plans: list[_Plan | VolumeOutcome] = []
    for path in paths:
        try:
            plans.append(_plan(path, input_root, key, options, nifti))
        except InputError as exc:
            plans.append(VolumeOutcome(path, audit_status.QUARANTINED, reason_category(exc)))
    if stage is not None:
        _register(stage, [p for p in plans if isinstance(p, _Plan)])
        use_key = getattr(stage, "use_key", None)
        if use_key is not None:  # a rerun draws the same DP window (cadp_med.pixels._window)
            use_key(key)
    for plan in plans:
        if isinstance(plan, VolumeOutcome):
            yield plan
            continue
        try:
            yield _process(plan, output, options, nifti, stage, audit)
        except InputError as exc:
            yield VolumeOutcome(plan.path, audit_status.QUARANTINED, reason_category(exc))
        except Exception as exc:  # one volume must never stop the batch
            logger.warning("unexpected %s; volume quarantined", type(exc).__name__)
            yield VolumeOutcome(plan.path, audit_status.QUARANTINED, "unexpected-error")


def _relative(path: Path, input_root: Path) -> str:
    if input_root.is_dir():
        return path.relative_to(input_root).as_posix()
    return path.name


def _plan(path: Path, input_root: Path, key: bytes, options: Any, nifti: NiftiOptions) -> _Plan:
    import nibabel

    try:
        image = nibabel.load(str(path))
        shape = tuple(int(n) for n in image.shape)
    except Exception as exc:  # nibabel raises many types for a broken file
        raise UnreadableInstance("nifti-unreadable") from exc
    warnings: list[str] = []
    if len(shape) not in (2, 3, 4) or (len(shape) == 4 and shape[3] < 1):
        raise UnreadableInstance("nifti-dimensions")
    if len(shape) == 4 and shape[3] > 1:
        warnings.append("nifti: 4D input, first volume only")
    sidecar: dict[str, Any] = {}
    side = sidecar_path(path)
    if side.is_file():
        try:
            loaded = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UnreadableInstance("nifti-sidecar-unreadable") from exc
        if not isinstance(loaded, dict):
            raise UnreadableInstance("nifti-sidecar-unreadable")
        sidecar = loaded
    modality = nifti.modality or (
        str(sidecar["Modality"]).upper() if "Modality" in sidecar else None
    )
    if modality is None:
        modality = "MR"
        warnings.append("nifti: no modality in a sidecar or --modality; MR assumed")
    if modality not in ("MR", "CT"):
        raise UnreadableInstance("nifti-unsupported-modality")
    n_slices = shape[2] if len(shape) > 2 else 1
    identity = _identity(
        key, _relative(path, input_root), n_slices, nifti, options.pixels == "privatize"
    )
    return _Plan(path, image, identity, modality, sidecar, warnings)


def _identity(
    key: bytes, relative: str, n_slices: int, nifti: NiftiOptions, privatized: bool
) -> SeriesIdentity:
    from cadp_med.deid._pseudo import patient_token, pseudonym_uid
    from cadp_med.pixels import privatized_series_uid

    source = nifti.patient_id if nifti.patient_id is not None else "nifti:" + relative
    folder = relative.rpartition("/")[0]
    series = pseudonym_uid(key, "nifti-series:" + relative)
    if privatized:
        series = privatized_series_uid(key, series)
    return SeriesIdentity(
        patient_id="P" + patient_token(key, source),
        study_uid=pseudonym_uid(key, f"nifti-study:{source}:{folder}"),
        series_uid=series,
        frame_of_reference_uid=pseudonym_uid(key, "nifti-frame:" + relative),
        sop_uids=tuple(pseudonym_uid(key, f"nifti-sop:{series}:{k}") for k in range(n_slices)),
    )


def _register(stage: Any, plans: list[_Plan]) -> None:
    """Slice positions and counts of every volume, before any pixel is privatized."""
    for plan in plans:
        try:
            geometry = slice_geometry(plan.image.affine, len(plan.identity.sop_uids))
        except InputError:
            continue  # quarantined when the volume itself is processed
        positions = [float(p @ geometry.normal) for p in geometry.positions]
        stage.add_series(plan.identity.series_uid, plan.identity.study_uid, positions)
        # The built DICOM header names no region: the domain check reads the sidecar's
        # BodyPartExamined / SeriesDescription / ProtocolName (unknown without them).
        stage.set_series_region(plan.identity.series_uid, plan.sidecar)


def _voxels(image: Any) -> np.ndarray:
    """The voxel values (NIfTI scaling applied) as ``[i, j, k]``; volume 0 of 4D."""
    try:
        if len(image.shape) == 4:
            data = np.asanyarray(image.dataobj[..., 0])
        else:
            data = np.asanyarray(image.dataobj)
    except Exception as exc:  # truncated or undecompressable data
        raise UnreadableInstance("nifti-unreadable") from exc
    return data[:, :, None] if data.ndim == 2 else data


def _retains_characteristics(options: Any) -> bool:
    names = {str(getattr(o, "value", o)) for o in options.profile.options}
    return "retain-patient-characteristics" in names


def _process(
    plan: _Plan, output: Path, options: Any, nifti: NiftiOptions, stage: Any, audit: Any
) -> VolumeOutcome:
    from cadp_med.nifti._sidecar import clean_sidecar

    identity = plan.identity
    outcome = VolumeOutcome(
        plan.path,
        audit_status.SKIPPED_DONE,
        patient_id=identity.patient_id,
        study_uid=identity.study_uid,
        series_uid=identity.series_uid,
    )
    retain = _retains_characteristics(options)
    cleaned, removed = clean_sidecar(plan.sidecar, retain_patient_characteristics=retain)
    to_nifti = nifti.output_format == "nifti"
    targets = [nifti_target(output, identity)] if to_nifti else dicom_targets(output, identity)
    if all(target.is_file() for target in targets):
        for target in targets:
            audit.record(plan.path, audit_status.SKIPPED_DONE, output=_inside(target, output))
        outcome.skipped_done = len(targets)
        return outcome
    voxels = _voxels(plan.image)
    datasets: list[Any] = []
    domain_warnings: list[str] = []
    if not to_nifti or options.pixels != "keep":
        geometry = slice_geometry(plan.image.affine, voxels.shape[2])
        sex = str(cleaned.get("PatientSex", "")).upper()[:1] if retain else ""
        datasets = slice_datasets(
            store_volume(voxels),
            geometry,
            identity,
            modality=plan.modality,
            sidecar=cleaned,
            patient_sex=sex if sex in ("M", "F", "O") else None,
            method_codes=_METHOD_CODES[options.pixels],
        )
        if stage is not None and datasets:
            refusal = stage.refuse_reason(datasets[0])  # e.g. outside the model's domains
            if refusal is not None:
                raise UnreadableInstance(refusal)
            domain_warnings = stage.domain_warnings(datasets[0])
        datasets = _apply_pixels(datasets, options.pixels, stage, plan.modality, voxels, identity)
    warnings = [*plan.warnings, f"nifti: {removed} sidecar keys removed", *domain_warnings]
    if to_nifti:
        written = [write_nifti_volume(plan.image, voxels, datasets, cleaned, targets[0])]
    else:
        written = write_dicom_series(datasets, output, identity)
    for target in targets:
        status = audit_status.WRITTEN if target in written else audit_status.SKIPPED_DONE
        audit.record(
            plan.path,
            status,
            output=_inside(target, output),
            warnings=warnings if target == written[0] else (),
        )
    outcome.written = len(written)
    outcome.skipped_done = len(targets) - len(written)
    outcome.warnings = len(warnings) if written else 0
    outcome.status = audit_status.WRITTEN if written else audit_status.SKIPPED_DONE
    return outcome


def _inside(target: Path, output: Path) -> str:
    return target.relative_to(output).as_posix()


@dataclass
class _StageInput:
    """What :class:`cadp_med.pixels.PixelStage` reads of a ``DeidResult``."""

    dataset: Any
    pseudonyms: Any


@dataclass(frozen=True)
class _Sop:
    sop_uid: str


def _apply_pixels(
    datasets: list[Any],
    mode: str,
    stage: Any,
    modality: str,
    voxels: np.ndarray,
    identity: SeriesIdentity,
) -> list[Any]:
    """``keep``: as built; ``blank``: zeros; ``privatize``: through the pixel stage."""
    if mode == "keep":
        return datasets
    if mode == "blank":
        for ds in datasets:
            ds.PixelData = bytes(len(ds.PixelData))
        return datasets
    # One window per volume, from every slice (each slice is one image of the guarantee).
    slices = (np.ravel(voxels[:, :, k])[::_WINDOW_STRIDE] for k in range(voxels.shape[2]))
    stage.set_window(
        identity.series_uid,
        slices,
        modality,
        header=datasets[0],
        study_uid=identity.study_uid,
    )
    out = []
    for ds in datasets:
        result = _StageInput(copy.deepcopy(ds), _Sop(str(ds.SOPInstanceUID)))
        out.append(stage(ds, result))
    return out
