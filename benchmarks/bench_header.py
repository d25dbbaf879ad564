"""Header-only de-identification throughput, cadp-med against dicognito, deid and a floor.

Every tool does the same work per file: read it from disk, de-identify the header, write
the result to disk.  The floor is a plain pydicom read and write.  All tools run in this
one process, one after the other, on the same corpus, so the ratios compare like with like.

The corpus is every real DICOM file the test packages ship (pydicom, pydicom-data,
deid-data, dicognito's test data when its sdist is unpacked), copied round-robin until it
holds at least ``--min-files`` files.

Run::

    python benchmarks/bench_header.py --min-files 500
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pydicom


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


def build_corpus(files: list[Path], min_files: int, into: Path) -> list[Path]:
    corpus: list[Path] = []
    index = 0
    while len(corpus) < max(min_files, len(files)):
        source = files[index % len(files)]
        target = into / f"{len(corpus):05d}.dcm"
        shutil.copyfile(source, target)
        corpus.append(target)
        index += 1
    return corpus


def time_tool(
    name: str, process: Callable[[Path, Path], None], corpus: Iterable[Path], out: Path
) -> dict[str, float]:
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    files = list(corpus)
    start = time.perf_counter()
    cpu_start = time.process_time()
    for index, path in enumerate(files):
        try:
            process(path, out / f"{index:05d}.dcm")
        except Exception:  # noqa: BLE001 - count a tool's failures, keep timing the rest
            failures += 1
    seconds = time.perf_counter() - start
    # CPU time of this process (user + system): steadier than wall time when other
    # processes load the machine, but blind to time spent waiting (fsync, disk).
    cpu_seconds = time.process_time() - cpu_start
    return {
        "tool": name,
        "files": len(files),
        "seconds": seconds,
        "files_per_second": len(files) / seconds,
        "failures": failures,
        "cpu_ms_per_file": cpu_seconds * 1000 / len(files),
    }


def floor_read_write(path: Path, target: Path) -> None:
    ds = pydicom.dcmread(path, force=True)
    ds.save_as(target)


def make_cadp(key: bytes, *, durable: bool = True) -> Callable[[Path, Path], None]:
    """cadp-med as the pipeline runs it: Basic Profile, pseudonym path, atomic write.

    ``durable`` is write_instance's fsync-before-rename (on by default, as in the
    pipeline); the other tools and the floor never fsync, so both settings are timed.
    """
    from cadp_med.deid import Deidentifier, Profile
    from cadp_med.io.write import output_transfer_syntax, write_instance

    deidentifier = Deidentifier(Profile(), key)
    # The corpus repeats instances (the round-robin copies, and the test packages ship
    # some instances in several encodings), and cadp-med names each output after its
    # instance's pseudonyms. The n-th occurrence of an instance goes under its own root,
    # so every output is a new file, as for the other tools, not a rename over an earlier
    # output (which costs more, and which a real batch of distinct instances never does).
    occurrences: Counter[tuple[Path, str]] = Counter()

    def process(path: Path, target: Path) -> None:
        ds = pydicom.dcmread(path, force=True)
        result = deidentifier(ds)
        instance = (target.parent, result.pseudonyms.sop_uid)
        out_root = target.parent / f"occurrence-{occurrences[instance]}"
        occurrences[instance] += 1
        source_syntax = (
            getattr(ds.file_meta, "TransferSyntaxUID", None) if hasattr(ds, "file_meta") else None
        )
        syntax = output_transfer_syntax(source_syntax, pixels_unchanged=True)
        write_instance(
            result.dataset,
            out_root,
            result.pseudonyms,
            transfer_syntax=syntax,
            durable=durable,
        )

    return process


def make_dicognito() -> Callable[[Path, Path], None]:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()

    def process(path: Path, target: Path) -> None:
        ds = pydicom.dcmread(path, force=True)
        anonymizer.anonymize(ds)
        ds.save_as(target)

    return process


def make_deid() -> Callable[[Path, Path], None]:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    recipe = DeidRecipe()  # deid's default recipe

    def process(path: Path, target: Path) -> None:
        parsed = replace_identifiers(dicom_files=[str(path)], deid=recipe, save=False)
        dataset = parsed[0] if isinstance(parsed, list) else next(iter(parsed.values()))
        dataset.save_as(target)

    return process


def make_dicom_anonymizer() -> Callable[[Path, Path], None]:
    from dicomanonymizer import anonymize_dataset

    def process(path: Path, target: Path) -> None:
        ds = pydicom.dcmread(path, force=True)
        anonymize_dataset(ds)
        ds.save_as(target)

    return process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-files", type=int, default=500)
    parser.add_argument(
        "--repeats", type=int, default=3, help="repeats per tool (best and median are reported)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    files = real_dicom_files()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpus_dir = work / "corpus"
        corpus_dir.mkdir()
        corpus = build_corpus(files, args.min_files, corpus_dir)
        print(
            f"corpus: {len(corpus)} files from {len(files)} distinct real files, "
            f"{sum(p.stat().st_size for p in corpus) / 1e6:.1f} MB"
        )
        tools: dict[str, Callable[[], Callable[[Path, Path], None]]] = {
            "pydicom read+write (floor)": lambda: floor_read_write,
            "cadp-med": lambda: make_cadp(b"benchmark-key"),
            "cadp-med (durable=False)": lambda: make_cadp(b"benchmark-key", durable=False),
            "dicognito": make_dicognito,
            "deid (default recipe)": make_deid,
            "dicom-anonymizer": make_dicom_anonymizer,
        }
        processes: dict[str, Callable[[Path, Path], None]] = {}
        for name, factory in tools.items():
            try:
                processes[name] = factory()
            except ImportError as exc:
                print(f"{name}: not installed ({exc.name}); skipped")
        # Repeats are interleaved (every tool once, then again): on a shared machine a
        # burst of load then hits all tools alike instead of one tool's every run.
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in processes}
        for repeat in range(args.repeats):
            for number, (name, process) in enumerate(processes.items()):
                out = work / f"out-{number}-{repeat}"
                runs[name].append(time_tool(name, process, corpus, out))
                shutil.rmtree(out, ignore_errors=True)
        results = []
        for tool_runs in runs.values():
            best = dict(max(tool_runs, key=lambda r: r["files_per_second"]))
            best["median_files_per_second"] = statistics.median(
                r["files_per_second"] for r in tool_runs
            )
            best["max_failures"] = max(r["failures"] for r in tool_runs)
            best["min_cpu_ms_per_file"] = min(r["cpu_ms_per_file"] for r in tool_runs)
            results.append(best)

    floor = next(r for r in results if r["tool"].startswith("pydicom"))
    by_name = {r["tool"]: r for r in results}
    print(
        f"\n{'tool':28} {'best/s':>8} {'median/s':>8} {'failures':>8} {'floor/x':>8} "
        f"{'cpu ms':>7} {'cpu/floor':>9}"
    )
    for r in results:
        print(
            f"{r['tool']:28} {r['files_per_second']:8.1f} {r['median_files_per_second']:8.1f} "
            f"{r['max_failures']:8.0f} {floor['files_per_second'] / r['files_per_second']:8.2f} "
            f"{r['min_cpu_ms_per_file']:7.2f} "
            f"{r['min_cpu_ms_per_file'] / floor['min_cpu_ms_per_file']:9.2f}"
        )
    for cadp in ("cadp-med", "cadp-med (durable=False)"):
        if cadp not in by_name or "dicognito" not in by_name:
            continue
        print()
        for key, label in (("files_per_second", "best"), ("median_files_per_second", "median")):
            ours, theirs = by_name[cadp][key], by_name["dicognito"][key]
            print(f"{cadp} / dicognito ({label}): {ours / theirs:.2f}x (goal >= 2x)")
            print(f"floor / {cadp} ({label}): {floor[key] / ours:.2f}x (goal <= 1.5x)")
        ours_cpu = by_name[cadp]["min_cpu_ms_per_file"]
        print(
            f"CPU per file (least of the repeats): dicognito / {cadp}: "
            f"{by_name['dicognito']['min_cpu_ms_per_file'] / ours_cpu:.2f}x, "
            f"{cadp} / floor: {ours_cpu / floor['min_cpu_ms_per_file']:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
