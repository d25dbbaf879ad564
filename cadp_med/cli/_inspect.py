"""``cadp-med inspect``: what a study folder holds, and what would be quarantined.

Shows counts, modalities, SOP classes and transfer syntaxes. Patient names, IDs and
UIDs are counted, never shown. Problem files are listed by their path relative to
the study folder: those are the operator's own names for their files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import typer

from cadp_med.cli._output import configure_logging, print_json, print_table, usage_errors
from cadp_med.io.quarantine import OUTSIDE_DOMAIN_REASON
from cadp_med.model._domains import describe


def _burned_in_check() -> Any:
    try:
        from cadp_med.deid import burned_in_reason
    except ImportError:  # the de-identification engine is not installed
        return None
    return burned_in_reason


def _domain_check(model: Path | None) -> Any:
    """``dataset -> domain or None`` of the pixel model, or None without one.

    The same derivation ``anonymize --pixels privatize`` refuses inputs by
    (:meth:`cadp_med.pixels.PixelStage.domain_of`): labels only, never header values.
    """
    try:
        from cadp_med.pixels import PixelOptions, PixelStage
    except ImportError:  # the pixel extras are not installed
        if model is not None:
            raise
        return None
    if model is not None:
        # Asked for by name: a missing or unreadable model is the operator's error.
        return PixelStage(PixelOptions(model=model)).domain_of
    try:
        return PixelStage(PixelOptions()).domain_of
    except Exception:  # noqa: BLE001 - no usable default model: nothing to say about domains
        return None


def collect(study_dir: Path, model: Path | None = None) -> dict[str, Any]:
    """Scan and read every file of ``study_dir``; return counts and problems (no values).

    ``domains`` counts the images by the pixel model's domain (modality/contrast, region,
    plane; see ``model`` or the packaged default), and ``would_quarantine`` lists, under
    ``pixels-outside-model-domain (privatize)``, the images ``--pixels privatize`` would
    refuse as outside them.
    """
    from pydicom.uid import UID

    from cadp_med.io.discover import scan
    from cadp_med.io.read import read_instance, reason_category

    root = Path(study_dir).absolute()
    discovery = scan(root)
    burned_in_reason = _burned_in_check()
    domain_of = _domain_check(model)
    domains: Counter[str] = Counter()
    patients: set[str] = set()
    studies: set[str] = set()
    series: set[str] = set()
    modalities: Counter[str] = Counter()
    sop_classes: Counter[str] = Counter()
    syntaxes: Counter[str] = Counter()
    problems: dict[str, list[str]] = defaultdict(list)

    def relative(path: Path) -> str:
        return path.relative_to(root).as_posix() if path != root else path.name

    for item in discovery.files:
        try:
            ds = read_instance(item.path, decode_pixels=True)
        except Exception as exc:
            problems[reason_category(exc)].append(relative(item.path))
            continue
        patients.add(str(ds.get("PatientID", "")))
        studies.add(str(ds.get("StudyInstanceUID", "")))
        series.add(str(ds.get("SeriesInstanceUID", "")))
        modalities[str(ds.get("Modality", "") or "unknown")] += 1
        sop_classes[UID(str(ds.SOPClassUID)).name] += 1
        syntax = ds.file_meta.get("TransferSyntaxUID") if ds.file_meta else None
        syntaxes[UID(syntax).name if syntax else "none (no file meta)"] += 1
        if burned_in_reason is not None and burned_in_reason(ds) is not None:
            problems["burned-in"].append(relative(item.path))
        domain = domain_of(ds) if domain_of is not None and "PixelData" in ds else None
        if domain is not None:
            inside = "inside" if domain["inside"] else "OUTSIDE"
            domains[f"{describe(domain)} ({inside})"] += 1
            if not domain["inside"]:
                problems[f"{OUTSIDE_DOMAIN_REASON} (privatize)"].append(relative(item.path))
    skipped: dict[str, list[str]] = defaultdict(list)
    for entry in discovery.skipped:
        skipped[entry.reason].append(relative(entry.path))
    return {
        "files": len(discovery.files) + len(discovery.skipped),
        "dicom_files": len(discovery.files),
        "patients": len(patients),
        "studies": len(studies),
        "series": len(series),
        "modalities": dict(sorted(modalities.items())),
        "sop_classes": dict(sorted(sop_classes.items())),
        "transfer_syntaxes": dict(sorted(syntaxes.items())),
        "domains": dict(sorted(domains.items())),
        "would_quarantine": {k: sorted(v) for k, v in sorted(problems.items())},
        "skipped": {k: sorted(v) for k, v in sorted(skipped.items())},
    }


def inspect(
    study_dir: Path = typer.Argument(..., help="Study folder (any layout)."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON report."),
    model: Path | None = typer.Option(
        None, "--model", help="Pixel model whose domains to check (default: the packaged one)."
    ),
) -> None:
    """Count patients, studies and series; list modalities, SOP classes, transfer
    syntaxes, and the files that `anonymize` would quarantine or skip.
    """
    configure_logging()
    with usage_errors():
        report = collect(study_dir, model)
    if json_output:
        print_json(report)
        return
    rows: list[tuple[str, Any]] = [
        ("files", report["files"]),
        ("DICOM files", report["dicom_files"]),
        (
            "patients / studies / series",
            f"{report['patients']} / {report['studies']} / {report['series']}",
        ),
    ]
    for section in ("modalities", "sop_classes", "transfer_syntaxes", "domains"):
        rows.extend((f"{section}: {name}", n) for name, n in report[section].items())
    for reason, paths in report["would_quarantine"].items():
        rows.append((f"would quarantine ({reason})", len(paths)))
    for reason, paths in report["skipped"].items():
        rows.append((f"skipped ({reason})", len(paths)))
    print_table("cadp-med inspect", rows)
    for reason, paths in report["would_quarantine"].items():
        for path in paths:
            typer.echo(f"quarantine [{reason}] {path}")
