"""Build the training set and train the default model that ships inside cadp-med.

One command reproduces the shipped model (on a GPU it takes a few minutes; on the CPU
use fewer epochs)::

    python pipelines/train_default_model.py --size 128 --epochs 60 --device auto \
        -o cadp_med/model/default/model.safetensors

It runs ``pipelines/build_training_set.py`` first when the slice set is missing, then
``cadp_med.training.train_model`` on it with the default condition schema
(``modality``, ``plane``, ``slice_pos``) and the default architecture for the size.

``--time-budget SECONDS`` picks the number of epochs from a timed first epoch, so a
fixed-length GPU lease is used fully without overrunning it; the chosen count is
printed and recorded in the model card, so the run can be repeated with ``--epochs``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def ensure_training_set(path: Path, size: int) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, str(HERE / "build_training_set.py"), "--size", str(size), "-o", str(path)],
        check=True,
    )
    return path


def train(
    slice_set_path: Path,
    out: Path,
    *,
    epochs: int,
    device: str,
    seed: int,
    batch_size: int,
    lr: float,
    progress: bool,
) -> dict:
    import numpy as np

    from cadp_med.imaging import SliceSet
    from cadp_med.model import default_schema
    from cadp_med.training import train_model

    slice_set = SliceSet.load(slice_set_path)
    schema = default_schema(["modality", "plane", "slice_pos"])
    sources = sorted({str(m.get("source", "")) for m in slice_set.metadata})
    return train_model(
        np.asarray(slice_set.x, dtype=np.float32),
        slice_set.metadata,
        schema=schema,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        out_path=out,
        progress=progress,
        normalization=slice_set.normalization,
        sources=sources,
    )


def main(argv: list[str] | None = None) -> int:
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
        help="seconds of training; overrides --epochs from a timed epoch",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("cadp_med/model/default/model.safetensors")
    )
    args = parser.parse_args(argv)

    slice_set = args.slice_set or Path(f".work/trainset_{args.size}.npz")
    ensure_training_set(slice_set, args.size)
    common = dict(
        device=args.device,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        progress=not args.no_progress,
    )

    epochs = args.epochs
    if args.time_budget is not None:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            train(slice_set, Path(tmp) / "probe.safetensors", epochs=1, **common)
            per_epoch = time.perf_counter() - start
        epochs = max(1, int(args.time_budget // per_epoch))
        print(f"one epoch took {per_epoch:.1f} s: training for {epochs} epochs", flush=True)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    card = train(slice_set, args.output, epochs=epochs, **common)
    state = Path(str(args.output) + ".train-state.pt")
    if state.exists():
        state.unlink()  # resume state is for interrupted runs, not for shipping
    summary = {k: card.get(k) for k in ("heldout_bits_per_dim", "content_hash")}
    summary["epochs"] = epochs
    summary["bytes"] = args.output.stat().st_size
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
