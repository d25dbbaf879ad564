"""``cadp-med verify``: check an output folder against its original for leaks."""

from __future__ import annotations

from pathlib import Path

import typer

from cadp_med.cli._output import configure_logging, print_json, print_table, usage_errors


def verify(
    output: Path = typer.Argument(..., help="The de-identified output folder."),
    original: Path = typer.Option(..., "--original", help="The original study folder."),
    json_output: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Look for original header values that survived into OUT.

    Each leak is shown by tag path, kind and where; never by value. Exit status:
    0 clean, 1 any leak or missing required attribute, 2 usage error.
    """
    configure_logging()
    from cadp_med.deid import verify_outputs

    audit = output / "audit.jsonl"
    with usage_errors():
        report = verify_outputs(original, output, audit_log=audit if audit.is_file() else None)
    leaks = [
        {"tag_path": leak.tag_path, "kind": leak.kind, "where": str(leak.where)}
        for leak in report.leaks
    ]
    failed = bool(report.leaks or report.missing)
    if json_output:
        print_json(
            {
                "ok": not failed,
                "files_checked": report.files_checked,
                "leaks": leaks,
                "missing": list(report.missing),
            }
        )
    else:
        for leak in leaks:
            typer.echo(f"LEAK {leak['tag_path']} [{leak['kind']}] in {leak['where']}")
        for missing in report.missing:
            typer.echo(f"MISSING {missing}")
        print_table(
            "cadp-med verify",
            [
                ("files checked", report.files_checked),
                ("leaks", len(leaks)),
                ("missing attributes", len(report.missing)),
                ("result", "FAIL" if failed else "OK"),
            ],
        )
    raise typer.Exit(1 if failed else 0)
