"""End-to-end benchmark: privatizing a 512 x 512 CT series on CPU, next to header-only.

The series is pydicom-data's CT head slice (693_UNCR, 512 x 512) copied with new UIDs and
positions 1 mm apart. The model is the packaged default when present, else an untrained
model of the default architecture (``ModelConfig()``): speed does not depend on weights.

Runs the privatized pass once per ``--batch-sizes`` value (default 1 and 16: one slice
per model call, as before slices were batched across instances, and the default). For
each: seconds per 100 slices, slices/s, the split of time between read+decode, header
de-identification, the model step (normalise, resample, encode, noise, decode, resample
back) and encode+write, and the ratio to the header-only run; peak RSS over all runs.

Usage::

    python benchmarks/bench_e2e.py [--slices 100] [--threads 2] [--device cpu]
                                   [--batch-sizes 1 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TIMES: dict[str, float] = defaultdict(float)


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - start

    return wrapper


def _model(folder: Path) -> Path:
    from cadp_med.pixels import DEFAULT_MODEL_PATH

    if DEFAULT_MODEL_PATH.is_file():
        return DEFAULT_MODEL_PATH
    from cadp_med.imaging import Normalizer
    from cadp_med.model import ModelConfig, build_cinn, save_model
    from cadp_med.model.conditions import default_schema

    schema = default_schema()
    model = build_cinn(ModelConfig(cond_dim=schema.dim))
    clips = {"clip_l1": 100.0, "clip_l2": 10.0}
    card = {
        "conditions": schema.to_dict(),
        "normalization": Normalizer().to_spec(),
        "privacy_defaults": {**clips, "full": clips, "how_chosen": "benchmark placeholder"},
    }
    path = folder / "untrained.safetensors"
    save_model(path, model, card)
    return path


def _series(folder: Path, n: int) -> Path:
    data_store = __import__("data_store")
    source = Path(data_store.__file__).parent / "data" / "693_UNCR.dcm"
    from tests.pixels._helpers import synthetic_ct_series

    return synthetic_ct_series(folder, n, side=512, source=source)


def _run(src: Path, out: Path, options: Any) -> float:
    from cadp_med import anonymize_study

    start = time.perf_counter()
    summary = anonymize_study(src, out, key=b"bench-key", options=options)
    assert summary.written > 0 and summary.exit_code == 0, summary.to_dict()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()

    import torch

    import cadp_med._pipeline as pipeline
    import cadp_med.imaging as imaging
    import cadp_med.pixels._stage as stage_module
    from cadp_med import AnonymizeOptions
    from cadp_med.deid import Deidentifier
    from cadp_med.pixels import PixelOptions, PixelStage

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = _series(root / "in", args.slices)
        model_path = _model(root)
        header_only = _run(src, root / "keep", AnonymizeOptions(pixels="keep"))

        pipeline.read_instance = _timed("read+decode", pipeline.read_instance)
        pipeline.write_instance = _timed("encode+write", pipeline.write_instance)
        imaging.slices_from_dicom_series = _timed("read+decode", imaging.slices_from_dicom_series)
        stage_module.encode_frames = _timed("encode+write", stage_module.encode_frames)
        Deidentifier.__call__ = _timed("header deid", Deidentifier.__call__)  # type: ignore[method-assign]
        PixelStage._run = _timed("model", PixelStage._run)  # type: ignore[method-assign]
        runs = {}
        for batch_size in args.batch_sizes:
            TIMES.clear()
            # 693_UNCR is a head CT whose header names no body region: outside the model's
            # declared domains, so it is let through (the timed path is the same).
            options = PixelOptions(
                model=model_path,
                device=args.device,
                batch_size=batch_size,
                allow_outside_domain=True,
            )
            stage = PixelStage(options)
            total = _run(src, root / f"priv-b{batch_size}", AnonymizeOptions(pixel_stage=stage))
            card = stage.card
            runs[f"batch_{batch_size}"] = {
                "privatize_s": round(total, 2),
                "s_per_100_slices": round(100 * total / args.slices, 2),
                "slices_per_s": round(args.slices / total, 2),
                "split_s": {k: round(v, 2) for k, v in sorted(TIMES.items())},
                "other_s": round(total - sum(TIMES.values()), 2),
                "ratio_privatize_to_header_only": round(total / header_only, 1),
            }
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "slices": args.slices,
        "matrix": "512x512",
        "model_size": card["architecture"]["size"],
        "model": "untrained default" if "untrained" in model_path.name else "packaged default",
        "device": args.device,
        "torch_threads": args.threads,
        "header_only_s": round(header_only, 2),
        **runs,
        "peak_rss_mib_all_runs": round(rss_mib),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
