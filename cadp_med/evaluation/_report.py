"""Write an evaluation report: ``report.json``, ``report.md`` and PNG plots (Agg backend)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

PLOTS = ("utility.png", "linkage.png", "fidelity.png", "examples.png")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (undefined AUC) and inf have no JSON form
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _attackers(report: dict[str, Any]) -> list[str]:
    return list(report["results"][0]["linkage"]) if report["results"] else []


def markdown_table(report: dict[str, Any]) -> str:
    """One row per epsilon: utility, linkage per attacker (top-1 / top-5 / AUC), fidelity."""
    attack = report["attack"]
    attackers = _attackers(report)
    head = ["eps", "p/o acc %", "o/o acc %", "DP-SGD acc %"]
    for name in attackers:
        head += [f"{name} top-1 %", f"{name} top-5 %", f"{name} AUC"]
    head += ["SSIM", "PSNR dB", "MAD"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    oo = report["utility_protocol"]["oo_accuracy"]
    for row in report["results"]:
        link, fid, util = row["linkage"], row["fidelity"], row["utility"]
        cells = [
            row["epsilon"] + ("" if row["dp"] else " (not DP)"),
            _pct(util["po_accuracy"]),
            _pct(oo),
            _pct(util["dpsgd"]["accuracy"]),
        ]
        for name in attackers:
            auc = link[name]["auc"]
            cells += [
                _pct(link[name]["top1"]),
                _pct(link[name]["top5"]),
                "n/a" if auc is None or not math.isfinite(auc) else f"{auc:.3f}",
            ]
        cells += [f"{fid['ssim']:.3f}", f"{fid['psnr']:.1f}", f"{fid['mad']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    chance = ["chance", "", "", ""]
    for _ in attackers:
        chance += [_pct(attack["chance_top1"]), _pct(attack["chance_top5"]), "0.500"]
    lines.append("| " + " | ".join(chance + ["", "", ""]) + " |")
    return "\n".join(lines)


def markdown_report(report: dict[str, Any]) -> str:
    """The whole ``report.md``: setup, the table and where the linkage curve turns."""
    data, mech, attack = report["data"], report["mechanism"], report["attack"]
    turn = report["turning_point"]
    rel = mech["release"]
    return "\n".join(
        [
            f"# cadp-med evaluation: {data['name']}",
            "",
            f"- data: {data['n_train']} training / {data['n_test']} test images, "
            f"{data['native_size']}x{data['native_size']} on a {data['model_size']} grid; "
            f"task: {data['task']} ({len(data['classes'])} classes)",
            f"- mechanism: {mech['kind']}, release '{rel['name']}' "
            f"[{rel['start']}, {rel['stop']}), {mech['clip_norm']} clip {mech['clip']:.3g}, "
            f"post-processing {mech['postprocess']}, refill temperature "
            f"{mech.get('temperature', 1.0):g}",
            f"- utility: {report['utility_protocol']['po']}; DP-SGD: "
            f"{report['utility_protocol']['dpsgd']}",
            f"- linkage: {attack['queries']} privatized images, {attack['candidates']} "
            f"same-condition candidates each ({attack['candidate_rule']})",
            "- linkage top-1 first exceeds 50% at eps = "
            + ", ".join(f"{turn[a] or 'never'} ({a})" for a in turn),
            "",
            markdown_table(report),
            "",
            "SSIM/PSNR/MAD compare each privatized image with its original: they show how "
            "much image survives, not privacy.  eps = inf adds no noise and is not DP.",
            "",
        ]
    )


def _plots(report: dict[str, Any], examples: dict[str, np.ndarray], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    xs = np.arange(len(rows))
    labels = [r["epsilon"] for r in rows]

    def axes(title: str, ylabel: str) -> Any:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.set_xticks(xs, labels)
        ax.set_xlabel("per-image epsilon")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        return fig, ax

    fig, ax = axes("Utility (test on originals)", "accuracy")
    ax.plot(xs, [r["utility"]["po_accuracy"] for r in rows], "o-", label="CADP p/o")
    dp = [r["utility"]["dpsgd"]["accuracy"] for r in rows]
    if any(v is not None for v in dp):
        ax.plot(xs, [np.nan if v is None else v for v in dp], "s--", label="DP-SGD")
    ax.axhline(report["utility_protocol"]["oo_accuracy"], color="k", ls=":", label="o/o")
    ax.legend()
    fig.savefig(out / "utility.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = axes("Linkage attack", "top-1 accuracy")
    for attacker in _attackers(report):
        ax.plot(xs, [r["linkage"][attacker]["top1"] for r in rows], "o-", label=attacker)
    ax.axhline(report["attack"]["chance_top1"], color="k", ls=":", label="chance")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.savefig(out / "linkage.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = axes("Fidelity (not privacy)", "SSIM")
    ax.plot(xs, [r["fidelity"]["ssim"] for r in rows], "o-")
    fig.savefig(out / "fidelity.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    keys = list(examples)
    n_cols = max(len(v) for v in examples.values()) if examples else 1
    fig, grid = plt.subplots(len(keys), n_cols, figsize=(n_cols, len(keys)), squeeze=False)
    for r, key in enumerate(keys):
        for col in range(n_cols):
            ax = grid[r][col]
            ax.axis("off")
            if col < len(examples[key]):
                ax.imshow(examples[key][col].squeeze(), cmap="gray", vmin=0, vmax=1)
        grid[r][0].set_title(key if key == "original" else f"eps={key}", fontsize=7, loc="left")
    fig.savefig(out / "examples.png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the plots into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in report.items() if not k.startswith("_")}
    json_path = out / "report.json"
    json_path.write_text(
        json.dumps(_json_safe(body), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    md_path = out / "report.md"
    md_path.write_text(markdown_report(body), encoding="utf-8")
    _plots(body, report.get("_examples", {}), out)
    return [json_path, md_path, *(out / name for name in PLOTS)]


__all__ = ["PLOTS", "markdown_report", "markdown_table", "write_report"]
