"""Evaluate a trained medical cINN on its prepared slice set (held-out slices as test set).

No labelled medical data set exists on these machines, so the utility task is to predict
the model's own condition fields (plane, modality, slice-position bin) from the image:
train on privatized training slices, test on the original held-out slices.  Linkage and
fidelity are measured exactly as for the benchmark images; a report is written per target.

Usage::

    python pipelines/evaluate_medical.py --model models/cadp-64.safetensors \\
        --slices data/training_set.npz -o report/medical --device auto
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from cadp_med.evaluation import (
    EvalSettings,
    TrainSpec,
    load_eval_data,
    run_evaluation,
    write_report,
)
from cadp_med.evaluation._report import markdown_table
from cadp_med.model import load_model
from cadp_med.model.conditions import ConditionSchema
from cadp_med.training import resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--slices", type=Path, required=True, help="SliceSet .npz")
    parser.add_argument("-o", "--output", type=Path, default=Path("report/medical"))
    parser.add_argument("--targets", default="plane,modality,slice_pos")
    parser.add_argument("--eps", default="0.5,1,2,3,6,8,inf")
    parser.add_argument("--mechanism", default="laplace", choices=("laplace", "gaussian"))
    parser.add_argument("--release", default="default", choices=("default", "all"))
    parser.add_argument("--classifier-epochs", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--limit-train", type=int, default=None, help="Seeded subset (quick runs).")
    parser.add_argument("--no-dpsgd", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(2)
    model, card = load_model(args.model, device=device)
    schema = ConditionSchema.from_dict(card["conditions"])
    epsilons = tuple(math.inf if e == "inf" else float(e) for e in args.eps.split(","))
    summary = {}
    for target in (t.strip() for t in args.targets.split(",") if t.strip()):
        data = load_eval_data(str(args.slices), schema=schema, target=target, seed=args.seed)
        settings = EvalSettings(
            epsilons=epsilons,
            mechanism=args.mechanism,
            release=args.release,
            queries=args.queries,
            candidates=args.candidates,
            limit_train=args.limit_train,
            seed=args.seed,
            device=device,
            classifier=TrainSpec(epochs=args.classifier_epochs, batch_size=64, device=device),
            dpsgd=not args.no_dpsgd,
        )
        report = run_evaluation(model, card, data, settings, progress=print)
        write_report(report, args.output / target)
        print(f"## target: {target}\n{markdown_table(report)}")
        summary[target] = {
            "oo_accuracy": report["utility_protocol"]["oo_accuracy"],
            "po_accuracy": {r["epsilon"]: r["utility"]["po_accuracy"] for r in report["results"]},
            "turning_point": report["turning_point"],
        }
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
