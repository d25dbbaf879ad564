"""``cadp-med batch``: progress, failures and retries of a batch manifest.

A batch is started by ``cadp-med anonymize INPUT -o OUT --backend local|ray``
(:func:`run_batch_command`); ``batch status`` and ``batch retry`` work on the
manifest it leaves (``OUT/manifest.sqlite`` by default).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from cadp_med.cli._output import configure_logging, print_json, print_table, usage_errors

app = typer.Typer(
    name="batch",
    help="Inspect and retry batches of studies (see `cadp-med anonymize --backend`).",
    no_args_is_help=True,
)


class BatchBackend(StrEnum):
    """Where the studies of a batch run."""

    local = "local"
    ray = "ray"


def _print_summary(title: str, data: dict[str, Any], failed_rows: list[Any]) -> None:
    states = data["states"]
    outputs = data["outputs"]
    rows: list[tuple[str, Any]] = [
        ("studies", data["studies"]),
        *((f"  {state}", count) for state, count in states.items()),
        ("retried (attempts > 1)", data["retried"]),
        ("instances written", outputs["written"]),
        ("instances already done", outputs["skipped_done"]),
        ("instances quarantined", outputs["quarantined"]),
        ("finished", "yes" if data["finished"] else "no"),
    ]
    rows.extend((f"failures: {category}", n) for category, n in data["failures"].items())
    # Inputs are the operator's own paths (the manifest holds no header value).
    rows.extend(
        (f"failed: {row.input}", f"{row.error} after {row.attempts} attempt(s)")
        for row in failed_rows
    )
    print_table(title, rows)


def _exit_code(data: dict[str, Any]) -> int:
    return 1 if data["states"]["failed"] or data["outputs"]["quarantined"] else 0


@app.command()
def status(
    manifest: Path = typer.Argument(..., help="The batch manifest (OUT/manifest.sqlite)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON, with every study."),
) -> None:
    """Report a batch's progress and failures.

    Exit status: 0 nothing failed or quarantined, 1 otherwise, 2 usage error.
    """
    configure_logging()
    from cadp_med.batch import Manifest

    with usage_errors(), Manifest(manifest) as book:
        data = book.summary()
        rows = book.studies()
    if json_output:
        print_json({**data, "manifest": str(manifest), "study_rows": [r.to_dict() for r in rows]})
    else:
        _print_summary("cadp-med batch status", data, [r for r in rows if r.state == "failed"])
    raise typer.Exit(_exit_code(data))


@app.command()
def retry(
    manifest: Path = typer.Argument(..., help="The batch manifest (OUT/manifest.sqlite)."),
    key_file: Path | None = typer.Option(
        None, "--key-file", help="File holding the batch's key (else CADP_MED_KEY)."
    ),
    backend: BatchBackend = typer.Option(BatchBackend.local, "--backend"),
    address: str | None = typer.Option(None, "--address", help="Ray address (ray://... or auto)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes or local Ray CPUs."),
    max_attempts: int = typer.Option(3, "--max-attempts", min=1, help="Attempts per study."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Run a batch's failed and interrupted studies again, with its recorded options.

    The key is never stored: give the batch's key again (it is checked). A batch
    with nothing failed or pending does nothing.
    """
    configure_logging()
    from cadp_med.batch import Manifest, retry_batch
    from cadp_med.deid import load_key

    with usage_errors():
        key = load_key(key_file)
        factory = None
        with Manifest(manifest) as book:
            stored = book.run_config() or {"options": {}}
        if stored["options"].get("pixels") == "privatize":
            from cadp_med.batch._stage import factory_from_config

            factory = factory_from_config(stored["options"]["pixel_config"])
        summary = retry_batch(
            manifest,
            key=key,
            backend=backend.value,
            workers=workers,
            address=address,
            max_attempts=max_attempts,
            pixel_stage_factory=factory,
        )
    _report(summary, json_output, "cadp-med batch retry")


def run_batch_command(
    *,
    study_dir: Path | None,
    input_list: Path | None,
    output: Path,
    options: Any,
    key: bytes,
    backend: str,
    address: str | None,
    workers: int,
    manifest: Path | None,
    max_attempts: int,
    json_output: bool,
) -> None:
    """The body of ``cadp-med anonymize --backend ...``: run a batch and report it.

    ``options`` are the per-study :class:`cadp_med.AnonymizeOptions` that
    ``anonymize`` built from its flags. Raises ``typer.Exit`` with 0, 1 or 2.
    """
    from cadp_med.batch import read_input_list, run_batch, studies_in_folder
    from cadp_med.errors import ConfigError

    with usage_errors():
        if (study_dir is None) == (input_list is None):
            raise ConfigError("give either INPUT or --input-list")
        studies = (
            read_input_list(input_list) if input_list is not None else studies_in_folder(study_dir)
        )
        factory, pixel_config = None, None
        if options.pixel_stage is not None:
            from cadp_med.batch._stage import stage_factory

            factory, pixel_config = stage_factory(options.pixel_stage)
        summary = run_batch(
            studies,
            output,
            key=key,
            options=options,
            backend=backend,  # type: ignore[arg-type]
            workers=workers,
            address=address,
            manifest=manifest,
            max_attempts=max_attempts,
            pixel_stage_factory=factory,
            pixel_config=pixel_config,
        )
    _report(summary, json_output, "cadp-med anonymize (batch)")


def _report(summary: Any, json_output: bool, title: str) -> None:
    data = summary.to_dict()
    if json_output:
        print_json(data)
    else:
        from cadp_med.batch import Manifest

        with Manifest(summary.manifest) as book:
            failed = book.studies("failed")
        _print_summary(title, data, failed)
        typer.echo(f"  manifest: {summary.manifest}")
    raise typer.Exit(summary.exit_code)
