"""Build the default model's training set from the real volumes that packages ship.

Usage::

    python pipelines/build_training_set.py --size 128 -o .work/trainset_128.npz

Sources (see /work/shared/DATA.md): Debian ``mricron-data``, ``invesalius-examples`` and
``insighttoolkit5-examples``; the wheels of nilearn, dipy and nibabel. A missing source is
reported with the command that installs it and the build goes on with the others. Wheels
need not be installed: ``pip download --no-deps nilearn dipy -d .work/wheels`` is enough,
the files are read straight from the wheel.

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


@dataclass(frozen=True)
class Source:
    """One real image file and its honest labels."""

    id: str
    kind: str  # "nifti", "png", "npy" or "inv3"
    locate: Callable[[Path], Path | None]
    install: str
    licence: str
    contrast: str
    plane: str | None = None  # 2D images only
    species: str = "human"
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
    ]  # fmt: skip


def _labels(source: Source) -> dict[str, Any]:
    return {
        "modality": source.contrast.split("-")[0],
        "contrast": source.contrast,
        "species": source.species,
        "source": source.id,
    }


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
    """All informative slices of one source."""
    if source.kind == "nifti":
        return list(
            slices_from_nifti(
                path, axes=source.axes, modality=source.contrast.split("-")[0],
                contrast=source.contrast, species=source.species,
                min_foreground=min_foreground, source=source.id,
            )
        )  # fmt: skip
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


def build(size: int, output: Path, wheels: Path, exclude: set[str], min_foreground: float) -> int:
    started = time.perf_counter()
    normalizer = Normalizer()
    parts: list[Any] = []  # one SliceSet per source, so only one volume's slices are in memory
    used: list[dict[str, Any]] = []
    missing = 0
    with tempfile.TemporaryDirectory(prefix="cadp-trainset-") as cache:
        for source in sources(wheels):
            if source.id in exclude:
                print(f"  skip   {source.id:30s} (excluded)")
                continue
            path = source.locate(Path(cache))
            if path is None:
                missing += 1
                print(f"  MISSING {source.id:29s} install with: {source.install}")
                continue
            records = read_source(path, source, min_foreground)
            print(f"  read   {source.id:30s} {len(records):5d} slices  [{source.licence}]")
            parts.append(build_slice_set([(source.id, records)], size=size, normalizer=normalizer))
            used.append({"id": source.id, "licence": source.licence, "slices": len(records)})
            del records
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
        "sources": used,
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


def _summary(slice_set: SliceSet, output: Path, seconds: float) -> None:
    print(f"\n{len(slice_set)} slices, {slice_set.size}x{slice_set.size}, "
          f"{output.stat().st_size / 2**20:.1f} MiB at {output}, {seconds:.0f} s")  # fmt: skip
    for key in ("contrast", "plane", "species", "split", "source"):
        counts = Counter(str(m[key]) for m in slice_set.metadata)
        print(f"  {key:8s} " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


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
    args = parser.parse_args(argv)  # fmt: skip
    return build(args.size, args.output, args.wheels, set(args.exclude), args.min_foreground)


if __name__ == "__main__":
    raise SystemExit(main())
