"""Montage of real slices and their privatized outputs at several epsilons (issue 11).

Usage::

    python pipelines/build_training_set.py --size 128 -o .work/trainset_128.npz
    python benchmarks/montage.py --slices .work/trainset_128.npz \\
        -o benchmarks/results/fidelity/montage.png

Rows: brain MR (Colin27 T1, BSD-3, from the slice set) at several slice positions in two
planes, and a head CT from pydicom-data (``693_UNCI.dcm``, MIT; read offline, never
downloaded) taken through the pixel stage's own steps: series window from the model card's
normalizer, model grid, conditions from the header. The InVesalius head CT (GPL-2) is
never drawn, so the committed figure holds no GPL pixels. Columns: the original on the
model grid, then its privatized outputs (the pixel stage's default mechanism and the card's
clip, seeded for a repeatable figure). Under each image: the conditions released with it.
``inf`` is NOT differentially private and is shown as the ceiling.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_fidelity import DEFAULT_MODEL, load_regions, privatize  # noqa: E402

from cadp_med.evaluation._runner import eps_label  # noqa: E402
from cadp_med.model import ConditionSchema, load_model, metadata_from_dataset  # noqa: E402

CT_FILE = "693_UNCI.dcm"  # pydicom-data: CT head, 512x512
CT_SOURCE = "pydicom-data-693-ct-head"


def brain_rows(
    slices: Any, source: str, planes: list[str], positions: list[float]
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """The slice of ``source`` nearest each position, per plane: (image, metadata)."""
    rows = []
    for plane in planes:
        index = [i for i, m in enumerate(slices.metadata) if m["source"] == source]
        index = [i for i in index if slices.metadata[i]["plane"] == plane]
        if not index:
            raise SystemExit(f"no {plane} slice of {source} in the slice set")
        for pos in positions:
            best = min(index, key=lambda i: abs(slices.metadata[i]["slice_pos"] - pos))
            rows.append((slices.x[best, 0], dict(slices.metadata[best])))
    return rows


def ct_row(path: Path, card: dict[str, Any], schema: ConditionSchema) -> tuple[np.ndarray, dict]:
    """One DICOM CT slice on the model grid, as the pixel stage prepares it."""
    import pydicom

    from cadp_med.imaging import Normalizer, slices_from_dicom_series, to_model_grid

    ds = pydicom.dcmread(path)
    (record,) = slices_from_dicom_series([ds])
    normalizer = Normalizer.from_spec(card["normalization"]["spec"])
    modality = record.metadata.get("contrast") or record.metadata.get("modality")
    window = normalizer.fit(np.ravel(record.pixels), modality=modality)
    x = Normalizer.forward(record.pixels, window)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        x = 1.0 - x
    grid, _ = to_model_grid(x, int(card["architecture"]["size"]), record.spacing)
    meta = metadata_from_dataset(ds, schema=schema)
    meta["source"] = CT_SOURCE
    return grid, meta


def caption(meta: dict[str, Any], schema: ConditionSchema, regions: dict[str, str]) -> str:
    """The released condition values of one slice, one short line each."""
    fields = {f.name: f for f in schema.fields}
    modality = schema.label(fields["modality"], meta)
    region = (
        schema.label(fields["region"], meta)
        if "region" in fields
        else regions.get(str(meta.get("source")), "?")
    )
    return f"{modality}, {region}\n{meta.get('plane')}, pos {float(meta['slice_pos']):.2f}"


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pydicom.data

    from cadp_med.imaging import SliceSet

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--slices", type=Path, required=True, help="SliceSet .npz")
    parser.add_argument("--source", default="colin27-t1", help="brain MR source in the set")
    parser.add_argument("--planes", default="axial,sagittal")
    parser.add_argument("--positions", default="0.3,0.5,0.7")
    parser.add_argument("--ct", type=Path, default=None, help=f"default: pydicom-data {CT_FILE}")
    parser.add_argument("--eps", default="1,2,8,inf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=HERE / "results/fidelity/montage.png")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    model, card = load_model(args.model, device="cpu")
    schema = ConditionSchema.from_dict(card["conditions"])
    regions = load_regions()
    slices = SliceSet.load(args.slices)
    rows = brain_rows(
        slices,
        args.source,
        args.planes.split(","),
        [float(p) for p in args.positions.split(",")],
    )
    ct_path = args.ct or Path(pydicom.data.get_testdata_file(CT_FILE))
    rows.append(ct_row(ct_path, card, schema))

    epsilons = [math.inf if e == "inf" else float(e) for e in args.eps.split(",")]
    x = np.stack([image for image, _ in rows])[:, None].astype(np.float32)
    c = schema.encode_batch([meta for _, meta in rows])
    columns = [("original", x)]
    for index, eps in enumerate(epsilons):
        title = f"eps {eps_label(eps)}" + (" (not DP)" if math.isinf(eps) else "")
        columns.append((title, privatize(model, card, x, c, eps, seed=args.seed * 100 + index)))

    n_rows, n_cols = len(rows), len(columns)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.9 * n_cols, 2.35 * n_rows))
    for col, (title, images) in enumerate(columns):
        for row, (_, meta) in enumerate(rows):
            ax = axes[row, col]
            ax.imshow(images[row, 0], cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption(meta, schema, regions), fontsize=7)
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.suptitle(
        "Originals and privatized outputs (default model, Laplace, card clip, posterior sample)",
        fontsize=9,
    )
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=80)
    plt.close(fig)
    from PIL import Image

    # Everything in it is grey: one 8-bit channel instead of RGBA, a third of the bytes.
    Image.open(args.output).convert("L").save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
