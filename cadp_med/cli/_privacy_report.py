"""``cadp-med privacy-report``: what a privacy setting guarantees, without torch.

The latent dimension, the default released subspace and the clip defaults come from the
model card (read with :func:`cadp_med.model.checkpoint.read_model_card`, which does not
import torch), from ``--model`` or the packaged default model; or they are given
explicitly with ``--latent-dim`` / ``--release-dims`` / ``--clip``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import typer

from cadp_med.errors import CadpError, ConfigError

_RELEASES = ("coarsest", "all")
_BUDGETS = ("slice", "study")


def _default_model() -> Path | None:
    try:
        candidate = resources.files("cadp_med") / "model" / "default" / "model.safetensors"
    except ModuleNotFoundError:  # pragma: no cover - package always importable here
        return None
    path = Path(str(candidate))
    return path if path.is_file() else None


def _read_card(path: Path) -> dict[str, Any]:
    try:
        from cadp_med.model.checkpoint import read_model_card
    except ImportError as exc:
        raise ConfigError(
            "reading a model card needs cadp_med.model.checkpoint; "
            "give --latent-dim and --release-dims instead"
        ) from exc
    return dict(read_model_card(path))


def _resolve(
    model: Path | None,
    latent_dim: int | None,
    release_dims: int | None,
    release: str,
    kind: str,
    clip: float | None,
) -> tuple[int, tuple[int, int] | None, float, str]:
    """(D, release range or None, clip, prior) from the card or the explicit options.

    The prior is the card's ``architecture.prior`` ("standard" for cards written before
    the conditional prior existed, and without a card).
    """
    if model is not None and latent_dim is not None:
        raise ConfigError("give either --model or --latent-dim, not both")
    if model is None and latent_dim is None:
        model = _default_model()
        if model is None:
            raise ConfigError("no packaged default model: give --model or --latent-dim")
    norm_key = "clip_l1" if kind == "laplace" else "clip_l2"
    if model is not None:
        card = _read_card(model)
        try:
            dim = int(card["latent"]["dim"])
            default_release = card["latent"]["default_release"]
            span = (int(default_release["start"]), int(default_release["stop"]))
            defaults = card["privacy_defaults"]["release" if release == "coarsest" else "full"]
            card_clip = float(defaults[norm_key])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError("the model card lacks latent or privacy_defaults fields") from exc
        rng = span if release == "coarsest" else None
        prior = str((card.get("architecture") or {}).get("prior", "standard"))
        return dim, rng, clip if clip is not None else card_clip, prior
    assert latent_dim is not None
    if clip is None:
        raise ConfigError("--clip is required without a model card")
    if release == "all":
        return latent_dim, None, clip, "standard"
    if release_dims is None:
        raise ConfigError("--release-dims is required with --release coarsest and no model")
    if not 0 < release_dims <= latent_dim:
        raise ConfigError("--release-dims must be in [1, --latent-dim]")
    return latent_dim, (0, release_dims), clip, "standard"


def privacy_report(
    eps: float = typer.Option(
        ..., "--eps", help="Per-slice epsilon (study total with --budget study); inf = NOT DP."
    ),
    mechanism: str = typer.Option("laplace", "--mechanism", help="laplace or gaussian."),
    delta: float | None = typer.Option(None, "--delta", help="Delta, required for gaussian."),
    clip: float | None = typer.Option(None, "--clip", help="Clip norm C (default: model card)."),
    release: str = typer.Option("coarsest", "--release", help="coarsest or all."),
    slices: int = typer.Option(1, "--slices", min=1, help="Slices per study."),
    budget: str = typer.Option("slice", "--budget", help="slice: --eps per slice; study: total."),
    rr_eps: float | None = typer.Option(
        None, "--condition-rr-eps", help="Randomized response epsilon on conditions."
    ),
    window_share: float = typer.Option(
        0.1,
        "--window-eps-share",
        help="Share of each image's eps for its series' DP intensity window (MR, ...; not CT).",
    ),
    model: Path | None = typer.Option(None, "--model", help="Model file whose card to read."),
    latent_dim: int | None = typer.Option(None, "--latent-dim", help="D without a model."),
    release_dims: int | None = typer.Option(None, "--release-dims", help="|S| without a model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Report the per-slice and per-study guarantee of a latent privacy setting."""
    from cadp_med.privacy._config import MechanismConfig
    from cadp_med.privacy.accounting import split_budget
    from cadp_med.privacy.report import privacy_report as build_report

    try:
        if release not in _RELEASES:
            raise ConfigError(f"--release must be one of {list(_RELEASES)}")
        if budget not in _BUDGETS:
            raise ConfigError(f"--budget must be one of {list(_BUDGETS)}")
        kind = mechanism.strip().lower()
        dim, span, clip_value, prior = _resolve(
            model, latent_dim, release_dims, release, kind, clip
        )
        config = MechanismConfig(
            kind=kind,
            epsilon=eps,
            delta=delta,
            clip=clip_value,
            release=span,
            condition_rr_epsilon=rr_eps,
        )
        if budget == "study":
            config = split_budget(eps, slices, delta, base=config)
        released = dim if span is None else span[1] - span[0]
        report = build_report(
            config=config,
            latent_dim=dim,
            release_dims=released,
            n_slices=slices,
            prior=prior,
            window_share=window_share,
        )
    except CadpError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    else:
        typer.echo(report.to_text())
