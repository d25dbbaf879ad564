"""Header-only de-identification, whole processes from the command line, as an ETL job runs them.

Each tool is run as its own process over the same corpus folder, writing to a fresh
output folder:

* ``cadp-med anonymize CORPUS -o OUT --pixels keep --allow-burned-in`` (the console script,
  its default of one worker process per CPU) and the same with ``--workers 1``;
* ``python -m dicognito --output-directory OUT CORPUS``;
* ``deid --outfolder OUT identifiers --action all --input CORPUS`` (deid's own CLI, its
  default recipe);
* the floor: one python process that reads each file with pydicom and writes it with
  ``save_as`` (no de-identification at all).

Runs are interleaved (A B C D, A B C D, ...) so that a burst of load on a shared machine
hits every tool alike, each after a ``sync`` so that none pays for writing back the
previous one's output; the median wall time of ``--repeats`` runs is reported, with each
tool's CPU time and peak memory (sampled from ``/proc`` over its process tree; see
:func:`run`), files/s and the ratios against dicognito and the floor.

The corpus is every real DICOM file the test packages ship (pydicom, pydicom-data,
deid-data, dicognito's test data when its sdist is unpacked): compressed single and
multi-frame images (JPEG, JPEG-LS, JPEG 2000, RLE), big endian, deflate, files without
File Meta. It is copied round-robin until it holds ``--min-files`` files; a file whose
SOP Instance UID is already in the corpus (a later copy, or the same instance in
another encoding, which the test packages ship) gets a new one (through pydicom,
keeping its encoding), so that no tool gets to skip a duplicate. Run from the repository root::

    python benchmarks/bench_header.py --min-files 500 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

BIN = Path(sys.executable).parent
KEY = "bench-header-key-0123456789abcdef"

FLOOR = """
import sys, warnings
from pathlib import Path
import pydicom
warnings.simplefilter("ignore")
corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
failed = 0
for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
    try:
        pydicom.dcmread(path, force=True).save_as(out / path.name)
    except Exception:
        failed += 1
sys.exit(1 if failed else 0)
"""


def real_dicom_files() -> list[Path]:
    """Every file from the test-data packages that is a readable DICOM instance.

    A file counts when pydicom reads it whole (as every tool here does) into a dataset
    with SOP Class and SOP Instance UIDs. That leaves out, e.g., pydicom-data's
    ``emri_small_jpeg_2k_lossless_too_short.dcm``: truncated, it reads as an empty dataset
    (a header-only read stops before the damage and looked fine), and cadp-med's pipeline
    would quarantine it, not de-identify it.
    """
    import site

    import pydicom.data

    candidates: list[Path] = [Path(p) for p in pydicom.data.get_testdata_files()]
    for base in site.getsitepackages():
        deid_data = Path(base) / "deid_data"
        if deid_data.is_dir():
            candidates += [p for p in deid_data.rglob("*") if p.is_file()]
    dicognito = Path(os.environ.get("DICOGNITO_SRC", "/tmp/dicognito_src"))
    candidates += [p for p in dicognito.rglob("orig_data/**/*") if p.is_file()]

    usable: list[Path] = []
    for path in candidates:
        if path.name == "DICOMDIR" or path.suffix in {".py", ".pyc", ".txt", ".json", ".md"}:
            continue
        try:
            ds = pydicom.dcmread(path, force=True)
            if "SOPClassUID" in ds and "SOPInstanceUID" in ds:
                usable.append(path)
        except Exception:  # noqa: BLE001 - a benchmark corpus skips what does not parse
            continue
    return sorted(set(usable))


def build_corpus(files: list[Path], min_files: int, into: Path) -> tuple[list[Path], Counter]:
    """Copy ``files`` round-robin into ``into`` until it holds ``min_files``; return the
    corpus and a count of its kinds. Copies after the first get a new SOP Instance UID."""
    corpus: list[Path] = []
    kinds: Counter[str] = Counter()
    index = 0
    seen: set[str] = set()
    while len(corpus) < max(min_files, len(files)):
        source = files[index % len(files)]
        target = into / f"{len(corpus):05d}.dcm"
        uid = str(pydicom.dcmread(source, force=True, stop_before_pixels=True).SOPInstanceUID)
        if uid not in seen:
            shutil.copyfile(source, target)
            seen.add(uid)
        else:
            ds = pydicom.dcmread(source, force=True)
            ds.SOPInstanceUID = generate_uid()
            meta = getattr(ds, "file_meta", None)
            if meta is not None and "MediaStorageSOPInstanceUID" in meta:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            try:
                ds.save_as(target)  # written like the original: same encoding, meta or not
            except Exception:  # noqa: BLE001 - keep the original bytes (a duplicate)
                shutil.copyfile(source, target)
                kinds["duplicate copies"] += 1
        ds = pydicom.dcmread(target, force=True, stop_before_pixels=True)
        meta = getattr(ds, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is None:
            kinds["no File Meta"] += 1
        elif syntax.is_compressed and syntax != pydicom.uid.DeflatedExplicitVRLittleEndian:
            kinds["compressed"] += 1
            if int(ds.get("NumberOfFrames", 1) or 1) > 1:
                kinds["compressed multi-frame"] += 1
        elif syntax == pydicom.uid.DeflatedExplicitVRLittleEndian:
            kinds["deflate"] += 1
        elif syntax == pydicom.uid.ExplicitVRBigEndian:
            kinds["big endian"] += 1
        else:
            kinds["native little endian"] += 1
        corpus.append(target)
        index += 1
    return corpus, kinds


def commands(corpus: Path, out: Path) -> dict[str, list[str]]:
    """The command line of each tool."""
    deid = [str(BIN / "deid"), "--quiet", "--outfolder", str(out), "identifiers",
            "--action", "all", "--input", str(corpus)]  # fmt: skip
    cadp = [str(BIN / "cadp-med"), "anonymize", str(corpus), "-o", str(out),
            "--pixels", "keep", "--allow-burned-in"]  # fmt: skip
    return {
        "cadp-med": cadp,
        # The same, in one process: dicognito and the floor use one CPU; the default above
        # uses one worker per CPU.
        "cadp-med --workers 1": [*cadp, "--workers", "1"],
        "dicognito": [
            sys.executable,
            "-m",
            "dicognito",
            "--quiet",
            "--output-directory",
            str(out),
            str(corpus),
        ],  # fmt: skip
        "deid": deid,
        "floor (pydicom read+write)": [sys.executable, "-c", FLOOR, str(corpus), str(out)],
    }


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``)."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            for child in children:
                pids += _process_tree(int(child))
    except OSError:
        pass
    return pids


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmHWM, Pss) of one process in KiB: its peak RSS since exec, and its proportional
    set size now (pages shared with a forked parent split among their users)."""
    hwm = pss = 0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return hwm, pss


def run(
    command: list[str], env: dict[str, str], out: Path
) -> tuple[float, float, float, int, float]:
    """Run one tool; return (wall seconds, peak RSS in MiB, peak PSS in MiB, exit status,
    CPU seconds).

    CPU seconds are user + system time of the tool and every descendant it reaped (its
    worker processes), from ``wait4``.

    Memory is sampled from ``/proc`` every 50 ms over the tool's process tree: peak RSS
    is the sum of each process's own high-water mark (an upper bound for a tool with
    worker processes, whose shared pages count in each), peak PSS the largest sum of
    proportional set sizes seen. Not ``wait4``'s ``ru_maxrss``: on Linux a child
    inherits the RSS of the process that forked it (this benchmark, which has read the
    corpus), so every tool would show at least that.
    """
    out.mkdir(parents=True)  # deid does not create its output folder
    # The tools that never flush leave hundreds of MiB of dirty pages behind; without
    # this the next tool's run pays for writing them back (a tool that fsyncs, at its
    # first flush).
    os.sync()
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    peak_pss = 0
    high_water: dict[int, int] = {}
    while True:
        waited, status, usage = os.wait4(process.pid, os.WNOHANG)
        if waited:
            break
        pss_now = 0
        for pid in _process_tree(process.pid):
            hwm, pss = _memory_kib(pid)
            high_water[pid] = max(high_water.get(pid, 0), hwm)
            pss_now += pss
        peak_pss = max(peak_pss, pss_now)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, sum(high_water.values()) / 1024, peak_pss / 1024, process.returncode, cpu


def count_outputs(out: Path) -> int:
    return sum(1 for p in out.rglob("*") if p.is_file() and p.name != "audit.jsonl"
               and not p.name.startswith("."))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-files", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tools", nargs="*", help="run only these tools (names as printed)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    env = {**os.environ, "CADP_MED_KEY": KEY, "PYTHONWARNINGS": "ignore"}
    files = real_dicom_files()
    # The other tools run from wheels, whose modules pip byte-compiled at install; an
    # editable cadp-med under PYTHONDONTWRITEBYTECODE would compile its own at every
    # start (about 60 ms). Compile it once, as its wheel's install would.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(__file__).parents[1] / "cadp_med")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory(prefix="bench-header-") as tmp:
        work = Path(tmp)
        corpus_dir = work / "corpus"
        corpus_dir.mkdir()
        corpus, kinds = build_corpus(files, args.min_files, corpus_dir)
        size = sum(p.stat().st_size for p in corpus) / 2**20
        print(f"corpus: {len(corpus)} files ({size:.1f} MiB) from {len(files)} distinct real "
              f"files: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))  # fmt: skip
        tools = commands(corpus_dir, work / "out")
        if args.tools:
            tools = {k: v for k, v in tools.items() if k in args.tools}
        runs: dict[str, list[tuple[float, float, float, int, int]]] = {name: [] for name in tools}
        for repeat in range(args.repeats):
            for number, name in enumerate(tools):
                out = work / f"out-{number}-{repeat}"
                seconds, rss, pss, code, cpu = run(commands(corpus_dir, out)[name], env, out)
                runs[name].append((seconds, rss, pss, code, count_outputs(out), cpu))
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(out.with_name(out.name + ".quarantine"), ignore_errors=True)
    results = {}
    for name, tool_runs in runs.items():
        seconds = statistics.median(r[0] for r in tool_runs)
        results[name] = {
            "median_seconds": seconds,
            "files_per_second": len(corpus) / seconds,
            "peak_rss_mib": max(r[1] for r in tool_runs),
            "peak_tree_pss_mib": max(r[2] for r in tool_runs),
            "exit_codes": sorted({r[3] for r in tool_runs}),
            "outputs": min(r[4] for r in tool_runs),
            "seconds": [round(r[0], 2) for r in tool_runs],
            "median_cpu_seconds": statistics.median(r[5] for r in tool_runs),
        }
    print(f"\n{'tool':28} {'median s':>8} {'files/s':>8} {'CPU s':>6} {'peak RSS':>9} "
          f"{'peak PSS':>9} {'outputs':>8} {'exit':>6}  runs (s)")  # fmt: skip
    for name, r in results.items():
        print(f"{name:28} {r['median_seconds']:8.2f} {r['files_per_second']:8.1f} "
              f"{r['median_cpu_seconds']:6.2f} "
              f"{r['peak_rss_mib']:6.0f} MiB {r['peak_tree_pss_mib']:6.0f} MiB {r['outputs']:8d} "
              f"{','.join(map(str, r['exit_codes'])):>6}  {r['seconds']}")  # fmt: skip
    ours = results.get("cadp-med")
    floor = results.get("floor (pydicom read+write)")
    if ours is not None:
        print()
        if "dicognito" in results:
            ratio = ours["files_per_second"] / results["dicognito"]["files_per_second"]
            print(f"cadp-med / dicognito files/s: {ratio:.2f}x (goal >= 2x)")
        if "deid" in results:
            ratio = ours["files_per_second"] / results["deid"]["files_per_second"]
            print(f"cadp-med / deid files/s: {ratio:.2f}x")
        if floor is not None:
            ratio = floor["files_per_second"] / ours["files_per_second"]
            print(f"floor / cadp-med time: {ratio:.2f}x (goal <= 1.5x)")
        single = results.get("cadp-med --workers 1")
        if single is not None and "dicognito" in results:
            ratio = single["files_per_second"] / results["dicognito"]["files_per_second"]
            print(f"cadp-med --workers 1 / dicognito files/s: {ratio:.2f}x")
        if single is not None and floor is not None:
            ratio = floor["files_per_second"] / single["files_per_second"]
            print(f"floor / cadp-med --workers 1 time: {ratio:.2f}x")
        print(f"cadp-med peak RSS: {ours['peak_rss_mib']:.0f} MiB summed over its processes, "
              f"peak PSS {ours['peak_tree_pss_mib']:.0f} MiB (goal <= 200 MiB)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"files": len(corpus), "kinds": kinds,
                                         "results": results}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
