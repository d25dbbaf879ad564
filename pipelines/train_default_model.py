"""Train the default model that ships inside cadp-med, and choose its default temperature.

One command reproduces the shipped model from a built slice set (on the H200 of a device
lease, ``pipelines/gpu_train_default.sh`` runs exactly this)::

    python pipelines/train_default_model.py --slice-set .work/trainset_128.npz \
        --time-budget 420 --device cuda -o cadp_med/model/default/model.safetensors

Steps:

1. ``cadp_med.training.train_model`` on the slice set, conditioned on ``modality``,
   ``plane``, ``slice_pos`` and ``region`` (``--conditions``), with the architecture
   preset ``--preset`` (``v2``: ActNorm, invertible 1x1 convolutions, wider and deeper
   coarse stages, a condition network and the conditional prior) and the MONAI
   augmentation of :mod:`cadp_med.training._augment`. Every epoch is checkpointed to
   ``OUTPUT.train-state.pt``; ``--resume`` continues an interrupted run.
   ``--time-budget SECONDS`` times one probe epoch and picks the number of epochs that
   fits the rest of the budget (printed and recorded, so ``--epochs`` repeats the run).
2. The trainer computes the clip defaults (``privacy_defaults``) from held-out latents.
3. The default temperature is chosen by measurement (:func:`choose_temperature`): the
   held-out slices are privatized at ``--temperature-eps`` (Laplace, the card's clip and
   released block, posterior sample: the ``anonymize`` defaults) at each temperature of
   ``--temperatures``, and the temperature whose outputs have the smallest Frechet
   distance to the real held-out slices, on pixel-PCA features fitted on the training
   slices, is written to the card's ``privacy_defaults.temperature``. The temperature is
   fixed before any user image is seen and acts only on the dimensions that carry
   nothing of the image, so it leaves the guarantee unchanged.
4. The card gets the exact command, the slice set's data list (package, file, licence,
   counts) and its counts per domain (contrast x region x plane).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

DEFAULT_CONDITIONS = "modality,plane,slice_pos,region"
_TEMPERATURE_SEED = 20261201


def ensure_training_set(path: Path, size: int) -> Path:
    """Build the slice set with ``build_training_set.py`` when it is missing."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, str(HERE / "build_training_set.py"), "--size", str(size), "-o", str(path)],
        check=True,
    )
    return path


def pack_uint8(source: Path, target: Path) -> Path:
    """Write a slice set with 8-bit pixels (``round(255 x)``) for carrying to a device.

    Eight bits lose nothing the model can use: training dequantizes with uniform noise of
    width 1/256 (the bits/dim convention of 8-bit data). The labels, normalization and
    provenance are kept as they are.
    """
    from cadp_med.imaging import SliceSet

    slice_set = SliceSet.load(source)
    header = {
        "format": "cadp-med-slices-uint8/1",
        "quantization": "uint8, value = q / 255",
        "metadata": slice_set.metadata,
        "normalization": slice_set.normalization,
        "provenance": slice_set.provenance,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    q = np.rint(np.clip(slice_set.x, 0.0, 1.0) * 255.0).astype(np.uint8)
    with target.open("wb") as handle:
        np.savez_compressed(
            handle, x=q, header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        )
    return target


def load_training_set(path: Path) -> Any:
    """A :class:`~cadp_med.imaging.SliceSet` from a ``SliceSet.save`` file or a
    :func:`pack_uint8` file."""
    from cadp_med.imaging import SliceSet

    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["header"].tobytes().decode("utf-8"))
        if header.get("format") != "cadp-med-slices-uint8/1":
            return SliceSet.load(path)
        x = archive["x"].astype(np.float32) / np.float32(255.0)
    return SliceSet(
        x=x,
        metadata=header["metadata"],
        normalization=header["normalization"],
        provenance=header.get("provenance", {}),
    )


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    """``key=value`` architecture overrides; values are JSON (``stage_blocks=[1,1]``)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--arch expects key=value, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def model_config(preset: str, size: int, cond_dim: int, overrides: dict[str, Any]) -> Any:
    """The architecture: a named preset of ``ModelConfig`` with overrides."""
    from cadp_med.model.cinn import ModelConfig

    if hasattr(ModelConfig, "preset"):
        return ModelConfig.preset(preset, size=size, cond_dim=cond_dim, **overrides)
    if preset != "v1":
        raise SystemExit(f"this cadp_med has no architecture presets; cannot use {preset!r}")
    return ModelConfig(size=size, cond_dim=cond_dim, **overrides)


def train(
    slice_set: Any,
    out: Path,
    *,
    schema: Any,
    config: Any,
    epochs: int,
    device: str,
    seed: int,
    batch_size: int,
    lr: float,
    progress: bool,
    augmentation: Any,
    resume: bool = False,
) -> dict[str, Any]:
    """Run the trainer on a loaded :class:`~cadp_med.imaging.SliceSet`."""
    from cadp_med.training import train_model

    sources = [str(s["id"]) for s in slice_set.provenance.get("sources", [])] or sorted(
        {str(m.get("source", "")) for m in slice_set.metadata}
    )
    return train_model(
        np.asarray(slice_set.x, dtype=np.float32),
        slice_set.metadata,
        schema=schema,
        config=config,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        out_path=out,
        progress=progress,
        normalization=slice_set.normalization,
        sources=sources,
        augmentation=augmentation,
        resume=resume,
    )


# -- temperature by measurement ------------------------------------------------------------
def choose_temperature(
    model_path: Path,
    slice_set: Any,
    *,
    temperatures: list[float],
    epsilon: float,
    device: str,
    seed: int = _TEMPERATURE_SEED,
    limit: int = 1000,
) -> dict[str, Any]:
    """The card's ``privacy_defaults.temperature`` entry, measured on up to ``limit``
    held-out slices with the ``anonymize`` defaults (Laplace, the card's clip and released
    block, posterior sample); see :mod:`cadp_med.evaluation._temperature`."""
    from cadp_med.evaluation._temperature import anonymize_mechanism, pixel_pca_features
    from cadp_med.evaluation._temperature import choose_temperature as measure
    from cadp_med.model import ConditionSchema, load_model

    model, card = load_model(model_path, device=device)
    schema = ConditionSchema.from_dict(card["conditions"])
    split = [m.get("split") for m in slice_set.metadata]
    held = np.asarray([i for i, s in enumerate(split) if s == "heldout"], dtype=int)
    train = np.asarray([i for i, s in enumerate(split) if s != "heldout"], dtype=int)
    if len(held) < 8:
        raise SystemExit("choosing the temperature needs at least 8 held-out slices")
    held = np.sort(np.random.default_rng(seed).permutation(held)[:limit])
    features, how = pixel_pca_features(np.asarray(slice_set.x[train]), seed=seed)
    entry = measure(
        model,
        np.asarray(slice_set.x[held], dtype=np.float32),
        schema.encode_batch([slice_set.metadata[i] for i in held]),
        config=anonymize_mechanism(card, epsilon),
        features=features,
        features_how=how,
        temperatures=temperatures,
        seed=seed,
        device=device,
    )
    for t, score in entry["scores"].items():
        print(f"  temperature {t}: Frechet distance {score:.4f}", flush=True)
    return entry


def finalize_card(model_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into the card (``privacy_defaults`` and ``training`` deeply) and
    re-save; the weights and their content hash are unchanged."""
    from cadp_med.model import load_model
    from cadp_med.model.checkpoint import save_model

    model, card = load_model(model_path)
    before = card["content_hash"]
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    saved = save_model(model_path, model, card)
    if saved["content_hash"] != before:
        raise RuntimeError("re-saving the card changed the weights")
    return saved


def _command_line(argv: list[str]) -> str:
    return "python pipelines/train_default_model.py " + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None, on_trained: Any = None) -> int:
    """Run the pipeline; ``on_trained(path)``, if given, is called once the weights are
    saved and before the temperature is measured (the GPU script returns them early)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument(
        "--slice-set", type=Path, default=None, help="prepared slice set (.npz); built when missing"
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="seconds for training (probe epoch included); overrides --epochs",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--preset", default="v2", help="architecture preset (v1, v2)")
    parser.add_argument(
        "--arch", action="append", default=[], metavar="KEY=VALUE",
        help="architecture override, e.g. stages=3 or stage_blocks=[1,1,2] (repeatable)",
    )  # fmt: skip
    parser.add_argument("--conditions", default=DEFAULT_CONDITIONS)
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--resume", action="store_true", help="continue from the saved state")
    parser.add_argument(
        "--temperatures", default=None, help="comma-separated (default 0,0.3,0.5,0.7,0.85,1)"
    )
    parser.add_argument("--temperature-eps", type=float, default=2.0)
    parser.add_argument("--temperature-limit", type=int, default=1000, help="held-out slices")
    parser.add_argument("--keep-state", action="store_true", help="keep the resume state")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("cadp_med/model/default/model.safetensors")
    )
    args = parser.parse_args(argv)

    from cadp_med.model import default_schema
    from cadp_med.training._augment import Augmentation
    from cadp_med.training.trainer import resolve_device

    started = time.perf_counter()
    set_path = args.slice_set or Path(f".work/trainset_{args.size}.npz")
    ensure_training_set(set_path, args.size)
    slice_set = load_training_set(set_path)
    size = slice_set.size
    schema = default_schema([n.strip() for n in args.conditions.split(",") if n.strip()])
    config = model_config(args.preset, size, schema.dim, _parse_overrides(args.arch))
    augmentation = None if args.no_augment else Augmentation(seed=args.seed)
    device = resolve_device(args.device)
    common = dict(
        schema=schema,
        config=config,
        device=device,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        progress=not args.no_progress,
        augmentation=augmentation,
    )
    print(f"{len(slice_set)} slices {size}x{size}; device {device}; preset {args.preset}")

    epochs = args.epochs
    probe_seconds = None
    if args.time_budget is not None and not args.resume:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            train(slice_set, Path(tmp) / "probe.safetensors", epochs=1, **common)
            probe_seconds = time.perf_counter() - start
        # The probe includes the fixed costs (evaluation, saving), so this undershoots.
        epochs = max(1, int((args.time_budget - probe_seconds) // probe_seconds))
        print(f"probe epoch {probe_seconds:.1f} s: training for {epochs} epochs", flush=True)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    train_start = time.perf_counter()
    card = train(slice_set, args.output, epochs=epochs, resume=args.resume, **common)
    train_seconds = time.perf_counter() - train_start
    print(f"trained {epochs} epochs in {train_seconds:.0f} s", flush=True)
    if on_trained is not None:
        on_trained(args.output)

    from cadp_med.evaluation._temperature import DEFAULT_TEMPERATURES

    temperatures = (
        list(DEFAULT_TEMPERATURES)
        if args.temperatures is None
        else [float(t) for t in args.temperatures.split(",") if t.strip()]
    )
    temperature = choose_temperature(
        args.output,
        slice_set,
        temperatures=temperatures,
        epsilon=args.temperature_eps,
        device=device,
        limit=args.temperature_limit,
    )
    print(f"default temperature {temperature['value']:g}", flush=True)

    card = finalize_card(
        args.output,
        {
            "privacy_defaults": {"temperature": temperature},
            "training": {
                "command": _command_line(argv),
                "repeat_with": _command_line(_without_budget(argv) + ["--epochs", str(epochs)]),
                "preset": args.preset,
                "time_budget_s": args.time_budget,
                "probe_epoch_s": probe_seconds,
                "train_seconds": round(train_seconds, 1),
                "slice_set": {
                    "file": set_path.name,
                    "size": size,
                    "slices": len(slice_set),
                    "build_command": (
                        f"python pipelines/build_training_set.py --size {size} -o {set_path}"
                    ),
                    "data": slice_set.provenance.get("sources", []),
                    "skipped": slice_set.provenance.get("skipped", []),
                    "counts": slice_set.provenance.get("counts", {}),
                    "domains": slice_set.provenance.get("domains", {}),
                    "split_rule": slice_set.provenance.get("split_rule"),
                },
            },
        },
    )
    state = Path(str(args.output) + ".train-state.pt")
    if state.exists() and not args.keep_state:
        state.unlink()  # resume state is for interrupted runs, not for shipping
    summary = {
        "heldout_bits_per_dim": card.get("heldout_bits_per_dim"),
        "content_hash": card.get("content_hash"),
        "epochs": epochs,
        "temperature": temperature["value"],
        "bytes": args.output.stat().st_size,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _without_budget(argv: list[str]) -> list[str]:
    """``argv`` without ``--time-budget``/``--epochs`` (and their values)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--time-budget", "--epochs"):
            skip = True
        elif not arg.startswith(("--time-budget=", "--epochs=")):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
