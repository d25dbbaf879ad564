"""What making the outputs durable costs: ``anonymize_study`` under each durability mode.

Modes (``AnonymizeOptions.durability``, see ``cadp_med/io/_commit.py``):

* ``file``: fsync each file before its rename (the behaviour before group commits);
* ``group``: per group of 64 files (or 1 s), fsync the files, rename, fsync the new
  folder entries, then append and fsync the audit lines;
* ``syncfs``: the same with one ``syncfs`` of the output file system instead of the
  per-file fsyncs;
* ``none``: atomic writes with no flush at all (not durable; the lower bound).

Each mode runs the whole pipeline (header-only, ``pixels="keep"``, in this process)
on the same study, interleaved (file, group, syncfs, none, file, ...), into a fresh
output folder on the file system of ``--tmp``; the median wall time of ``--repeats``
runs is reported. Run from the repository root::

    python benchmarks/bench_durability.py --copies 400 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadp_med import AnonymizeOptions, anonymize_study  # noqa: E402
from cadp_med.io import _atomic  # noqa: E402

FLUSH_SECONDS = [0.0]
_DEPTH = [0]


def _timed(function):  # type: ignore[no-untyped-def]
    """Wrap a flush call to add the main thread's wall time in it to FLUSH_SECONDS.

    Nested calls and the fsync threads of a group (which run while the main thread
    waits in ``_fsync_paths``) are not counted again.
    """

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        if _DEPTH[0] or threading.current_thread() is not threading.main_thread():
            return function(*args, **kwargs)
        _DEPTH[0] += 1
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            FLUSH_SECONDS[0] += time.perf_counter() - start
            _DEPTH[0] -= 1

    return timed


# Time spent waiting in the flush calls themselves: on a loaded machine the run's wall
# time varies by more than the flushes cost, their own time much less.
os.fsync = _timed(os.fsync)
_atomic.syncfs = _timed(_atomic.syncfs)
_atomic._fsync_paths = _timed(_atomic._fsync_paths)  # noqa: SLF001

MODES = ("file", "group", "syncfs", "none")
KEY = b"durability-benchmark-key-0123456"
SOURCES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm")


def make_study(folder: Path, copies: int) -> int:
    """``copies`` of each source file, new SOP Instance UIDs; returns the byte total."""
    folder.mkdir(parents=True)
    total = 0
    for name in SOURCES:
        ds = pydicom.dcmread(get_testdata_file(name))
        for index in range(copies // len(SOURCES)):
            ds.SOPInstanceUID = pydicom.uid.generate_uid()
            target = folder / f"{name[:-4]}-{index:05d}.dcm"
            ds.save_as(target, enforce_file_format=True)
            total += target.stat().st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=400, help="files in the study")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tmp", type=Path, default=None, help="folder on the disk to test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-durability-", dir=args.tmp) as tmp:
        root = Path(tmp)
        size = make_study(root / "in", args.copies)
        files = len(list((root / "in").iterdir()))
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        flush: dict[str, list[float]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeats):
            for mode in MODES:
                out = root / f"out-{mode}-{repeat}"
                options = AnonymizeOptions(
                    pixels="keep",
                    allow_burned_in=True,
                    durability=mode,  # type: ignore[arg-type]
                )
                os.sync()  # start every run with no dirty pages of the last one
                start = time.perf_counter()
                FLUSH_SECONDS[0] = 0.0
                summary = anonymize_study(root / "in", out, key=KEY, options=options)
                times[mode].append(time.perf_counter() - start)
                flush[mode].append(FLUSH_SECONDS[0])
                assert summary.written == files, summary.to_dict()
                shutil.rmtree(out)
                shutil.rmtree(out.with_name(out.name + ".quarantine"), ignore_errors=True)
        print(
            f"{files} files, {size / 2**20:.1f} MiB, {args.repeats} interleaved repeats, "
            f"medians; output on {root}"
        )
        none = statistics.median(times["none"])
        print(
            f"{'mode':8} {'wall s':>7} {'files/s':>8} {'ms/file over none':>18} "
            f"{'in fsync/syncfs, ms/file':>25}"
        )
        for mode in MODES:
            median = statistics.median(times[mode])
            extra = (median - none) / files * 1000
            waited = statistics.median(flush[mode]) / files * 1000
            print(f"{mode:8} {median:7.2f} {files / median:8.0f} {extra:18.2f} {waited:25.3f}")


if __name__ == "__main__":
    main()
