"""Condition fidelity, realism and linkage of privatized medical slices (issue 11).

Usage::

    python pipelines/build_training_set.py --size 128 -o .work/trainset_128.npz
    python benchmarks/bench_fidelity.py --slices .work/trainset_128.npz \\
        -o benchmarks/results/fidelity

What it measures, on any model (default: the packaged one) and its own training slice set:

Condition fidelity
    One small CNN (the trunk of :class:`cadp_med.evaluation._classifiers.SmallCNN`, a 64-d
    embedding, one head per condition) is trained on the real slices that the generator
    never saw (the slice set's ``split == "heldout"`` blocks). It then predicts plane,
    modality/contrast, body region and slice position (regression, mean absolute error)
    from a stratified sample of other real slices ("originals", the reference) and from
    their privatized outputs at each epsilon. A privatized slice is faithful to its
    header when the classifier reads the same conditions from it as from a real slice.
Realism
    The sample is cut into two random halves A and B. A logistic-regression discriminator
    (5-fold cross-validated ROC AUC) and the Frechet distance, both on the classifier's
    64-d embedding, compare originals of A with the privatized outputs of B; the floor is
    originals of A against originals of B (``cadp_med.evaluation._realism``).
Linkage
    ``cadp-med evaluate``'s three attackers (pixel NCC, latent, learned ridge map;
    ``cadp_med.evaluation._linkage``) on the same sample, candidates sharing the query's
    released condition; chance is 1/K.

Privatization is the product's: the model card's clip and released block, the pixel
stage's default mechanism, post-processing and temperature (:class:`PixelOptions`), one
noise key per slice. The noise is seeded because this is an audit (released data never
use a known seed); it is never shrunk. ``inf`` rows are NOT differentially private.

Body region: when the model's condition schema has a ``region`` field its labels are used;
otherwise each source's region comes from ``benchmarks/fidelity_regions.json``. With the
volumes available today every source is a head, so region is one class and the report
says so instead of claiming an accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cadp_med.evaluation._classifiers import SmallCNN  # noqa: E402
from cadp_med.evaluation._linkage import (  # noqa: E402
    attack_summary,
    draw_candidates,
    latent_scores,
    learned_scores,
    pixel_scores,
)
from cadp_med.evaluation._privatize import (  # noqa: E402
    decode_all,
    encode_all,
    mechanism_scale,
    privatize_latents_keyed,
)
from cadp_med.evaluation._realism import discriminator_auc, frechet_distance  # noqa: E402
from cadp_med.evaluation._runner import ATTACKERS, eps_label  # noqa: E402
from cadp_med.model import ConditionSchema, load_model  # noqa: E402
from cadp_med.pixels import PixelOptions  # noqa: E402
from cadp_med.pixels._options import card_temperature  # noqa: E402
from cadp_med.privacy import MechanismConfig  # noqa: E402

DEFAULT_MODEL = REPO / "cadp_med" / "model" / "default" / "model.safetensors"
REGIONS = Path(__file__).resolve().parent / "fidelity_regions.json"
CATEGORICAL = ("plane", "modality", "region")
# Goals of issue 11 at eps = 2 (accuracies as fractions, MAE in slice-position units).
GOALS = {"plane": 0.90, "modality": 0.90, "region": 0.90, "slice_pos_mae": 0.10, "auc": 0.75}
GOAL_EPS = "2"


# -- labels ---------------------------------------------------------------------------------
def condition_labels(
    metadata: list[dict[str, Any]], schema: ConditionSchema, regions: dict[str, str]
) -> dict[str, list[Any]]:
    """Plane, modality/contrast, region (strings) and slice position (float) per slice.

    Modality is the model's own ``modality`` field label (``CT``, ``MR-T1`` ...), so the
    classes are the ones the generator is conditioned on.
    """
    fields = {f.name: f for f in schema.fields}
    out: dict[str, list[Any]] = {"plane": [], "modality": [], "region": [], "slice_pos": []}
    for meta in metadata:
        out["plane"].append(str(meta.get("plane")))
        out["modality"].append(schema.label(fields["modality"], meta))
        if "region" in fields:
            out["region"].append(schema.label(fields["region"], meta))
        else:
            out["region"].append(regions.get(str(meta.get("source")), "unknown"))
        out["slice_pos"].append(float(meta.get("slice_pos", 0.5)))
    return out


def load_regions(path: Path = REGIONS) -> dict[str, str]:
    """Source id -> body region, from the data table."""
    return dict(json.loads(path.read_text(encoding="utf-8"))["sources"])


# -- the condition classifier ---------------------------------------------------------------
class ConditionNet(nn.Module):
    """SmallCNN's conv trunk on an average-pooled slice (``pool`` x ``pool``), a 64-d
    embedding, one head per condition (categorical heads only for conditions with at
    least two classes). Pooling keeps CPU training within minutes; the conditions
    (plane, contrast, region, position) are visible at that scale."""

    def __init__(
        self, size: int, classes: dict[str, list[str]], embed: int = 64, pool: int = 4
    ) -> None:
        super().__init__()
        self.pool = pool
        side = size // pool
        self.features = SmallCNN(side, 1).features
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(32 * (side // 4) ** 2, embed), nn.ReLU())
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(embed, len(vocab))
                for name, vocab in classes.items()
                if len(vocab) > 1
            }
        )
        self.slice_pos = nn.Linear(embed, 1)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The 64-d penultimate features (realism metrics use these)."""
        return self.embed(self.features(nn.functional.avg_pool2d(x, self.pool)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e = self.embedding(x)
        out = {name: head(e) for name, head in self.heads.items()}
        out["slice_pos"] = torch.sigmoid(self.slice_pos(e))[:, 0]
        return out


def train_condition_net(
    x: np.ndarray,
    labels: dict[str, list[Any]],
    classes: dict[str, list[str]],
    *,
    epochs: int,
    seed: int,
    batch_size: int = 32,
) -> ConditionNet:
    """Train on real slices: cross-entropy per categorical head (classes weighted by the
    square root of their inverse frequency, so a rare contrast is not ignored without
    drowning the common ones) plus 5x the L1 error of slice position.
    Horizontal flips augment: they change neither plane, contrast, region nor position."""
    torch.manual_seed(seed)
    net = ConditionNet(int(x.shape[-1]), classes)
    targets = {
        name: torch.tensor([vocab.index(v) for v in labels[name]])
        for name, vocab in classes.items()
        if name in net.heads
    }
    weights = {
        name: (len(t) / (len(classes[name]) * torch.bincount(t, minlength=len(classes[name]))))
        .clamp(max=100.0)
        .sqrt()
        .float()
        for name, t in targets.items()
    }
    pos = torch.tensor(labels["slice_pos"], dtype=torch.float32)
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            xb = xt[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            out = net(xb)
            loss = 5.0 * (out["slice_pos"] - pos[idx]).abs().mean()
            for name, t in targets.items():
                loss = loss + nn.functional.cross_entropy(out[name], t[idx], weight=weights[name])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    net.eval()
    return net


def predict(
    net: ConditionNet, x: np.ndarray, classes: dict[str, list[str]]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(predicted labels per condition, ``[N, 64]`` embeddings)."""
    preds: dict[str, list[Any]] = {name: [] for name in [*classes, "slice_pos"]}
    feats = []
    with torch.no_grad():
        for start in range(0, len(x), 128):
            xb = torch.from_numpy(np.asarray(x[start : start + 128], dtype=np.float32))
            feats.append(net.embedding(xb).numpy())
            out = net(xb)
            for name, vocab in classes.items():
                if name in out:
                    preds[name].extend(vocab[i] for i in out[name].argmax(1).tolist())
                else:  # one class: the only possible answer
                    preds[name].extend([vocab[0]] * len(xb))
            preds["slice_pos"].extend(out["slice_pos"].tolist())
    return {k: np.asarray(v) for k, v in preds.items()}, np.concatenate(feats)


def condition_scores(
    preds: dict[str, np.ndarray], labels: dict[str, list[Any]], classes: dict[str, list[str]]
) -> dict[str, Any]:
    """Accuracy and balanced accuracy per categorical condition; slice-position MAE."""
    out: dict[str, Any] = {}
    for name in classes:
        truth = np.asarray(labels[name])
        hits = preds[name] == truth
        per_class = {c: float(hits[truth == c].mean()) for c in classes[name] if (truth == c).any()}
        out[name] = {
            "accuracy": float(hits.mean()),
            "balanced_accuracy": float(np.mean(list(per_class.values()))),
            "per_class": per_class,
        }
    out["slice_pos_mae"] = float(
        np.abs(preds["slice_pos"] - np.asarray(labels["slice_pos"])).mean()
    )
    return out


# -- sampling and privatization -------------------------------------------------------------
def evaluation_pool(
    metadata: list[dict[str, Any]], labels: dict[str, list[Any]], split: np.ndarray
) -> np.ndarray:
    """Slices the classifier may be judged on: the generator's training slices from volumes
    (a 2D image has no real slice position) whose region and (modality, plane) pair occur
    among the held-out slices (the classifier cannot know a pair it never saw)."""
    held = np.flatnonzero(split == "heldout")
    pairs = {(labels["modality"][i], labels["plane"][i]) for i in held}
    regions = {labels["region"][i] for i in held}
    return np.asarray(
        [
            i
            for i in np.flatnonzero(split != "heldout")
            if "axis" in metadata[i]
            and (labels["modality"][i], labels["plane"][i]) in pairs
            and labels["region"][i] in regions
        ],
        dtype=np.int64,
    )


def stratified_sample(strata: list[str], n: int, seed: int) -> np.ndarray:
    """Sorted indices: up to ``n // k`` per stratum, then filled at random up to ``n``."""
    rng = np.random.default_rng(seed)
    strata_arr = np.asarray(strata)
    kinds = sorted(set(strata))
    chosen: list[int] = []
    for kind in kinds:
        pool = np.flatnonzero(strata_arr == kind)
        chosen.extend(rng.permutation(pool)[: n // len(kinds)].tolist())
    rest = np.setdiff1d(np.arange(len(strata)), chosen)
    chosen.extend(rng.permutation(rest)[: max(0, n - len(chosen))].tolist())
    return np.sort(np.asarray(chosen[:n], dtype=np.int64))


def mechanism(card: dict[str, Any], eps: float) -> MechanismConfig:
    """The pixel stage's default per-slice mechanism at ``eps``: the card's clip, release
    and measured temperature (1 when the card has none), as ``cadp-med anonymize`` uses."""
    opts = PixelOptions(epsilon=eps)
    temperature = opts.temperature if opts.temperature is not None else card_temperature(card)
    norm = "clip_l1" if opts.mechanism == "laplace" else "clip_l2"
    rel = card["latent"]["default_release"]
    return MechanismConfig(
        kind=opts.mechanism,
        epsilon=float(eps),
        delta=opts.delta,
        clip=float(card["privacy_defaults"][norm]),
        release=(int(rel["start"]), int(rel["stop"])),
        postprocess=opts.postprocess,
        temperature=float(temperature),
    )


def privatize(
    model: Any, card: dict[str, Any], x: np.ndarray, c: np.ndarray, eps: float, seed: int
) -> np.ndarray:
    """Encode, privatize per slice (one noise key each), decode, clamp to [0, 1]."""
    z = encode_all(model, x, c, device="cpu", batch_size=32)
    z_priv = privatize_latents_keyed(z, mechanism(card, eps), seed=seed)
    return decode_all(model, z_priv, c, device="cpu", batch_size=32)


# -- the benchmark --------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    from cadp_med.imaging import SliceSet

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    model, card = load_model(args.model, device="cpu")
    schema = ConditionSchema.from_dict(card["conditions"])
    slices = SliceSet.load(args.slices)
    labels_all = condition_labels(slices.metadata, schema, load_regions())
    split = np.asarray([m.get("split") for m in slices.metadata])
    heldout = np.flatnonzero(split == "heldout")
    if len(heldout) == 0:
        raise SystemExit("the slice set has no held-out slices (split == 'heldout')")

    def subset(index: np.ndarray) -> dict[str, list[Any]]:
        return {k: [v[i] for i in index] for k, v in labels_all.items()}

    held_labels = subset(heldout)
    classes = {name: sorted(set(held_labels[name])) for name in CATEGORICAL}
    pool_arr = evaluation_pool(slices.metadata, labels_all, split)
    pool = pool_arr.tolist()
    pick = stratified_sample([labels_all["modality"][i] for i in pool], args.eval_slices, args.seed)
    evaluated = pool_arr[pick]
    eval_labels = subset(evaluated)
    x_eval = slices.x[evaluated]
    c_eval = schema.encode_batch([slices.metadata[i] for i in evaluated])
    print(f"classifier: {len(heldout)} held-out real slices; evaluated: {len(evaluated)} slices")

    t0 = time.perf_counter()
    net = train_condition_net(
        slices.x[heldout], held_labels, classes, epochs=args.classifier_epochs, seed=args.seed
    )
    train_s = time.perf_counter() - t0
    print(f"condition classifier trained in {train_s:.0f} s")

    # Realism halves: A's originals are the real reference, B's images are judged.
    order = np.random.default_rng(args.seed + 5).permutation(len(evaluated))
    half_a, half_b = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])

    preds, feats = predict(net, x_eval, classes)
    rows: list[dict[str, Any]] = [
        {
            "epsilon": "originals",
            "dp": None,
            "conditions": condition_scores(preds, eval_labels, classes),
            "realism": {
                "discriminator": discriminator_auc(feats[half_a], feats[half_b], seed=args.seed),
                "frechet": frechet_distance(feats[half_a], feats[half_b]),
            },
        }
    ]
    print(f"originals: {_brief(rows[0])}")
    real_a = feats[half_a]

    # Linkage: candidates share the query's released condition.
    keys = [tuple(schema.label(f, slices.metadata[i]) for f in schema.fields) for i in evaluated]
    lookup: dict[tuple[str, ...], int] = {}
    groups = np.asarray([lookup.setdefault(k, len(lookup)) for k in keys])
    sets = draw_candidates(groups, args.queries, args.candidates, args.seed + 2)
    rel = card["latent"]["default_release"]
    release = (int(rel["start"]), int(rel["stop"]))
    q_cond = np.repeat(c_eval[sets.queries], args.candidates, axis=0)
    cand_latents = encode_all(
        model, x_eval[sets.members.ravel()], q_cond, device="cpu", batch_size=32
    ).reshape(len(sets.queries), args.candidates, -1)
    z_clean = encode_all(model, x_eval, c_eval, device="cpu", batch_size=32)
    native = slices.size
    examples = {}
    for index, eps in enumerate(args.epsilons):
        label = eps_label(eps)
        config = mechanism(card, eps)
        z_priv = privatize_latents_keyed(z_clean, config, seed=args.seed * 1_000 + index)
        x_priv = decode_all(model, z_priv, c_eval, device="cpu", batch_size=32)
        preds_p, feats_p = predict(net, x_priv, classes)
        q_latents = encode_all(
            model, x_priv[sets.queries], c_eval[sets.queries], device="cpu", batch_size=32
        )
        p_norm = 1 if config.kind.value == "laplace" else 2
        linkage = {
            "pixel": attack_summary(pixel_scores(x_priv[sets.queries], x_eval, sets, native), sets),
            "latent": attack_summary(
                latent_scores(q_latents, cand_latents, release, config.clip, p_norm), sets
            ),
            "learned": attack_summary(
                learned_scores(x_priv, x_eval, sets, native, seed=args.seed + 3), sets
            ),
        }
        row = {
            "epsilon": label,
            "dp": math.isfinite(eps),
            "noise_scale": mechanism_scale(config),
            "conditions": condition_scores(preds_p, eval_labels, classes),
            "realism": {
                "discriminator": discriminator_auc(real_a, feats_p[half_b], seed=args.seed),
                "frechet": frechet_distance(real_a, feats_p[half_b]),
            },
            "linkage": linkage,
        }
        rows.append(row)
        examples[label] = x_priv[:6]
        print(f"eps={label}: {_brief(row)}")

    config2 = mechanism(card, 2.0)
    report = {
        "format": "cadp-med-fidelity/1",
        "model": {
            "path": _rel(args.model),
            "content_hash": card.get("content_hash"),
            "heldout_bits_per_dim": card.get("heldout_bits_per_dim"),
            "training_sources": card.get("training", {}).get("sources"),
        },
        "data": {
            "slices": _rel(args.slices),
            "classifier_training": {
                "n": len(heldout),
                "rule": "the slice set's held-out blocks (split == 'heldout'): never seen by "
                "the generator; neighbouring blocks of the same volumes were",
                "counts": {name: _counts(held_labels[name]) for name in CATEGORICAL},
            },
            "evaluated": {
                "n": len(evaluated),
                "rule": "generator-training slices from volumes with a (modality, plane) "
                "pair that occurs in the held-out set, stratified by modality "
                f"(up to {args.eval_slices} // classes each), seed {args.seed}",
                "counts": {name: _counts(eval_labels[name]) for name in CATEGORICAL},
            },
            "region_labels": "schema field 'region'"
            if "region" in schema.names
            else "benchmarks/fidelity_regions.json (source -> region)",
            "region_classes": classes["region"],
        },
        "classifier": {
            "net": "SmallCNN trunk on 4x average-pooled slices (32x32), 64-d embedding, "
            "one head per condition with >= 2 classes; slice position by sigmoid regression",
            "epochs": args.classifier_epochs,
            "train_seconds": round(train_s, 1),
            "guessing_baselines": guessing_baselines(held_labels, eval_labels),
        },
        "mechanism": {
            "kind": config2.kind.value,
            "clip": config2.clip,
            "clip_norm": config2.clip_norm,
            "release": {"name": rel["name"], "start": release[0], "stop": release[1]},
            "postprocess": config2.postprocess.value,
            "temperature": config2.temperature,
            "noise_keys": "one per slice (its index); privatizer seeded for this audit",
        },
        "realism_protocol": "halves A/B of the evaluated slices; originals of A against "
        "B's images (originals row: originals of B, the floor); logistic regression on the "
        "classifier's 64-d embedding, 5-fold stratified CV, pooled out-of-fold ROC AUC; "
        "Frechet distance of Gaussians fitted to the same embeddings",
        "linkage_protocol": {
            "queries": int(len(sets.queries)),
            "candidates": args.candidates,
            "chance_top1": sets.chance_top1,
            "candidate_rule": "same released condition group; true source plus K-1 others",
        },
        "goals_at_eps_2": GOALS,
        "results": rows,
        "verdict": verdict(rows),
        "settings": {
            "seed": args.seed,
            "threads": args.threads,
            "eps": [eps_label(e) for e in args.epsilons],
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    return {"report": report, "examples": examples, "originals": x_eval[:6]}


def guessing_baselines(
    train: dict[str, list[Any]], evaluated: dict[str, list[Any]]
) -> dict[str, float]:
    """What a classifier that ignores the image scores: the held-out set's most common
    class per condition, and its median slice position (the MAE of a constant guess)."""
    from collections import Counter

    out = {}
    for name in CATEGORICAL:
        guess = Counter(train[name]).most_common(1)[0][0]
        out[f"{name}_majority_accuracy"] = float(np.mean(np.asarray(evaluated[name]) == guess))
    median = float(np.median(train["slice_pos"]))
    out["slice_pos_constant_mae"] = float(
        np.abs(np.asarray(evaluated["slice_pos"]) - median).mean()
    )
    return out


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Met / not met for each goal of issue 11 at eps = 2 (``None``: not measurable)."""
    row = next((r for r in rows if r["epsilon"] == GOAL_EPS), None)
    if row is None:
        return {}
    cond = row["conditions"]
    out: dict[str, Any] = {}
    for name in ("plane", "modality", "region"):
        single = len(cond[name]["per_class"]) < 2
        out[name] = {
            "value": cond[name]["accuracy"],
            "goal": f">= {GOALS[name]}",
            "met": None if single else cond[name]["accuracy"] >= GOALS[name],
            **({"note": "one class in the data: not measurable"} if single else {}),
        }
    out["slice_pos_mae"] = {
        "value": cond["slice_pos_mae"],
        "goal": f"<= {GOALS['slice_pos_mae']}",
        "met": cond["slice_pos_mae"] <= GOALS["slice_pos_mae"],
    }
    auc = row["realism"]["discriminator"]["auc"]
    out["discriminator_auc"] = {"value": auc, "goal": f"<= {GOALS['auc']}", "met": auc <= 0.75}
    return out


def _counts(values: list[Any]) -> dict[str, int]:
    from collections import Counter

    return dict(sorted(Counter(str(v) for v in values).items()))


def _rel(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return Path(path).name


def _brief(row: dict[str, Any]) -> str:
    c = row["conditions"]
    text = (
        f"plane {c['plane']['accuracy']:.3f} modality {c['modality']['accuracy']:.3f} "
        f"region {c['region']['accuracy']:.3f} pos MAE {c['slice_pos_mae']:.3f} "
        f"AUC {row['realism']['discriminator']['auc']:.3f} FD {row['realism']['frechet']:.2f}"
    )
    if "linkage" in row:
        text += " linkage top-1 " + "/".join(f"{row['linkage'][a]['top1']:.3f}" for a in ATTACKERS)
    return text


# -- outputs --------------------------------------------------------------------------------
def markdown(report: dict[str, Any]) -> str:
    """The results table (one row per epsilon) and the verdict at eps = 2."""
    chance = report["linkage_protocol"]["chance_top1"]
    lines = [
        "| eps | plane % | modality % (balanced) | region % | slice pos MAE | "
        "disc. AUC | Frechet | linkage top-1 % pixel / latent / learned |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        c, r = row["conditions"], row["realism"]
        label = row["epsilon"] + (" (not DP)" if row["epsilon"] == "inf" else "")
        if row["epsilon"] == "originals":
            label = "originals (floor)"
        link = (
            " / ".join(f"{100 * row['linkage'][a]['top1']:.1f}" for a in ATTACKERS)
            if "linkage" in row
            else ""
        )
        region = f"{100 * c['region']['accuracy']:.1f}"
        if len(c["region"]["per_class"]) < 2:
            region += " (1 class)"
        lines.append(
            f"| {label} | {100 * c['plane']['accuracy']:.1f} | "
            f"{100 * c['modality']['accuracy']:.1f} "
            f"({100 * c['modality']['balanced_accuracy']:.1f})"
            f" | {region} | {c['slice_pos_mae']:.3f} | {r['discriminator']['auc']:.3f} | "
            f"{r['frechet']:.2f} | {link} |"
        )
    lines.append("")
    lines.append(f"Linkage chance top-1: {100 * chance:.1f} %.")
    base = report["classifier"]["guessing_baselines"]
    lines.append(
        "Guessing without the image (held-out majority class / median position): plane "
        f"{100 * base['plane_majority_accuracy']:.1f} %, modality "
        f"{100 * base['modality_majority_accuracy']:.1f} %, slice position MAE "
        f"{base['slice_pos_constant_mae']:.3f}."
    )
    lines.append("")
    lines.append("Goals at eps = 2 (issue 11):")
    for name, v in report["verdict"].items():
        state = "not measurable" if v["met"] is None else ("met" if v["met"] else "NOT met")
        lines.append(f"- {name}: {v['value']:.3f} (goal {v['goal']}): {state}")
    return "\n".join(lines) + "\n"


def figure(report: dict[str, Any], path: Path) -> None:
    """Condition accuracies, slice-position MAE and discriminator AUC against epsilon."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    labels = [r["epsilon"] for r in rows]
    xs = np.arange(len(rows))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, marker in (("plane", "o"), ("modality", "s"), ("region", "^")):
        axes[0].plot(
            xs, [r["conditions"][name]["accuracy"] for r in rows], marker=marker, label=name
        )
    axes[0].axhline(0.9, color="grey", ls="--", lw=1, label="goal at eps 2")
    axes[0].set_ylabel("accuracy")
    axes[0].set_ylim(0, 1.02)
    axes[1].plot(xs, [r["conditions"]["slice_pos_mae"] for r in rows], marker="o")
    axes[1].axhline(0.10, color="grey", ls="--", lw=1)
    axes[1].set_ylabel("slice position MAE")
    axes[2].plot(xs, [r["realism"]["discriminator"]["auc"] for r in rows], marker="o")
    axes[2].axhline(0.75, color="grey", ls="--", lw=1)
    axes[2].set_ylabel("real-vs-privatized AUC")
    axes[2].set_ylim(0.4, 1.02)
    for ax in axes:
        ax.set_xticks(xs, labels)
        ax.set_xlabel("eps (originals = real slices)")
    axes[0].legend(fontsize=8)
    fig.suptitle("Condition fidelity and realism of privatized slices, default model")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--slices", type=Path, required=True, help="SliceSet .npz with splits")
    parser.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/fidelity"))
    parser.add_argument("--eps", default="1,2,8,inf")
    parser.add_argument("--eval-slices", type=int, default=600)
    parser.add_argument("--classifier-epochs", type=int, default=25)
    parser.add_argument("--queries", type=int, default=120)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.epsilons = [math.inf if e == "inf" else float(e) for e in args.eps.split(",")]
    out = run(args)
    report = out["report"]
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "report.json").write_text(
        json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    table = markdown(report)
    (args.output / "report.md").write_text(table, encoding="utf-8")
    figure(report, args.output / "fidelity.png")
    print(table)
    print(
        f"wrote {args.output}/report.json, report.md, fidelity.png "
        f"in {report['settings']['seconds']} s"
    )


if __name__ == "__main__":
    main()
