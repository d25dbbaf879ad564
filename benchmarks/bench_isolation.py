"""Cost of decoding pixel data in worker processes (``--decode-isolation process``).

Runs :func:`cadp_med.anonymize_study` on the same corpus with ``decode_isolation``
``"process"`` and ``"inline"``, interleaved, and prints files/s and the ratio
process / inline (1.00 = no overhead). Only encapsulated (compressed) pixel data go
to a worker, so the corpus is compressed: JPEG 2000 lossless MR (64x64), JPEG 2000
(1024x256), JPEG baseline RGB (100x100) and RLE MR (64x64), all from pydicom's test
files, with new SOP Instance UIDs.

* header-only (``pixels="keep"``): the decode is a validity check; the worker cost
  is pickling the payload and the array through a pipe.
* privatize (``pixels="privatize"``, untrained default model unless the packaged one
  exists): the model step dominates.
* ``cold``: the first run in a fresh process, worker start-up included (what a
  single CLI run pays once); the other rows reuse the started worker, as a batch
  worker or the network node does.

Usage: ``python benchmarks/bench_isolation.py [--files 200] [--privatize-files 24]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

SOURCES = (
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_RLE.dcm",
)


def _corpus(folder: Path, n: int, sources: tuple[str, ...] = SOURCES) -> Path:
    import pydicom
    import pydicom.data

    files = {Path(p).name: Path(p) for p in pydicom.data.get_testdata_files()}
    folder.mkdir(parents=True)
    for index in range(n):
        name = sources[index % len(sources)]
        ds = pydicom.dcmread(files[name])
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.77.{index + 1}"
        ds.save_as(folder / f"{index:05d}.dcm", enforce_file_format=True)
    return folder


def _run(src: Path, out: Path, options: object) -> float:
    from cadp_med import anonymize_study

    start = time.perf_counter()
    summary = anonymize_study(src, out, key=b"bench-isolation-key-0123456789ab", options=options)
    elapsed = time.perf_counter() - start
    assert summary.quarantined == 0, summary.quarantine_reasons
    return elapsed


def _compare(label: str, src: Path, root: Path, n: int, repeats: int, **options: object) -> None:
    from cadp_med import AnonymizeOptions

    times: dict[str, list[float]] = {"process": [], "inline": []}
    for repeat in range(repeats):
        for mode in ("process", "inline") if repeat % 2 == 0 else ("inline", "process"):
            opts = AnonymizeOptions(decode_isolation=mode, allow_burned_in=True, **options)  # type: ignore[arg-type]
            times[mode].append(_run(src, root / f"{label}-{mode}-{repeat}", opts))
    process, inline = statistics.median(times["process"]), statistics.median(times["inline"])
    print(f"{label:<24} {n:>6} {n / inline:>10.1f} {n / process:>10.1f} {process / inline:>8.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--privatize-files", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from cadp_med import AnonymizeOptions

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = _corpus(root / "in", args.files)
        small = _corpus(root / "in-small", 20)
        print(f"python {sys.version.split()[0]}; corpus: {', '.join(SOURCES)}")
        print(f"{'case':<24} {'files':>6} {'inline/s':>10} {'process/s':>10} {'ratio':>8}")
        # Cold: the first decode in this process starts the worker.
        start = time.perf_counter()
        _run(small, root / "cold-process", AnonymizeOptions(pixels="keep", allow_burned_in=True))
        cold = time.perf_counter() - start
        inline = _run(
            small,
            root / "cold-inline",
            AnonymizeOptions(pixels="keep", decode_isolation="inline", allow_burned_in=True),
        )
        print(
            f"{'header-only cold':<24} {20:>6} {20 / inline:>10.1f} {20 / cold:>10.1f} "
            f"{cold / inline:>8.3f}"
        )
        for n in (20, args.files):
            batch = small if n == 20 else src
            _compare("header-only", batch, root, n, args.repeats, pixels="keep")

        sys.path.insert(0, str(Path(__file__).parent))
        from bench_e2e import _model

        from cadp_med.pixels import PixelOptions, PixelStage

        # MR_small names no body region (outside the model's domains): let it through.
        stage = PixelStage(
            PixelOptions(model=_model(root), device="cpu", seed=1, allow_outside_domain=True)
        )
        priv = _corpus(root / "in-priv", args.privatize_files, ("MR_small_jp2klossless.dcm",))
        _compare(
            "privatize (J2K MR)", priv, root, args.privatize_files, args.repeats, pixel_stage=stage
        )


if __name__ == "__main__":
    main()
