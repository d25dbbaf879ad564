"""Retrain the packaged default model on one rented GPU in one command.

The device machine has no network and a bare Python (torch, numpy, safetensors, typer,
rich; no FrEIA, MONAI, pydicom or nibabel), and what travels to it is limited (64 MiB
for the working tree plus carried paths; files come back at most 16 MiB each). So the
work is split in three steps:

1. ``prep`` (here, on a CPU machine with the package registries)::

       apt-get update && apt-get install -y mricron-data invesalius-examples \\
           insighttoolkit5-examples
       python pipelines/gpu_train_default.py prep

   downloads the wheels the device lacks into ``.whl/`` (git-ignored), downloads the
   nilearn and dipy wheels whose data the training set reads into ``.work/wheels``,
   builds the 128x128 training set (``pipelines/build_training_set.py``) and packs it
   with 8-bit pixels into ``.work/gpu/trainset_128_u8.npz``; it prints the sizes and the
   exact device command.

2. ``train`` (on the device, through the session's ``run`` tool, carrying ``.whl`` and
   ``.work/gpu``)::

       python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \\
           .whl/*.whl && PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 \\
           python3 pipelines/gpu_train_default.py train --out "$OUT"

   runs ``pipelines/train_default_model.py`` on the packed set with ``--time-budget``
   (default 420 s of training, probe epoch included), chooses the temperature, and
   writes the model to ``$OUT`` in parts of at most 15 MiB, with its card and a log.

3. ``assemble`` (here again)::

       python pipelines/gpu_train_default.py assemble FILES_AT

   joins the parts, checks the weights against the card's content hash, and installs
   ``cadp_med/model/default/model.safetensors`` and its ``.card.json``.

The InVesalius head CT in the training set is GPL-2: the packed set stays under
``.work/`` (git-ignored) and is never committed; only the trained weights are.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

#: Wheels the device image lacks, at the versions this project is tested with; all are
#: pure Python, so the same files serve the device's Python 3.12. FrEIA is published as
#: an sdist only: its (pure Python) wheel is built here.
DEVICE_WHEELS = ("monai==1.6.1", "pydicom==3.0.2", "nibabel==5.4.2")
BUILT_WHEELS = ("FrEIA==0.2",)
DATA_WHEELS = ("nilearn==0.14.1", "dipy==1.12.1")
PACKED = Path(".work/gpu/trainset_128_u8.npz")
DEFAULT_OUTPUT = Path("cadp_med/model/default/model.safetensors")
PART_BYTES = 15 * 2**20
#: The training command's fixed options (the GPU run; ``--time-budget`` is added).
TRAIN_ARGS = (
    "--preset", "v2",
    "--conditions", "modality,plane,slice_pos,region",
    "--batch-size", "64",
    "--lr", "1e-3",
    "--seed", "0",
    "--device", "cuda",
    "--no-progress",
)  # fmt: skip
CARRY = (".whl", ".work/gpu")


def _pip_download(requirements: tuple[str, ...], target: Path, python: str | None) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    if python is not None:
        cmd += ["--python-version", python, "--implementation", "cp"]
    subprocess.run([*cmd, "-d", str(target), *requirements], check=True)


def _tree_bytes() -> int:
    """Bytes of what travels besides the carried paths: tracked and untracked, not
    ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    total = 0
    for name in listed:
        path = REPO / name.decode()
        if name and path.is_file():
            total += path.stat().st_size
    return total


def prep(args: argparse.Namespace) -> int:
    """Download wheels, build and pack the training set; print sizes and the command."""
    import train_default_model as tdm

    wheels = REPO / ".whl"
    if not args.skip_download:
        _pip_download(DEVICE_WHEELS, wheels, "3.12")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), *BUILT_WHEELS],
            check=True,
        )
        _pip_download(DATA_WHEELS, REPO / ".work" / "wheels", None)
    built = REPO / ".work" / "trainset_128.npz"
    if not built.exists() or args.rebuild:
        subprocess.run(
            [sys.executable, str(HERE / "build_training_set.py"), "--size", "128", "-o",
             str(built), "--wheels", str(REPO / ".work" / "wheels")],
            check=True,
        )  # fmt: skip
    packed = tdm.pack_uint8(built, REPO / PACKED)
    carried = sum(p.stat().st_size for c in CARRY for p in (REPO / c).rglob("*") if p.is_file())
    tree = _tree_bytes()
    print(f"packed set: {packed.stat().st_size / 2**20:.1f} MiB at {PACKED}")
    print(f"carried ({', '.join(CARRY)}): {carried / 2**20:.1f} MiB; working tree "
          f"{tree / 2**20:.1f} MiB; together {(carried + tree) / 2**20:.1f} MiB of 64")  # fmt: skip
    print("\ndevice command (run tool, carry " + json.dumps(list(CARRY)) + ", timeout_s 590):")
    print(device_command(args.time_budget))
    return 0 if carried + tree < 64 * 2**20 else 1


def device_command(time_budget: float) -> str:
    """The one-line command for the device's ``run`` tool."""
    return (
        "python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "
        ".whl/*.whl && PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 python3 "
        f"pipelines/gpu_train_default.py train --time-budget {time_budget:g} --out \"$OUT\""
    )


def train(args: argparse.Namespace) -> int:
    """On the device: train, choose the temperature, split the model into ``--out``."""
    import train_default_model as tdm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/cadp-default")
    work.mkdir(parents=True, exist_ok=True)
    model = work / "model.safetensors"
    argv = [
        "--slice-set", str(args.slice_set),
        "--time-budget", f"{args.time_budget:g}",
        *TRAIN_ARGS,
        *args.extra,  # later options win (argparse keeps the last value)
        "-o", str(model),
    ]  # fmt: skip
    started = time.perf_counter()
    # The trained weights go to --out at once, so that they come back even if the
    # temperature measurement overruns the lease (their card then has no temperature:
    # anonymize uses 1). The final card replaces them at the end.
    code = tdm.main(argv, on_trained=lambda path: _write_parts(path, out))
    if code != 0:
        return code
    size = _write_parts(model, out)
    print(f"done in {time.perf_counter() - started:.0f} s; {size} bytes in parts")
    return 0


def _write_parts(model: Path, out: Path) -> int:
    """The model in parts of at most ``PART_BYTES`` and its card, into ``out``."""
    for old in out.glob("model.safetensors.part*"):
        old.unlink()
    shutil.copyfile(model.with_name(model.name + ".card.json"), out / "model.safetensors.card.json")
    data = model.read_bytes()
    for k, start in enumerate(range(0, len(data), PART_BYTES)):
        (out / f"model.safetensors.part{k}").write_bytes(data[start : start + PART_BYTES])
    return len(data)


def assemble(args: argparse.Namespace) -> int:
    """Here: join the parts, verify against the card's hash, install as the default."""
    from cadp_med.model import load_model

    folder = Path(args.folder)
    parts = sorted(folder.glob("model.safetensors.part*"), key=lambda p: int(p.name[22:]))
    if not parts:
        print(f"no model.safetensors.part* in {folder}", file=sys.stderr)
        return 2
    target = Path(args.output)
    tmp = target.with_name(target.name + ".assembling")
    with tmp.open("wb") as handle:
        for part in parts:
            handle.write(part.read_bytes())
    try:
        _, card = load_model(tmp)  # raises if the weights do not match the card's hash
    except Exception:
        tmp.unlink()
        raise
    tmp.replace(target)
    card_file = target.with_name(target.name + ".card.json")
    shutil.copyfile(folder / "model.safetensors.card.json", card_file)
    temperature = card["privacy_defaults"].get("temperature", {})
    print(f"installed {target} ({target.stat().st_size} bytes, {card['content_hash']}); "
          f"held-out bits/dim {card.get('heldout_bits_per_dim')}; "
          f"temperature {temperature.get('value')}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prep", help="here: wheels, training set, packed set, the command")
    p.add_argument("--skip-download", action="store_true", help="wheels are already there")
    p.add_argument("--rebuild", action="store_true", help="rebuild the training set")
    p.add_argument("--time-budget", type=float, default=420.0)
    t = sub.add_parser("train", help="on the device: train and write the parts to --out")
    t.add_argument("--out", required=True)
    t.add_argument("--time-budget", type=float, default=420.0)
    t.add_argument("--slice-set", default=str(PACKED), help="packed set (default: prep's)")
    t.add_argument(
        "extra", nargs=argparse.REMAINDER,
        help="after --: more train_default_model.py options (a CPU dry run: --device cpu ...)",
    )  # fmt: skip
    a = sub.add_parser("assemble", help="here: join the parts and install the model")
    a.add_argument("folder")
    a.add_argument("-o", "--output", default=str(DEFAULT_OUTPUT))
    args = parser.parse_args(argv)
    if getattr(args, "extra", None) and args.extra[0] == "--":
        args.extra = args.extra[1:]
    sys.path.insert(0, str(HERE))
    return {"prep": prep, "train": train, "assemble": assemble}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
