"""The paper's tabular experiment on scikit-learn's diabetes table.

Each record (nine standardized features and the standardized disease-progression target)
is one 10-dimensional vector, conditioned on sex.  A FrEIA ``SequenceINN`` of fully
connected ``AllInOneBlock``s maps it to a latent; the per-record mechanism privatizes the
whole latent (there is no multi-scale structure to choose a subspace from) and the decoded
records are the release.  Utility: ridge regression trained on privatized training records
and tested on the original test records (R^2), next to training on the originals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cadp_med.evaluation._privatize import clip_rows
from cadp_med.privacy import LatentPrivatizer, MechanismConfig

COLUMNS = ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target")
_SEX_COLUMN = 1


def _subnet(c_in: int, c_out: int) -> nn.Module:
    net = nn.Sequential(nn.Linear(c_in, 64), nn.ReLU(), nn.Linear(64, c_out))
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def build_tabular_cinn(dim: int, cond_dim: int, blocks: int = 6) -> Any:
    """``SequenceINN`` of ``blocks`` conditional ``AllInOneBlock``s with seeded permutations."""
    import FrEIA.framework as ff
    import FrEIA.modules as fm

    inn = ff.SequenceINN(dim)
    for _ in range(blocks):
        inn.append(
            fm.AllInOneBlock,
            cond=0,
            cond_shape=(cond_dim,),
            subnet_constructor=_subnet,
            affine_clamping=2.0,
            permute_soft=False,
        )
    return inn


def load_diabetes_table(seed: int) -> dict[str, np.ndarray]:
    """Standardized records, one-hot sex and a seeded 75/25 split (train statistics only)."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    bunch = load_diabetes()
    features = np.delete(bunch.data, _SEX_COLUMN, axis=1)
    sex = (bunch.data[:, _SEX_COLUMN] > 0).astype(np.int64)
    records = np.column_stack([features, bunch.target]).astype(np.float64)
    tr, te = train_test_split(np.arange(len(records)), test_size=0.25, random_state=seed)
    mean, std = records[tr].mean(axis=0), records[tr].std(axis=0)
    records = (records - mean) / std
    return {"x_train": records[tr], "x_test": records[te], "s_train": sex[tr], "s_test": sex[te]}


def _ridge_r2(
    x_train: np.ndarray, x_test: np.ndarray, s_train: np.ndarray, s_test: np.ndarray
) -> float:
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=1.0).fit(np.column_stack([x_train[:, :-1], s_train]), x_train[:, -1])
    return float(model.score(np.column_stack([x_test[:, :-1], s_test]), x_test[:, -1]))


def run_categorical(
    out_dir: str | Path,
    *,
    epsilons: Sequence[float] = (0.5, 1.0, 3.0, math.inf),
    mechanism: str = "laplace",
    epochs: int = 400,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Train the tabular cINN, privatize at each epsilon, plot histograms, fit ridge.

    Returns the report dict (also written to ``categorical.json`` in ``out_dir``) with R^2
    per epsilon next to the original's, and writes ``categorical_eps<eps>.png``.
    """
    import json

    from cadp_med.evaluation._report import _json_safe

    table = load_diabetes_table(seed)
    x_tr = torch.from_numpy(table["x_train"]).float()
    c_tr = nn.functional.one_hot(torch.from_numpy(table["s_train"]), 2).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inn = build_tabular_cinn(x_tr.shape[1], 2)
    optimizer = torch.optim.Adam(inn.parameters(), lr=2e-3)
    for _ in range(epochs):  # full batch: 331 records
        z, log_det = inn(x_tr, c=[c_tr])
        loss = (0.5 * (z**2).sum(1) - log_det).mean() / x_tr.shape[1]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    inn.eval()
    progress(f"tabular cINN trained, final nll/dim {float(loss.detach()):.3f}")
    with torch.no_grad():
        z_tr = inn(x_tr, c=[c_tr])[0].double().numpy()
    p = 1 if mechanism == "laplace" else 2
    clip = float(np.percentile(np.linalg.norm(z_tr, ord=p, axis=1), 95))
    delta = 1.0 / len(z_tr)
    r2_orig = _ridge_r2(table["x_train"], table["x_test"], table["s_train"], table["s_test"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, eps in enumerate(epsilons):
        config = MechanismConfig(
            kind=mechanism,
            epsilon=eps,
            delta=delta if mechanism == "gaussian" else None,
            clip=clip,
        )
        privatizer = LatentPrivatizer(config, generator=torch.Generator().manual_seed(seed + index))
        z_priv = privatizer(torch.from_numpy(z_tr), noise_keys=range(len(z_tr)))
        with torch.no_grad():
            x_priv = inn(z_priv.float(), c=[c_tr], rev=True)[0].double().numpy()
        label = "inf" if math.isinf(eps) else f"{eps:g}"
        r2 = _ridge_r2(x_priv, table["x_test"], table["s_train"], table["s_test"])
        _histograms(table["x_train"], x_priv, label, out / f"categorical_eps{label}.png")
        rows.append({"epsilon": label, "dp": math.isfinite(eps), "ridge_r2_po": r2})
        progress(f"tabular eps={label}: ridge R^2 {r2:.3f} (original {r2_orig:.3f})")
    report = {
        "format": "cadp-med-evaluation-categorical/1",
        "data": "sklearn load_diabetes: 9 standardized features + target, conditioned on sex",
        "n_train": len(z_tr),
        "n_test": len(table["x_test"]),
        "mechanism": {"kind": mechanism, "clip": clip, "release": "all", "delta": delta},
        "ridge_r2_oo": r2_orig,
        "results": rows,
        "clipped_share": float(
            np.mean(np.linalg.norm(clip_rows(z_tr, clip, p) - z_tr, axis=1) > 0)
        ),
    }
    (out / "categorical.json").write_text(
        json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    return report


def _histograms(original: np.ndarray, private: np.ndarray, label: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 5, figsize=(14, 5))
    for col, ax in enumerate(axes.ravel()):
        bins = np.linspace(-3.5, 3.5, 30)
        ax.hist(original[:, col], bins=bins, alpha=0.5, density=True, label="original")
        ax.hist(private[:, col], bins=bins, alpha=0.5, density=True, label="privatized")
        ax.set_title(COLUMNS[col], fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"diabetes: original vs privatized, eps = {label}")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


__all__ = ["COLUMNS", "build_tabular_cinn", "load_diabetes_table", "run_categorical"]
