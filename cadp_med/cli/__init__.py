"""The ``cadp-med`` command line: a thin Typer shell over the library API.

Each command lives in its own module (``_anonymize.py``, ``_train.py`` ...) that
imports heavy dependencies (torch, pynetdicom, ray) inside the command body, so
``cadp-med verify`` starts without loading torch.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="cadp-med",
    help="De-identify medical imaging studies: DICOM PS3.15 header de-identification "
    "and content-aware differentially private pixels.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (command name, module under cadp_med.cli, function name).  A module that does not
# exist yet is skipped, so the CLI grows as the features land.
_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("anonymize", "_anonymize", "anonymize"),
    ("verify", "_verify", "verify"),
    ("inspect", "_inspect", "inspect"),
    ("train", "_train", "train"),
    ("privacy-report", "_privacy_report", "privacy_report"),
    ("evaluate", "_evaluate", "evaluate"),
    ("serve", "_serve", "serve"),
)


def _register() -> None:
    for name, module_name, function_name in _COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{module_name}":
                continue
            raise
        app.command(name=name)(getattr(module, function_name))
    try:
        batch = importlib.import_module(f"{__name__}._batch")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}._batch":
            raise
    else:
        app.add_typer(batch.app, name="batch")


_register()


def main() -> None:
    """Console-script entry point."""
    app()
