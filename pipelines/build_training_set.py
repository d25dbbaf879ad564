"""Build the default model's training set from the real volumes that packages ship.

Usage::

    python pipelines/build_training_set.py --size 128 -o .work/trainset_128.npz

Sources (see /work/shared/DATA.md): Debian ``mricron-data``, ``invesalius-examples`` and
``insighttoolkit5-examples``; the wheels of nilearn, dipy and nibabel; the real clinical
DICOM images of pydicom-data (CT head, MR shoulder, MR abdomen, CR chest, CR extremity)
and pydicom's own test files (CT_small, MR_small, the dicomdirtests series). A missing
source is reported with the command that installs it and the build goes on with the
others. Wheels need not be installed: ``pip download --no-deps nilearn dipy -d
.work/wheels`` is enough, the files are read straight from the wheel.

Labels: every slice gets ``modality``/``contrast``, ``plane``, ``slice_pos``, ``species``
and ``region`` (the body region: head, neck, chest, abdomen, pelvis, spine, upper-limb,
lower-limb, whole-body). DICOM slices get modality, contrast, plane and slice position
from their headers through the same reader that ``anonymize`` uses, so training labels
and inference conditions agree; region is stated per source below (checked by eye).
The output's ``provenance`` carries the exact data list (package, file, licence, counts)
and the counts per condition value and per domain (contrast x region x plane), for the
model card.

Licences: everything is BSD/MIT/Apache except the InVesalius head CT (GPL-2), which is
read at build time only. The output .npz holds slices of it, so it is never committed
(``.work/`` is git-ignored); ``--exclude invesalius-cranium-ct`` builds a GPL-free set.

Held-out split: there are too few volumes to hold out whole volumes, so within each
(source, axis) the slice indices are cut into blocks of ``BLOCK`` consecutive indices and a
seeded fraction ``HELDOUT_FRACTION`` of the blocks is held out; blocks keep near-identical
neighbouring slices on one side of the split. Single 2D images are always "train".
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cadp_med.imaging import (  # noqa: E402
    Normalizer,
    SliceRecord,
    SliceSet,
    build_slice_set,
    slices_from_nifti,
    slices_from_volume,
)

SEED = 20261127
BLOCK = 8
HELDOUT_FRACTION = 0.15
MRICRON = Path("/usr/share/mricron/templates")
ITK_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")
CRANIUM = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")
APT = "apt-get update && apt-get install -y {}"
#: DICOM images smaller than this (pixels, either side) are skipped by default: the
#: dicomdirtests series are 16x16 thumbnails that would teach the model blur.
MIN_SIDE = 32


@dataclass(frozen=True)
class Source:
    """One real image file and its honest labels."""

    id: str
    kind: str  # "nifti", "png", "npy", "inv3" or "dicom" (a file or a folder of files)
    locate: Callable[[Path], Path | None]
    install: str
    licence: str
    contrast: str  # for "dicom": read from the header; the value here is only documentation
    plane: str | None = None  # 2D images only
    species: str = "human"
    region: str = "head"
    package: str = ""
    member: str = ""
    axes: tuple[int, ...] = (0, 1, 2)
    extra: dict[str, Any] = field(default_factory=dict)


def _file(path: Path) -> Callable[[Path], Path | None]:
    return lambda _cache: path if path.is_file() else None


def _in_package(package: str, member: str, wheels: Path) -> Callable[[Path], Path | None]:
    """A data file of an installed package, else of a downloaded wheel in ``wheels``."""

    def locate(cache: Path) -> Path | None:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            candidate = Path(next(iter(spec.submodule_search_locations))).parent / member
            if candidate.is_file():
                return candidate
        for wheel in sorted(wheels.glob(f"{package}-*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                if member in archive.namelist():
                    target = cache / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
                    return target
        return None

    return locate


def _package_data(package: str, member: str) -> Callable[[Path], Path | None]:
    """A file or folder inside an installed package (never downloaded: pydicom's data
    manager would try the network for a missing file)."""

    def locate(_cache: Path) -> Path | None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return None
        candidate = Path(next(iter(spec.submodule_search_locations))) / member
        return candidate if candidate.exists() else None

    return locate


def dicom_sources() -> list[Source]:
    """Real DICOM images from pydicom-data and pydicom (MIT); the uncompressed variant of
    each (the compressed copies hold the same pixels)."""
    tests = "data/test_files/"
    dirs = tests + "dicomdirtests/"

    def pdd(id: str, member: str, contrast: str, region: str) -> Source:
        return Source(id, "dicom", _package_data("data_store", "data/" + member),
                      "pip install pydicom-data", "MIT", contrast, region=region,
                      package="pydicom-data", member=member)  # fmt: skip

    def pyd(id: str, member: str, contrast: str, region: str) -> Source:
        return Source(id, "dicom", _package_data("pydicom", member), "pip install pydicom",
                      "MIT", contrast, region=region, package="pydicom", member=member)  # fmt: skip

    return [
        pdd("pydicom-data-ct-head", "693_UNCR.dcm", "CT", "head"),
        pdd("pydicom-data-ct-head-enhanced", "eCT_Supplemental.dcm", "CT", "head"),
        pdd("pydicom-data-mr-shoulder", "MR2_UNCR.dcm", "MR-T1", "upper-limb"),
        pdd("pydicom-data-mr-abdomen", "MR-SIEMENS-DICOM-WithOverlays.dcm", "MR-T1", "abdomen"),
        pdd("pydicom-data-mr-head-enhanced", "emri_small.dcm", "MR-other", "head"),
        pdd("pydicom-data-cr-chest", "RG1_UNCR.dcm", "CR", "chest"),
        # Distal tibia (the study is of a fibroma there).
        pdd("pydicom-data-cr-extremity", "RG3_UNCR.dcm", "CR", "lower-limb"),
        # A small field of view centred on a thoracic vertebra.
        pyd("pydicom-ct-small", tests + "CT_small.dcm", "CT", "spine"),
        # Anatomy not identifiable with confidence: region left unknown.
        pyd("pydicom-mr-small", tests + "MR_small.dcm", "MR-T2", "unknown"),
        pyd("pydicom-dicomdir-cr-cspine", dirs + "77654033/CR1", "CR", "spine"),
        pyd("pydicom-dicomdir-ct-brain", dirs + "77654033/CT2", "CT", "head"),
        pyd("pydicom-dicomdir-ct-cardiac", dirs + "98892001/CT5N", "CT", "chest"),
        pyd("pydicom-dicomdir-mr-brain-localizer", dirs + "98892003/MR2", "MR-other", "head"),
    ]


def sources(wheels: Path) -> list[Source]:
    """The training sources, in build order (the order fixes the output order)."""
    pip = "pip install {0}  (or: pip download --no-deps {0} -d " + str(wheels) + ")"
    mni = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    nib = "nibabel/tests/data/"
    return [
        Source("colin27-t1", "nifti", _file(MRICRON / "ch2.nii.gz"),
               APT.format("mricron-data"), "BSD-3", "MR-T1"),
        Source("colin27-t1-0p5mm", "nifti", _file(MRICRON / "ch2better.nii.gz"),
               APT.format("mricron-data"), "BSD-3", "MR-T1"),
        Source("inia19-macaque-t1", "nifti", _file(MRICRON / "inia19-t1-brain.nii.gz"),
               APT.format("mricron-data"), "BSD-3", "MR-T1", species="macaque"),
        Source("mni152-2009a-t1", "nifti", _in_package("nilearn", mni, wheels),
               pip.format("nilearn"), "BSD", "MR-T1"),
        Source("invesalius-cranium-ct", "inv3", _file(CRANIUM),
               APT.format("invesalius-examples"), "GPL-2 (build time only)", "CT"),
        Source("itk-kmeans-t1", "nifti", _file(ITK_DATA / "KmeansTest_T1UCharRaw.nii.gz"),
               APT.format("insighttoolkit5-examples"), "Apache-2.0", "MR-T1"),
        Source("itk-brain-t1-slice", "png", _file(ITK_DATA / "BrainT1Slice.png"),
               APT.format("insighttoolkit5-examples"), "Apache-2.0", "MR-T1", plane="axial"),
        Source("itk-brain-pd-slice", "png", _file(ITK_DATA / "BrainProtonDensitySlice.png"),
               APT.format("insighttoolkit5-examples"), "Apache-2.0", "MR-PD", plane="axial"),
        Source("itk-brain-midsagittal-slice", "png",
               _file(ITK_DATA / "BrainMidSagittalSlice.png"),
               APT.format("insighttoolkit5-examples"), "Apache-2.0", "MR-T1", plane="sagittal"),
        # 10 thick slices: only axial slices are images; the other axes are 10 pixels tall.
        Source("dipy-s0-b0", "nifti",
               _in_package("dipy", "dipy/data/files/S0_10slices.nii.gz", wheels),
               pip.format("dipy"), "BSD", "MR-DWI", axes=(2,)),
        Source("dipy-aniso-vox", "nifti",
               _in_package("dipy", "dipy/data/files/aniso_vox.nii.gz", wheels),
               pip.format("dipy"), "BSD", "MR-other"),
        Source("dipy-t1-coronal-slice", "npy",
               _in_package("dipy", "dipy/data/files/t1_coronal_slice.npy", wheels),
               pip.format("dipy"), "BSD", "MR-T1", plane="coronal"),
        Source("nibabel-example4d-epi", "nifti",
               _in_package("nibabel", nib + "example4d.nii.gz", wheels),
               pip.format("nibabel"), "MIT", "MR-EPI"),
        Source("nibabel-anatomical-t1", "nifti",
               _in_package("nibabel", nib + "anatomical.nii", wheels),
               pip.format("nibabel"), "MIT", "MR-T1"),
        *dicom_sources(),
    ]  # fmt: skip


def _labels(source: Source) -> dict[str, Any]:
    return {
        "modality": source.contrast.split("-")[0],
        "contrast": source.contrast,
        "species": source.species,
        "region": source.region,
        "source": source.id,
    }


_DICOM_LABELS = ("modality", "contrast", "plane", "slice_pos")


def _read_dicom(path: Path, source: Source, min_side: int) -> tuple[list[Any], int]:
    """(groups of records, one per series; skipped-thumbnail count) of a DICOM source.

    Labels come from the header through ``slices_from_dicom_series``, the reader the
    pixel stage uses. MONOCHROME1 images are negated in modality units, which after the
    percentile window is the ``1 - x`` the pixel stage applies: the model always sees
    bright = dense.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from cadp_med.imaging import slices_from_dicom_series

    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    series: dict[str, list[Any]] = {}
    order: list[str] = []
    skipped = 0
    for file in files:
        try:
            ds = pydicom.dcmread(file)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "PixelData" not in ds:
            continue
        if min(int(ds.Rows), int(ds.Columns)) < min_side:
            skipped += 1
            continue
        uid = str(ds.get("SeriesInstanceUID", ""))
        if uid not in series:
            order.append(uid)
        series.setdefault(uid, []).append(ds)
    groups = []
    for k, uid in enumerate(order):
        records = slices_from_dicom_series(series[uid])
        series_id = source.id if len(order) == 1 else f"{source.id}-{k}"
        for record in records:
            if record.metadata.get("photometric", "").upper() == "MONOCHROME1":
                record.pixels = -record.pixels
            if min(record.spacing) <= 0:  # e.g. PixelSpacing 0\0 in the CR chest
                record.spacing = (1.0, 1.0)
            keep = {key: record.metadata[key] for key in _DICOM_LABELS}
            record.metadata = {
                **keep,
                "species": source.species,
                "region": source.region,
                "source": source.id,
                "slice_index": int(record.metadata["instance"]),
                "frame": int(record.metadata["frame"]),
            }
        groups.append((series_id, records))
    return groups, skipped


def _read_cranium(path: Path, source: Source, min_foreground: float) -> Iterator[SliceRecord]:
    """InVesalius project: ``matrix.dat`` is int16 HU, shape (z, row, column).

    Checked by eye: rows run posterior → anterior (the head rest is at row 0) and z runs
    inferior → superior; columns are taken to run right → left as in DICOM.
    """
    with tarfile.open(path, "r:gz") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("matrix.dat"))
        handle = archive.extractfile(member)
        if handle is None:
            raise FileNotFoundError("matrix.dat")
        raw = np.frombuffer(handle.read(), dtype="<i2").reshape(108, 256, 256)
    ras = raw.transpose(2, 1, 0)[::-1, :, :].astype(np.float32)  # (R, A, S)
    yield from slices_from_volume(
        ras, (0.957, 0.957, 1.5), axes=source.axes, metadata=_labels(source),
        min_foreground=min_foreground,
    )  # fmt: skip


def _read_2d(path: Path, source: Source) -> Iterator[SliceRecord]:
    if source.kind == "npy":
        pixels = np.load(path, allow_pickle=False)
    else:
        import SimpleITK as sitk

        pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        if pixels.ndim == 3:  # grey stored as RGB
            pixels = pixels[..., :3] @ np.array([0.299, 0.587, 0.114])
    # One slice of unknown position: the middle of the range is the least wrong label.
    meta = {**_labels(source), "plane": source.plane, "slice_pos": 0.5, "slice_index": 0}
    yield SliceRecord(pixels=pixels, spacing=(1.0, 1.0), metadata=meta)


def read_source(path: Path, source: Source, min_foreground: float) -> list[SliceRecord]:
    """All informative slices of one volume or 2D image source (not "dicom")."""
    if source.kind == "nifti":
        records = list(
            slices_from_nifti(
                path, axes=source.axes, modality=source.contrast.split("-")[0],
                contrast=source.contrast, species=source.species,
                min_foreground=min_foreground, source=source.id,
            )
        )  # fmt: skip
        for record in records:
            record.metadata["region"] = source.region
        return records
    if source.kind == "inv3":
        return list(_read_cranium(path, source, min_foreground))
    return list(_read_2d(path, source))


def split_flags(metadata: list[dict[str, Any]]) -> list[str]:
    """Seeded block split per (source, axis); see the module docstring."""
    flags = []
    for meta in metadata:
        if "axis" not in meta:
            flags.append("train")
            continue
        key = f"{meta['source']}/{meta['axis']}/{meta['slice_index'] // BLOCK}"
        # A hash of the block id seeds the draw, so the flag of a slice does not depend on
        # which other sources were available.
        seq = np.random.SeedSequence([SEED, zlib.crc32(key.encode())])
        held = np.random.default_rng(seq).random() < HELDOUT_FRACTION
        flags.append("heldout" if held else "train")
    return flags


def _data_entry(source: Source, path: Path, slices: int) -> dict[str, Any]:
    """One row of the data list: where the file comes from, its licence, its labels."""
    package = source.package or _package_of(source)
    member = source.member or path.name
    return {
        "id": source.id,
        "package": package,
        "file": member,
        "licence": source.licence,
        "slices": slices,
        "contrast": source.contrast,
        "region": source.region,
        "species": source.species,
    }


def _package_of(source: Source) -> str:
    install = source.install
    if "apt-get" in install:
        return "debian:" + install.split()[-1]
    return "pypi:" + install.split()[2]


def build(
    size: int,
    output: Path,
    wheels: Path,
    exclude: set[str],
    min_foreground: float,
    min_side: int = MIN_SIDE,
) -> int:
    started = time.perf_counter()
    normalizer = Normalizer()
    parts: list[Any] = []  # one SliceSet per source, so only one volume's slices are in memory
    used: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    missing = 0
    with tempfile.TemporaryDirectory(prefix="cadp-trainset-") as cache:
        for source in sources(wheels):
            if source.id in exclude:
                print(f"  skip   {source.id:30s} (excluded)")
                skipped.append({"id": source.id, "reason": "--exclude"})
                continue
            path = source.locate(Path(cache))
            if path is None:
                missing += 1
                print(f"  MISSING {source.id:29s} install with: {source.install}")
                skipped.append({"id": source.id, "reason": "not installed"})
                continue
            if source.kind == "dicom":
                groups, thumbnails = _read_dicom(path, source, min_side)
                if thumbnails:
                    print(f"  skip   {source.id:30s} {thumbnails} image(s) below {min_side} px")
                    skipped.append(
                        {"id": source.id, "reason": f"{thumbnails} image(s) smaller than "
                         f"--min-side {min_side} pixels"}
                    )  # fmt: skip
            else:
                groups = [(source.id, read_source(path, source, min_foreground))]
            count = sum(len(records) for _, records in groups)
            if not count:
                continue
            print(f"  read   {source.id:30s} {count:5d} slices  [{source.licence}]")
            parts.append(build_slice_set(groups, size=size, normalizer=normalizer))
            used.append(_data_entry(source, path, count))
            del groups
    if not parts:
        print("no source found; install the packages listed above", file=sys.stderr)
        return 2
    slice_set = SliceSet(
        x=np.concatenate([part.x for part in parts]),
        metadata=[meta for part in parts for meta in part.metadata],
        normalization={
            "spec": normalizer.to_spec(),
            "windows": {k: v for part in parts for k, v in part.normalization["windows"].items()},
        },
    )
    for meta, flag in zip(slice_set.metadata, split_flags(slice_set.metadata), strict=True):
        meta["split"] = flag
    slice_set.provenance = {
        "builder": "pipelines/build_training_set.py",
        "size": size,
        "min_foreground": min_foreground,
        "min_side": min_side,
        "sources": used,
        "skipped": skipped,
        "counts": condition_counts(slice_set.metadata),
        "domains": domain_counts(slice_set.metadata),
        "split_rule": (
            f"per (source, axis): slice_index // {BLOCK} is a block; a block is held out "
            f"when Generator(SeedSequence([{SEED}, crc32('source/axis/block')])).random() "
            f"< {HELDOUT_FRACTION}; single 2D images are train"
        ),
    }
    slice_set.save(output)
    _summary(slice_set, output, time.perf_counter() - started)
    if missing:
        print(f"{missing} source(s) missing: see the install hints above")
    return 0


_COUNTED = ("contrast", "plane", "region", "species", "split")


def condition_counts(metadata: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Slices per value of each label, over all slices and over the training split."""
    out: dict[str, dict[str, int]] = {}
    for key in _COUNTED:
        out[key] = dict(sorted(Counter(str(m.get(key)) for m in metadata).items()))
    return out


def domain_key(meta: dict[str, Any]) -> str:
    """The domain of a slice: ``contrast x region x plane``."""
    return f"{meta.get('contrast')} x {meta.get('region')} x {meta.get('plane')}"


def domain_counts(metadata: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Slices per domain, all and training split only, largest first."""
    total = Counter(domain_key(m) for m in metadata)
    train = Counter(domain_key(m) for m in metadata if m.get("split") != "heldout")
    return {
        key: {"slices": total[key], "train": train[key]}
        for key, _ in sorted(total.items(), key=lambda item: (-item[1], item[0]))
    }


def _summary(slice_set: SliceSet, output: Path, seconds: float) -> None:
    print(f"\n{len(slice_set)} slices, {slice_set.size}x{slice_set.size}, "
          f"{output.stat().st_size / 2**20:.1f} MiB at {output}, {seconds:.0f} s")  # fmt: skip
    for key, counts in slice_set.provenance["counts"].items():
        print(f"  {key:8s} " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    print("  domains (contrast x region x plane: slices / train):")
    for key, counts in slice_set.provenance["domains"].items():
        print(f"    {key:34s} {counts['slices']:5d} / {counts['train']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="model grid side (pixels)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .npz")
    parser.add_argument(
        "--wheels",
        type=Path,
        default=REPO / ".work" / "wheels",
        help="folder of downloaded wheels (nilearn, dipy) to read data from",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SOURCE_ID",
        help="leave a source out (repeatable)",
    )
    parser.add_argument(
        "--min-foreground",
        type=float,
        default=0.05,
        help="skip slices with a smaller fraction of foreground voxels",
    )
    parser.add_argument(
        "--min-side",
        type=int,
        default=MIN_SIDE,
        help="skip DICOM images with fewer pixels than this on a side (thumbnails)",
    )
    parser.add_argument(
        "--data-list",
        type=Path,
        default=None,
        help="also write the data list and counts (provenance) as JSON here",
    )
    args = parser.parse_args(argv)  # fmt: skip
    code = build(
        args.size, args.output, args.wheels, set(args.exclude), args.min_foreground, args.min_side
    )
    if code == 0 and args.data_list is not None:
        provenance = SliceSet.load(args.output).provenance
        args.data_list.write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
