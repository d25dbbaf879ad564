"""Write the ``domains`` section into the card of the packaged default model, weights unchanged.

Usage (the slice set the model was trained on, from ``build_training_set.py`` as of the
model's training; it is not shipped)::

    python pipelines/build_training_set.py --size 128 -o .work/trainset_128.npz
    python pipelines/declare_default_domains.py --slice-set .work/trainset_128.npz

The script checks that the slice set is the model's training set: its sources must be the
card's ``training.sources`` and its training split must give exactly the card's
``training.counts``; otherwise it stops without writing. The domains are then counted on
the training split (``cadp_med.model._domains.domain_counts``) and written with
``cadp_med.model.checkpoint.update_model_card``, which keeps the tensors and so the
content hash.

Region: slices without a ``region`` label get the region of their source from
``SOURCE_REGION`` below. Every source of the default model is a head, checked by eye on
the middle slice of each: brain MR templates and test volumes (human and macaque) and the
InVesalius head CT.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCE_REGION = {
    "colin27-t1": "head",
    "colin27-t1-0p5mm": "head",
    "dipy-aniso-vox": "head",
    "dipy-s0-b0": "head",
    "dipy-t1-coronal-slice": "head",
    "inia19-macaque-t1": "head",
    "invesalius-cranium-ct": "head",
    "itk-brain-midsagittal-slice": "head",
    "itk-brain-pd-slice": "head",
    "itk-brain-t1-slice": "head",
    "itk-kmeans-t1": "head",
    "mni152-2009a-t1": "head",
    "nibabel-anatomical-t1": "head",
    "nibabel-example4d-epi": "head",
}


def main(argv: list[str] | None = None) -> int:
    from cadp_med.imaging import SliceSet
    from cadp_med.model import ConditionSchema, read_model_card
    from cadp_med.model._domains import domain_counts
    from cadp_med.model.checkpoint import update_model_card
    from cadp_med.training.metrics import condition_counts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice-set", type=Path, required=True)
    parser.add_argument(
        "--model", type=Path, default=REPO / "cadp_med/model/default/model.safetensors"
    )
    args = parser.parse_args(argv)

    card = read_model_card(args.model)
    slice_set = SliceSet.load(args.slice_set)
    train = [dict(m) for m in slice_set.metadata if m.get("split") == "train"]
    sources = sorted({str(m.get("source")) for m in slice_set.metadata})
    if sources != sorted(card["training"]["sources"]):
        print("the slice set's sources are not the model's training sources", file=sys.stderr)
        return 2
    schema = ConditionSchema.from_dict(card["conditions"])
    if condition_counts(schema, train) != card["training"]["counts"]:
        print("the slice set's training counts differ from the model card's", file=sys.stderr)
        return 2
    for meta in train:
        meta.setdefault("region", SOURCE_REGION[str(meta["source"])])
    domains = domain_counts(
        train,
        card["conditions"],
        counted_on=(
            f"the {len(train)} training slices (held-out slices not counted); the slice set "
            "was checked to reproduce the card's training.counts"
        ),
        region_source=(
            "per training source, checked by eye (pipelines/declare_default_domains.py): "
            "every source is a head"
        ),
    )
    update_model_card(args.model, {"domains": domains})
    print(json.dumps(domains, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
