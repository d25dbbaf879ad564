"""Native decoders run in worker processes: a crash or hang costs one file, not the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest

from cadp_med import AnonymizeOptions, anonymize_study
from cadp_med.io import _isolation
from cadp_med.io.audit import read_audit_log
from cadp_med.io.limits import ResourceLimits
from cadp_med.io.read import read_instance
from tests.hardening import _crashers
from tests.hardening._files import KEY, pydicom_file

CORPUS = Path(__file__).parent / "corpus"


@pytest.fixture
def crashing_decoder() -> Iterator[_isolation.IsolatedDecoder]:
    decoder = _isolation.IsolatedDecoder("tests.hardening._crashers:decode_or_crash")
    previous = _isolation.set_shared_decoder(decoder)
    try:
        yield decoder
    finally:
        _isolation.set_shared_decoder(previous)
        decoder.close()


def _rle_with_marker(path: Path, marker: str) -> None:
    ds = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    if marker:
        ds.LossyImageCompressionMethod = marker
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(path, enforce_file_format=True)


@pytest.mark.parametrize(
    "name",
    ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm"],
)
def test_isolated_decode_equals_inline(name: str) -> None:
    isolated = read_instance(pydicom_file(name), decode_pixels=True).pixel_array
    inline = read_instance(pydicom_file(name), decode_pixels=True, decode_isolation="inline")
    assert isolated.dtype == inline.pixel_array.dtype
    assert np.array_equal(isolated, inline.pixel_array)


def test_crash_hang_and_panic_quarantine_one_file_each(
    tmp_path: Path, crashing_decoder: _isolation.IsolatedDecoder
) -> None:
    study = tmp_path / "in"
    study.mkdir()
    for name, marker in (
        ("a_ok.dcm", ""),
        ("b_crash.dcm", _crashers.CRASH),
        ("c_hang.dcm", _crashers.HANG),
        ("d_panic.dcm", _crashers.PANIC),
        ("e_ok.dcm", ""),
    ):
        _rle_with_marker(study / name, marker)
    # Under keep, pixels are decoded only on request (--validate-pixels decode).
    options = AnonymizeOptions(
        pixels="keep", validate_pixels="decode", limits=ResourceLimits(decode_timeout_s=3.0)
    )
    summary = anonymize_study(study, tmp_path / "out", key=KEY, options=options)
    assert summary.written == 2
    assert summary.quarantine_reasons == {
        "decoder-crashed": 1,
        "decoder-timed-out": 1,
        "pixel-data-not-decodable": 1,
    }
    assert crashing_decoder.replaced == 3  # crash, hang and panic: each worker replaced
    records = read_audit_log(summary.audit_log)
    assert len(records) == 5


def test_inline_mode_does_not_use_workers(
    tmp_path: Path, crashing_decoder: _isolation.IsolatedDecoder
) -> None:
    study = tmp_path / "in"
    study.mkdir()
    _rle_with_marker(study / "a.dcm", _crashers.CRASH)  # the marker only matters in a worker
    options = AnonymizeOptions(pixels="keep", validate_pixels="decode", decode_isolation="inline")
    summary = anonymize_study(study, tmp_path / "out", key=KEY, options=options)
    assert summary.written == 1
    assert crashing_decoder.replaced == 0


def test_malformed_corpus_is_quarantined_or_written(tmp_path: Path) -> None:
    """Real malformed compressed files (the crash search's finds and near misses)."""
    files = sorted(CORPUS.glob("*.dcm"))
    assert files, "the regression corpus is empty"
    summary = anonymize_study(
        CORPUS,
        tmp_path / "out",
        key=KEY,
        options=AnonymizeOptions(pixels="keep", validate_pixels="decode"),
    )
    records = read_audit_log(summary.audit_log)
    assert len(records) == len(list(CORPUS.iterdir()))  # README.md: skipped-non-dicom
    assert summary.written + summary.quarantined == len(files)
    assert "unexpected-error" not in summary.quarantine_reasons
    crashers = [p for p in files if p.name.startswith("crash-")]
    assert summary.quarantine_reasons.get("decoder-crashed") == len(crashers)


@pytest.mark.parametrize("name", ["crash-sigsegv-libjpeg-baseline-1.dcm"])
def test_corpus_crasher_really_kills_an_inline_decoder(name: str) -> None:
    """The regression files are real crashes: decoded in process, they kill it."""
    import subprocess
    import sys

    code = "import sys, pydicom; pydicom.dcmread(sys.argv[1]).pixel_array"
    done = subprocess.run(
        [sys.executable, "-c", code, str(CORPUS / name)], capture_output=True, timeout=60
    )
    assert done.returncode < 0  # killed by a signal (SIGSEGV / SIGABRT)
