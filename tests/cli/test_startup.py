"""``cadp-med anonymize --pixels keep`` loads none of the pixel model's heavy modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import pydicom_file

# What header work never needs: the model (torch, FrEIA), imaging toolkits, plotting,
# networking and distribution, the rich console (non-tty runs print plain text), and
# pydantic (nothing here validates with it).
HEAVY = (
    "torch",
    "FrEIA",
    "monai",
    "SimpleITK",
    "matplotlib",
    "pynetdicom",
    "ray",
    "sklearn",
    "scipy",
    "rich",
    "nibabel",
    "pydantic",  # typer >= 0.29 imports it at start; pyproject keeps typer below
)

# Runs the console script's entry point and reports the modules it really loaded (a name
# marked absent sits in sys.modules as None).
_PROBE = """
import json, sys
from cadp_med._entry import main
sys.argv = ["cadp-med", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code
loaded = sorted(name for name, module in sys.modules.items() if module is not None)
print(json.dumps({"code": code, "modules": loaded}))
"""

# Compressed and multi-frame inputs whose Pixel Data a header-only run must copy as is.
_COMPRESSED = ("JPEG2000.dcm", "emri_small_jpeg_2k_lossless.dcm", "SC_rgb_rle_2frame.dcm",
               "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm",
               "SC_rgb_dcmtk_+eb+cy+np.dcm")  # fmt: skip


def _anonymize(tmp_path: Path, names: tuple[str, ...], *args: str) -> tuple[dict, Path]:
    """Run ``cadp-med anonymize`` on copies of pydicom's ``names`` in a fresh process."""
    study = tmp_path / "in"
    study.mkdir()
    for name in names:
        (study / name).write_bytes(pydicom_file(name).read_bytes())
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "anonymize", str(study), "-o", str(out),
         "--ephemeral-key", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr[-2000:]
    return report, out


def test_header_only_anonymize_imports_no_heavy_module(tmp_path: Path) -> None:
    report, out = _anonymize(tmp_path, ("CT_small.dcm",), "--pixels", "keep")
    assert len(list(out.rglob("*.dcm"))) == 1  # the run did its work
    loaded = {name.split(".")[0] for name in report["modules"]} & set(HEAVY)
    assert not loaded, f"header-only anonymize imported {sorted(loaded)}"
    # The DP model's stage and the NIfTI path are not header work either.
    not_header_work = ("cadp_med.pixels", "cadp_med.nifti")
    own = {name for name in report["modules"] if name.startswith(not_header_work)}
    assert not own, f"header-only anonymize imported {sorted(own)}"


def test_header_only_console_script_leaves_out_gdcm_and_requests_and_keeps_pixels(
    tmp_path: Path,
) -> None:
    import pydicom

    report, out = _anonymize(tmp_path, _COMPRESSED, "--pixels", "keep", "--allow-burned-in")
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert not loaded & {"gdcm", "requests"}
    written = [pydicom.dcmread(path).PixelData for path in out.rglob("*.dcm")]
    assert len(written) == len(_COMPRESSED)
    for original in (
        pydicom.dcmread(pydicom_file(name)) for name in _COMPRESSED
    ):  # byte for byte, compressed and multi-frame alike
        assert original.PixelData in written


def test_decoding_runs_keep_every_codec_and_end(tmp_path: Path) -> None:
    # Two workers, each with its isolated decoder processes: the run must end (it once
    # waited forever for decoders that ignored the SIGTERM sent at a worker's exit).
    report, out = _anonymize(
        tmp_path, _COMPRESSED, "--pixels", "keep", "--allow-burned-in",
        "--validate-pixels", "decode", "--workers", "2",
    )  # fmt: skip
    assert "gdcm" in {name.split(".")[0] for name in report["modules"]}
    assert len(list(out.rglob("*.dcm"))) == len(_COMPRESSED)


def test_which_runs_are_header_only() -> None:
    from cadp_med._entry import is_header_only

    assert is_header_only(["anonymize", "in", "-o", "out", "--pixels", "keep"])
    assert is_header_only(["anonymize", "in", "--pixels=blank", "-o", "out"])
    assert not is_header_only(["anonymize", "in", "-o", "out"])  # privatize, the default
    assert not is_header_only(["anonymize", "in", "--pixels", "privatize"])
    assert not is_header_only(
        ["anonymize", "in", "--pixels", "keep", "--validate-pixels", "decode"]
    )
    assert not is_header_only(["anonymize", "in", "--pixels", "keep", "--backend", "ray"])
    assert not is_header_only(["serve", "--pixels", "keep"])
    assert not is_header_only([])


def test_the_entry_point_imports_no_pydicom_before_it_decides() -> None:
    # hide_unused_modules works only while pydicom is not loaded: importing the package
    # and the entry module must not load it.
    probe = "import sys, cadp_med, cadp_med._entry; print('pydicom' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
