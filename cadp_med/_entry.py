"""The ``cadp-med`` console script: choose what the run imports, then start the CLI.

When pydicom is first imported it imports every pixel codec library it can find, to
register its decoder plugins, and ``requests``, for its test-data downloader. A
header-only ``anonymize`` (``--pixels keep`` or ``blank`` without ``--validate-pixels
decode``) never decodes and never downloads, so for that run GDCM and requests are
marked absent before pydicom is imported: about 24 MiB less per process, and every
worker process inherits that (benchmarks/RESULTS.md, Header-only). The other codecs
(pylibjpeg, OpenJPEG, libjpeg, pyjpegls) stay, so even a misjudged run could still decode.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: Imported by pydicom's own import and never used by a run that does not decode.
UNUSED_BY_HEADER_ONLY = ("gdcm", "requests")


def _option(argv: Sequence[str], name: str) -> str | None:
    """The last value given to ``name`` (``--name value`` or ``--name=value``)."""
    value = None
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def is_header_only(argv: Sequence[str]) -> bool:
    """True for ``anonymize`` runs that neither decode pixels nor use a batch backend."""
    return (
        bool(argv)
        and argv[0] == "anonymize"
        and _option(argv, "--pixels") in ("keep", "blank")
        and _option(argv, "--validate-pixels") != "decode"
        and _option(argv, "--backend") is None
    )


def hide_unused_modules(names: Sequence[str] = UNUSED_BY_HEADER_ONLY) -> None:
    """Mark ``names`` absent (``import`` raises ImportError) if pydicom is not loaded yet.

    In a process that imported pydicom already (a library user's, a test run's) the
    codecs are registered, and nothing is changed.
    """
    if "pydicom" in sys.modules:
        return
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def main() -> None:
    """Console-script entry point."""
    if is_header_only(sys.argv[1:]):
        hide_unused_modules()
    from cadp_med.cli import main as cli_main

    cli_main()
