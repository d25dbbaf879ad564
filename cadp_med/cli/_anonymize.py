"""``cadp-med anonymize``: de-identify a study folder into an output folder."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

import typer

from cadp_med.cli._output import (
    configure_logging,
    output_errors,
    print_json,
    print_table,
    progress_callback,
    stop_on_sigterm,
    usage_errors,
)
from cadp_med.io.quarantine import OUTSIDE_DOMAIN_HINT, OUTSIDE_DOMAIN_REASON


class PixelPolicy(StrEnum):
    """What to do with pixel data."""

    privatize = "privatize"
    keep = "keep"
    blank = "blank"


class Longitudinal(StrEnum):
    """Retain Longitudinal Temporal Information: full dates or modified (shifted) dates."""

    full = "full"
    modified = "modified"


def _profile(
    profile_file: Path | None,
    flags: dict[str, bool],
    longitudinal: Longitudinal | None,
    keep_overlays: bool,
    keep_curves: bool,
):  # type: ignore[no-untyped-def]
    from cadp_med.deid import Option, Profile

    options: set[Option] = set()
    base = Profile.from_file(profile_file) if profile_file is not None else Profile()
    options.update(base.options)
    options.update(Option(name) for name, on in flags.items() if on)
    if longitudinal is Longitudinal.full:
        options.add(Option.RETAIN_LONGITUDINAL_FULL_DATES)
    elif longitudinal is Longitudinal.modified:
        options.add(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)
    return Profile(
        frozenset(options),
        keep_overlays=keep_overlays or base.keep_overlays,
        keep_curves=keep_curves or base.keep_curves,
    )


def _parse_eps(text: str) -> float:
    """A finite eps > 0, or inf only when spelled out (the output is then NOT DP)."""
    import math

    from cadp_med.errors import ConfigError

    if text.strip().lower() in ("inf", "infinity"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("--eps must be a number > 0 or 'inf'") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError("--eps must be a number > 0 or 'inf'")
    return value


def anonymize(
    study_dir: Path | None = typer.Argument(
        None, help="Study folder (any layout) or one DICOM file; with --backend, study folders."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    pixels: PixelPolicy = typer.Option(
        PixelPolicy.privatize, "--pixels", help="privatize (DP model), keep, or blank."
    ),
    key_file: Path | None = typer.Option(None, "--key-file", help="File holding the key."),
    ephemeral_key: bool = typer.Option(
        False, "--ephemeral-key", help="Random one-off key: pseudonyms never link again."
    ),
    profile_file: Path | None = typer.Option(None, "--profile", help="Profile TOML/YAML."),
    retain_safe_private: bool = typer.Option(False, "--retain-safe-private"),
    retain_uids: bool = typer.Option(False, "--retain-uids"),
    retain_device_identity: bool = typer.Option(False, "--retain-device-identity"),
    retain_institution_identity: bool = typer.Option(False, "--retain-institution-identity"),
    retain_patient_characteristics: bool = typer.Option(False, "--retain-patient-characteristics"),
    retain_longitudinal: Longitudinal | None = typer.Option(
        None, "--retain-longitudinal", help="full: keep dates; modified: shift them."
    ),
    clean_descriptors: bool = typer.Option(False, "--clean-descriptors"),
    clean_structured_content: bool = typer.Option(False, "--clean-structured-content"),
    clean_graphics: bool = typer.Option(False, "--clean-graphics"),
    keep_overlays: bool = typer.Option(False, "--keep-overlays"),
    keep_curves: bool = typer.Option(False, "--keep-curves"),
    quarantine: Path | None = typer.Option(
        None, "--quarantine", help="Quarantine folder (default OUT.quarantine, never inside OUT)."
    ),
    allow_burned_in: bool = typer.Option(
        False, "--allow-burned-in", help="Process images flagged with burned-in text."
    ),
    allow_outside_domain: bool = typer.Option(
        False,
        "--allow-outside-domain",
        help="Privatize images outside the model's declared domains (recorded) instead of "
        "quarantining them.",
    ),
    uid_map: Path | None = typer.Option(None, "--uid-map", help="Mapping CSV to reuse."),
    export_mapping: Path | None = typer.Option(
        None, "--export-mapping", help="Write the pseudonym mapping CSV (mode 0600)."
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        min=0,
        help="Worker processes. 0: one per CPU for --pixels keep/blank (header work), "
        "1 for privatize (the model uses the CPUs itself).",
    ),
    eps: str = typer.Option(
        "2", "--eps", help="Per-slice epsilon (study total with --budget study); 'inf' = NOT DP."
    ),
    mechanism: str = typer.Option("laplace", "--mechanism", help="laplace or gaussian."),
    delta: float | None = typer.Option(None, "--delta", help="Gaussian delta."),
    clip: float | None = typer.Option(None, "--clip", help="Clip norm (default: model card)."),
    release: str = typer.Option("coarsest", "--release", help="coarsest or all."),
    postprocess: str = typer.Option(
        "posterior-sample", "--postprocess", help="posterior-sample, posterior-mean or none."
    ),
    budget: str = typer.Option("slice", "--budget", help="slice or study."),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        help="Prior draws outside the released subspace: 1 prior, 0 mode "
        "(default: the model card's measured value, else 1).",
    ),
    window_eps_share: float = typer.Option(
        0.1,
        "--window-eps-share",
        help="Share of each image's eps for its series' DP intensity window (MR, ...; not CT).",
    ),
    model: Path | None = typer.Option(None, "--model", help="Model file (default: packaged)."),
    seed: int | None = typer.Option(None, "--seed", help="Noise seed, for audits only."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    output_grid: str = typer.Option("original", "--output-grid", help="original or model."),
    output_format: str = typer.Option("dicom", "--format", help="dicom or nifti (NIfTI input)."),
    modality: str | None = typer.Option(
        None, "--modality", help="MR or CT for NIfTI input (default: sidecar, else MR)."
    ),
    patient_id: str | None = typer.Option(
        None, "--patient-id", help="Patient of every NIfTI volume (its pseudonym is used)."
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="local or ray: a batch of studies (docs/SCALING.md)."
    ),
    address: str | None = typer.Option(None, "--address", help="Ray address (ray://... or auto)."),
    input_list: Path | None = typer.Option(None, "--input-list", help="Study folders, one a line."),
    manifest: Path | None = typer.Option(None, "--manifest", help="Batch manifest file."),
    max_attempts: int = typer.Option(3, "--max-attempts", min=1, help="Batch attempts per study."),
    decode_isolation: str = typer.Option(
        "process",
        "--decode-isolation",
        help="process: decode compressed pixels in worker processes; inline: in process.",
    ),
    validate_pixels: str = typer.Option(
        "structure",
        "--validate-pixels",
        help="keep/blank: check pixel data from its bytes (structure) or also decode it.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """De-identify every DICOM instance and NIfTI volume of STUDY_DIR into OUT.

    NIfTI volumes (.nii, .nii.gz, BIDS sidecar <stem>.json) become a DICOM series, or
    NIfTI again with --format nifti; DICOM input is always written as DICOM.

    Exit status: 0 all written, 1 some files quarantined, 2 usage error (or the output
    is locked by another run), 3 the output could not be written (full disk,
    permissions), 143 stopped by SIGTERM after the file in flight.
    """
    configure_logging()
    from cadp_med._pipeline import AnonymizeOptions, anonymize_study
    from cadp_med.deid import load_key

    with usage_errors():
        flags = {
            "retain-safe-private": retain_safe_private,
            "retain-uids": retain_uids,
            "retain-device-identity": retain_device_identity,
            "retain-institution-identity": retain_institution_identity,
            "retain-patient-characteristics": retain_patient_characteristics,
            "clean-descriptors": clean_descriptors,
            "clean-structured-content": clean_structured_content,
            "clean-graphics": clean_graphics,
        }
        profile = _profile(profile_file, flags, retain_longitudinal, keep_overlays, keep_curves)
        pixel_stage = None
        if pixels is PixelPolicy.privatize:
            from cadp_med.pixels import PixelOptions, PixelStage

            pixel_stage = PixelStage(
                PixelOptions(
                    epsilon=_parse_eps(eps),
                    mechanism=mechanism,
                    delta=delta,
                    clip=clip,
                    release=release,
                    postprocess=postprocess,
                    temperature=temperature,
                    window_eps_share=window_eps_share,
                    budget=budget,
                    model=model,
                    seed=seed,
                    device=device,
                    output_grid=output_grid,
                    allow_outside_domain=allow_outside_domain,
                )
            )
        nifti_options = None
        if modality or patient_id or output_format != "dicom":
            # Only NIfTI input reads these; a DICOM run need not import the package.
            from cadp_med.nifti import NiftiOptions

            nifti_options = NiftiOptions(
                modality=modality.upper() if modality else None,
                patient_id=patient_id,
                output_format=output_format,
            )
        batch = backend is not None or input_list is not None or study_dir is None
        if workers == 0:
            # The pseudonym mapping is recorded in the run's own process.
            workers = 1 if export_mapping is not None else default_workers(pixels.value)
        options = AnonymizeOptions(
            profile=profile,
            pixels=pixels.value,
            quarantine=quarantine,
            allow_burned_in=allow_burned_in,
            uid_map_csv=uid_map,
            export_mapping_csv=export_mapping,
            # A batch runs studies in ``workers`` processes, each study in one.
            workers=1 if batch else workers,
            pixel_stage=pixel_stage,
            nifti=nifti_options,
            decode_isolation=decode_isolation,  # type: ignore[arg-type]
            validate_pixels=validate_pixels,  # type: ignore[arg-type]
        )
        key = load_key(key_file, ephemeral=ephemeral_key)
        if batch:
            from cadp_med.cli._batch import run_batch_command

            run_batch_command(
                study_dir=study_dir,
                input_list=input_list,
                output=output,
                options=options,
                key=key,
                backend=backend or "local",
                address=address,
                workers=workers,
                manifest=manifest,
                max_attempts=max_attempts,
                json_output=json_output,
            )
        with (
            progress_callback("anonymize", quiet=json_output) as progress,
            stop_on_sigterm() as stop,
            output_errors(),
        ):
            summary = anonymize_study(
                study_dir, output, key=key, options=options, progress=progress, stop=stop
            )
    if json_output:
        print_json(summary.to_dict())
    else:
        rows = [
            ("files seen", summary.files_seen),
            ("written", summary.written),
            ("already done (skipped)", summary.skipped_done),
            ("quarantined", summary.quarantined),
            ("not DICOM (skipped)", summary.non_dicom),
            ("warnings", summary.warnings),
            (
                "patients / studies / series",
                f"{summary.patients} / {summary.studies} / {summary.series}",
            ),
            ("output", summary.output),
            ("audit log", summary.audit_log),
        ]
        if summary.quarantined:
            rows.append(("quarantine", summary.quarantine))
            rows.extend((f"  reason {r}", n) for r, n in sorted(summary.quarantine_reasons.items()))
        print_table("cadp-med anonymize", rows)
    if summary.quarantine_reasons.get(OUTSIDE_DOMAIN_REASON):
        typer.echo(f"Note: {OUTSIDE_DOMAIN_REASON}: {OUTSIDE_DOMAIN_HINT}", err=True)
    raise typer.Exit(summary.exit_code)


def default_workers(pixels: str) -> int:
    """One process per usable CPU (at most 8) for header work; 1 when the model runs.

    Header-only work is per file and CPU-bound in Python, so it scales with processes;
    privatization is already parallel inside torch, and a model per process costs memory.
    """
    if pixels == "privatize":
        return 1
    return max(1, min(8, len(os.sched_getaffinity(0))))
