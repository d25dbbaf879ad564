"""The evaluation loop: utility (p/o, o/o, DP-SGD), linkage and fidelity per epsilon.

For each epsilon the training images are privatized once, image by image, with the
model's own per-image mechanism; those releases feed all three measurements, so utility,
privacy and fidelity describe the same released data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cadp_med.errors import ConfigError
from cadp_med.evaluation._classifiers import TrainSpec, accuracy, train_classifier
from cadp_med.evaluation._data import EvalData, crop_to, subsample
from cadp_med.evaluation._linkage import (
    attack_summary,
    draw_candidates,
    latent_scores,
    learned_scores,
    pixel_scores,
)
from cadp_med.evaluation._metrics import mean_abs_diff, psnr, ssim
from cadp_med.evaluation._privatize import (
    decode_all,
    encode_all,
    mechanism_scale,
    privatize_latents_keyed,
)
from cadp_med.pixels._options import card_temperature
from cadp_med.privacy import MechanismConfig

Progress = Callable[[str], None]
ATTACKERS = ("pixel", "latent", "learned")


@dataclass(frozen=True)
class EvalSettings:
    """What to measure and how much of it.

    Parameters
    ----------
    epsilons
        Per-image epsilons; ``math.inf`` means no noise (labelled "not DP").
    mechanism
        ``"laplace"`` or ``"gaussian"``.
    release
        ``"default"`` (the card's ``latent.default_release``) or ``"all"``.
    postprocess
        The mechanism's post-processing (default: posterior sample, as in the paper).
    temperature
        Scale of the prior draws outside the released block; ``None`` is the model card's
        measured default (1, the prior itself, when the card has none).
    delta
        Delta of the Gaussian mechanism and of DP-SGD; ``None`` is ``1/N`` (N training
        images).
    candidates, queries
        Linkage candidate-set size ``K`` (chance ``1/K``) and number of attacked images.
    limit_train, limit_test
        Seeded subsets for quick runs (``None``: everything).
    classifier
        Shared optimisation settings of every downstream classifier.
    """

    epsilons: Sequence[float] = (0.5, 1.0, 2.0, 3.0, 6.0, math.inf)
    mechanism: str = "laplace"
    release: str = "default"
    postprocess: str = "posterior-sample"
    temperature: float | None = None
    delta: float | None = None
    candidates: int = 20
    queries: int = 300
    limit_train: int | None = None
    limit_test: int | None = None
    seed: int = 0
    device: str = "cpu"
    classifier: TrainSpec = field(default_factory=TrainSpec)
    dpsgd: bool = True


def steps(settings: EvalSettings) -> int:
    """Number of progress steps :func:`run_evaluation` reports."""
    return 2 + 5 * len(settings.epsilons)


def _release(card: dict[str, Any], which: str, kind: str) -> tuple[tuple[int, int], float, str]:
    norm = "clip_l1" if kind == "laplace" else "clip_l2"
    defaults = card["privacy_defaults"]
    if which == "default":
        rel = card["latent"]["default_release"]
        return (int(rel["start"]), int(rel["stop"])), float(defaults[norm]), str(rel["name"])
    if which == "all":
        return (0, int(card["latent"]["dim"])), float(defaults["full"][norm]), "all"
    raise ConfigError("--release must be 'default' or 'all'")


def eps_label(eps: float) -> str:
    """``"inf"`` or the number without trailing zeros."""
    return "inf" if math.isinf(eps) else f"{eps:g}"


def run_evaluation(
    model: Any,
    card: dict[str, Any],
    data: EvalData,
    settings: EvalSettings,
    progress: Progress = lambda _msg: None,
) -> dict[str, Any]:
    """Measure utility, linkage and fidelity at every epsilon; return the report dict.

    Parameters
    ----------
    model
        The trained :class:`~cadp_med.model.CINN` (eval mode, on ``settings.device``).
    card
        Its model card (release subspace and clip defaults come from here).
    data
        Train/test images on the model's grid with metadata and task labels.
    settings
        See :class:`EvalSettings`.
    progress
        Called once per finished step with a short description.
    """
    if any(not eps > 0 for eps in settings.epsilons):
        raise ConfigError("every epsilon must be > 0 (inf for no noise)")
    device, seed = settings.device, settings.seed
    kind = settings.mechanism
    release, clip, release_name = _release(card, settings.release, kind)
    p_norm = 1 if kind == "laplace" else 2
    temperature = (
        card_temperature(card) if settings.temperature is None else float(settings.temperature)
    )

    tr = subsample(len(data.x_train), settings.limit_train, seed)
    te = subsample(len(data.x_test), settings.limit_test, seed + 1)
    x_tr, y_tr = data.x_train[tr], data.y_train[tr]
    meta_tr = [data.meta_train[i] for i in tr]
    x_te, y_te = data.x_test[te], data.y_test[te]
    n_train, n_classes = len(x_tr), len(data.classes)
    delta = settings.delta if settings.delta is not None else 1.0 / n_train
    c_tr = data.schema.encode_batch(meta_tr)
    spec = settings.classifier

    oo_model, _ = train_classifier(x_tr, y_tr, n_classes, spec, seed=seed)
    oo_acc = accuracy(oo_model, x_te, y_te, device)
    progress(f"o/o accuracy {oo_acc:.3f}")

    z_clean = encode_all(model, x_tr, c_tr, device=device)
    sets = draw_candidates(data.groups(meta_tr), settings.queries, settings.candidates, seed + 2)
    # Each candidate is encoded under its query's released condition (the attacker's view).
    q_cond = np.repeat(c_tr[sets.queries], settings.candidates, axis=0)
    cand_flat = x_tr[sets.members.ravel()]
    cand_latents = encode_all(model, cand_flat, q_cond, device=device).reshape(
        len(sets.queries), settings.candidates, -1
    )
    progress(f"linkage set: {len(sets.queries)} queries x {settings.candidates} candidates")

    results = []
    shown = np.arange(min(8, n_train))
    examples = {"original": crop_to(x_tr[shown], data.native_size)}
    for index, eps in enumerate(settings.epsilons):
        label = eps_label(eps)
        config = MechanismConfig(
            kind=kind,
            epsilon=eps,
            delta=delta if kind == "gaussian" else None,
            clip=clip,
            release=release,
            postprocess=settings.postprocess,
            temperature=temperature,
        )
        z_priv = privatize_latents_keyed(z_clean, config, seed=seed * 1_000 + index)
        x_priv = decode_all(model, z_priv, c_tr, device=device)
        progress(f"eps={label}: privatized {n_train} images")

        po_model, _ = train_classifier(x_priv, y_tr, n_classes, spec, seed=seed)
        po_acc = accuracy(po_model, x_te, y_te, device)
        progress(f"eps={label}: p/o accuracy {po_acc:.3f}")

        dpsgd: dict[str, Any] = {"accuracy": None, "epsilon_spent": None, "noise_multiplier": None}
        if settings.dpsgd:
            dp_model, info = train_classifier(
                x_tr, y_tr, n_classes, spec, seed=seed, dp_epsilon=eps, dp_delta=delta
            )
            dpsgd = {
                "accuracy": accuracy(dp_model, x_te, y_te, device),
                "epsilon_spent": None if math.isinf(info["epsilon"]) else info["epsilon"],
                "noise_multiplier": info["noise_multiplier"],
                "private": math.isfinite(eps),
            }
        progress(f"eps={label}: DP-SGD baseline")

        native = data.native_size
        examples[label] = crop_to(x_priv[shown], native)
        orig_n, priv_n = crop_to(x_tr, native), crop_to(x_priv, native)
        fidelity = {
            "ssim": float(ssim(orig_n, priv_n).mean()),
            "psnr": float(psnr(orig_n, priv_n).mean()),
            "mad": float(mean_abs_diff(orig_n, priv_n).mean()),
        }
        progress(f"eps={label}: fidelity SSIM {fidelity['ssim']:.3f}")

        q_private = x_priv[sets.queries]
        q_latents = encode_all(model, q_private, c_tr[sets.queries], device=device)
        linkage = {
            "pixel": attack_summary(pixel_scores(q_private, x_tr, sets, native), sets),
            "latent": attack_summary(
                latent_scores(q_latents, cand_latents, release, clip, p_norm), sets
            ),
            "learned": attack_summary(
                learned_scores(x_priv, x_tr, sets, native, seed=seed + 3), sets
            ),
        }
        best = max(linkage[a]["top1"] for a in ATTACKERS)
        progress(f"eps={label}: best linkage top-1 {best:.3f}")
        results.append(
            {
                "epsilon": label,
                "dp": math.isfinite(eps),
                "noise_scale": mechanism_scale(config),
                "utility": {"po_accuracy": po_acc, "dpsgd": dpsgd},
                "fidelity": fidelity,
                "linkage": linkage,
            }
        )

    return {
        "format": "cadp-med-evaluation/1",
        "data": {
            "name": data.name,
            "task": data.target,
            "classes": list(data.classes),
            "n_train": n_train,
            "n_test": int(len(x_te)),
            "native_size": data.native_size,
            "model_size": data.size,
        },
        "model": {
            "content_hash": card.get("content_hash"),
            "latent_dim": int(card["latent"]["dim"]),
            "heldout_bits_per_dim": card.get("heldout_bits_per_dim"),
        },
        "mechanism": {
            "kind": kind,
            "release": {"name": release_name, "start": release[0], "stop": release[1]},
            "clip": clip,
            "clip_norm": "L1" if p_norm == 1 else "L2",
            "delta": delta if kind == "gaussian" else None,
            "postprocess": settings.postprocess,
            "temperature": temperature,
            "noise_keys": "one per image (its index); privatizer seeded for this audit",
        },
        "utility_protocol": {
            "po": "trained on privatized training images, tested on original test images",
            "oo_accuracy": oo_acc,
            "dpsgd": f"Opacus DP-SGD (RDP, Poisson sampling) on originals, delta={delta:.3g}; "
            "eps=inf is plain training",
            "classifier": type(oo_model).__name__,
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
        },
        "attack": {
            "queries": int(len(sets.queries)),
            "candidates": settings.candidates,
            "chance_top1": sets.chance_top1,
            "chance_top5": sets.chance_topk(5),
            "candidate_rule": "same condition group; true source plus K-1 random others",
        },
        "results": results,
        "turning_point": {attacker: turning_point(results, attacker) for attacker in ATTACKERS},
        "settings": {"seed": seed, "device": str(device), "torch_threads": torch.get_num_threads()},
        # Image arrays for the example figure; write_report drops them from the JSON.
        "_examples": examples,
    }


def turning_point(results: Sequence[dict[str, Any]], attacker: str) -> str | None:
    """Smallest epsilon whose top-1 linkage exceeds 50% (``None``: never)."""
    hits = [r["epsilon"] for r in results if r["linkage"][attacker]["top1"] > 0.5]
    if not hits:
        return None
    return min(hits, key=lambda label: math.inf if label == "inf" else float(label))


__all__ = ["ATTACKERS", "EvalSettings", "eps_label", "run_evaluation", "steps", "turning_point"]
