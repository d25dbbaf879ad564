"""``cadp-med train``: fit a conditional INN on slices from DICOM folders, NIfTI volumes or
prepared slice sets (``.npz``), and write it with its model card.

torch, FrEIA and the imaging stack are imported inside the command body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cadp_med.cli._output import configure_logging, is_tty, print_json, print_table, usage_errors
from cadp_med.errors import ConfigError, ModelError

_DEFAULT_CONDITIONS = "modality,plane,slice_pos"


def _load_data(data: list[Path], size: int, axes: tuple[int, ...], modality: str | None) -> Any:
    """Concatenate prepared ``.npz`` slice sets and freshly sliced DICOM/NIfTI inputs."""
    import numpy as np

    try:
        from cadp_med.imaging import SliceSet, load_slice_set
    except ImportError as exc:
        raise ConfigError("cadp_med.imaging is not available in this installation") from exc

    prepared = [p for p in data if p.suffix == ".npz"]
    raw = [p for p in data if p.suffix != ".npz"]
    sets = [SliceSet.load(p) for p in prepared]
    if raw:
        sets.append(load_slice_set(raw, size=size, axes=axes, modality=modality))
    xs, metadata, norms = [], [], []
    for slice_set in sets:
        x = np.asarray(slice_set.x, dtype=np.float32)
        if x.ndim != 4 or x.shape[-1] != size or x.shape[-2] != size:
            raise ConfigError(f"a slice set does not hold [N, 1, {size}, {size}] slices")
        xs.append(x)
        metadata.extend(slice_set.metadata)
        norms.append(dict(slice_set.normalization))
    if not xs or sum(len(x) for x in xs) < 2:
        raise ConfigError("need at least two slices to train on")
    normalization = norms[0] if all(n == norms[0] for n in norms) else {"per_source": norms}
    return np.concatenate(xs), metadata, normalization


def train(
    data: list[Path] = typer.Argument(
        ..., help="DICOM folders/files, NIfTI volumes, or prepared slice sets (.npz)."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Model file (.safetensors)."),
    conditions: str = typer.Option(
        _DEFAULT_CONDITIONS, "--conditions", help="Fields of the default schema, comma-separated."
    ),
    schema_file: Path | None = typer.Option(
        None, "--schema", help="Custom condition schema JSON (overrides --conditions)."
    ),
    size: int = typer.Option(128, "--size", help="Model grid: 64 or 128."),
    axes: str = typer.Option("0,1,2", "--axes", help="Volume axes to slice along."),
    modality: str | None = typer.Option(
        None, "--modality", help="Modality for NIfTI inputs that do not say (e.g. MR, CT)."
    ),
    epochs: int = typer.Option(20, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    heldout_fraction: float = typer.Option(0.1, "--heldout-fraction"),
    preset: str = typer.Option(
        "v1",
        "--preset",
        help="Architecture: v1 (small, N(0, I) prior) or v2 (the packaged model's: ActNorm, "
        "1x1 convs, wider coarse stages, condition network, conditional prior); the options "
        "below override it.",
    ),
    stages: int | None = typer.Option(None, "--stages", help="Override the preset."),
    blocks_per_stage: int | None = typer.Option(None, "--blocks-per-stage"),
    subnet_width: int | None = typer.Option(None, "--subnet-width"),
    stage_blocks: str | None = typer.Option(
        None, "--stage-blocks", help="Blocks per stage, finest first, e.g. 2,2,3,3."
    ),
    stage_widths: str | None = typer.Option(
        None, "--stage-widths", help="Subnet width per stage, finest first, e.g. 32,32,64,96."
    ),
    fc_blocks: int | None = typer.Option(None, "--fc-blocks"),
    fc_width: int | None = typer.Option(None, "--fc-width"),
    actnorm: bool | None = typer.Option(
        None, "--actnorm/--no-actnorm", help="ActNorm before every coupling block."
    ),
    mixing: str | None = typer.Option(
        None, "--mixing", help="permute (fixed) or conv1x1 (learned, Glow) in the conv stages."
    ),
    cond_embed: int | None = typer.Option(
        None, "--cond-embed", help="Width of the condition network's embedding (0: raw c)."
    ),
    prior: str | None = typer.Option(
        None, "--prior", help="standard (N(0, I)) or conditional (learned N(mu(c), sigma(c)^2))."
    ),
    prior_width: int | None = typer.Option(None, "--prior-width"),
    augment: bool = typer.Option(
        False,
        "--augment/--no-augment",
        help="Seeded MONAI augmentation on the fly (small affine; intensity for relative "
        "units only; left-right flips only for axial/coronal head slices), recorded in the card.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last saved epoch."),
    json_output: bool = typer.Option(False, "--json", help="Print the model card as JSON."),
) -> None:
    """Train the conditional INN by maximum likelihood and write MODEL + MODEL.card.json.

    Every epoch is checkpointed to OUTPUT.train-state.pt; --resume continues from it.
    The card records the names of the DATA items as the training sources: name them
    without patient information.
    """
    configure_logging()
    with usage_errors():
        from cadp_med.model.conditions import ConditionSchema, default_schema
        from cadp_med.training import train_model

        if size not in (64, 128):
            raise ConfigError("--size must be 64 or 128")
        try:
            if schema_file is not None:
                schema = ConditionSchema.from_json(schema_file)
            else:
                schema = default_schema([n.strip() for n in conditions.split(",") if n.strip()])
            config = _config(
                preset,
                size,
                schema.dim,
                {
                    "stages": stages,
                    "blocks_per_stage": blocks_per_stage,
                    "subnet_width": subnet_width,
                    "stage_blocks": _int_list(stage_blocks, "--stage-blocks"),
                    "stage_widths": _int_list(stage_widths, "--stage-widths"),
                    "fc_blocks": fc_blocks,
                    "fc_width": fc_width,
                    "actnorm": actnorm,
                    "mixing": mixing,
                    "cond_embed": cond_embed,
                    "prior": prior,
                    "prior_width": prior_width,
                },
            )
        except ModelError as exc:  # a bad schema or architecture is the operator's input
            raise ConfigError(str(exc)) from exc
        try:
            axes_tuple = tuple(int(a) for a in axes.split(",") if a.strip())
        except ValueError as exc:
            raise ConfigError("--axes must be comma-separated integers") from exc
        x, metadata, normalization = _load_data(data, size, axes_tuple, modality)
        augmentation = None
        if augment:
            from cadp_med.training._augment import Augmentation

            augmentation = Augmentation(seed=seed)
        card = train_model(
            x,
            metadata,
            schema=schema,
            config=config,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
            heldout_fraction=heldout_fraction,
            out_path=output,
            resume=resume,
            progress=is_tty() and not json_output,
            normalization=normalization,
            sources=[p.name for p in data],
            augmentation=augmentation,
        )
    if json_output:
        print_json(card)
        return
    defaults = card["privacy_defaults"]
    print_table(
        "cadp-med train",
        [
            (
                "slices (train / held-out)",
                f"{card['training']['n_train']} / {card['training']['n_heldout']}",
            ),
            ("held-out bits/dim", _fmt(card["heldout_bits_per_dim"])),
            (
                "latent dim / release",
                f"{card['latent']['dim']} / {card['latent']['default_release']['name']}",
            ),
            ("clip L1 / L2 (release)", f"{defaults['clip_l1']:.2f} / {defaults['clip_l2']:.2f}"),
            ("model", output),
        ],
    )


def _config(preset: str, size: int, cond_dim: int, overrides: dict[str, Any]) -> Any:
    """The ``preset`` ModelConfig with the given (non-None) overrides."""
    from cadp_med.model.cinn import ModelConfig

    chosen = {k: v for k, v in overrides.items() if v is not None}
    # A uniform value given on the command line replaces the preset's per-stage list, and
    # per-stage lists no longer fit another number of stages.
    new_stages = "stages" in chosen and chosen["stages"] != ModelConfig.preset(preset).stages
    if new_stages or "blocks_per_stage" in chosen:
        chosen.setdefault("stage_blocks", ())
    if new_stages or "subnet_width" in chosen:
        chosen.setdefault("stage_widths", ())
    return ModelConfig.preset(preset, size=size, cond_dim=cond_dim, **chosen)


def _int_list(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"{option} must be comma-separated integers") from exc


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
