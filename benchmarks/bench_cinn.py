"""Speed, memory and FLOPs of the default cINN against the paper's X-ray architecture.

Usage::

    python benchmarks/bench_cinn.py [--threads N] [--seconds S] [--device cpu|cuda]
        [--models default,paper-xray,v2] [--interleaved ROUNDS]

For each model and batch size (1, 8, 32) a fresh subprocess measures slices/s of
encode + decode (inference mode, after one warm-up pass; the median pass time over
``--seconds``, because the cores may be shared) and its peak RSS, so each peak
belongs to one measurement.  FLOPs per slice are counted with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls only; elementwise
work is not counted) and compared with this machine's fp32 matmul peak, measured in the
same run with a large ``torch.mm``.

``v2`` is the proposed next default (``ModelConfig.preset("v2")``: ActNorm, learned 1x1
convolutions, more and wider blocks in the coarse stages, a condition network and the
conditional prior); its pass includes the prior's ``mu(c), sigma(c)`` and the
standardisation the privatizer needs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from cadp_med.model.cinn import CINN, ModelConfig  # noqa: E402
from cadp_med.model.conditions import default_schema  # noqa: E402

COND_DIM = default_schema().dim
CONFIGS = {
    "default": ModelConfig(cond_dim=COND_DIM),
    # Meder et al. 2022, X-ray model: 4 conv stages x 4 GLOW blocks with 128-wide
    # subnets, 4 fully connected blocks 1024 wide, 128x128 input, condition concatenated.
    "paper-xray": ModelConfig(
        size=128,
        cond_dim=COND_DIM,
        stages=4,
        blocks_per_stage=4,
        subnet_width=128,
        fc_blocks=4,
        fc_width=1024,
        cond_injection="concat",
    ),
    "v2": ModelConfig.preset("v2", cond_dim=COND_DIM),
}
BATCHES = (1, 8, 32)


def _inputs(cfg: ModelConfig, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, cfg.channels, cfg.size, cfg.size, generator=gen).to(device)
    c = torch.rand(batch, cfg.cond_dim, generator=gen).to(device)
    return x, c


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _pass(model: CINN, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Encode, standardise under the prior (identity for N(0, I)), map back, decode."""
    z, _ = model.encode(x, c)
    return model.decode(model.destandardize(model.standardize(z, c), c), c)


def measure_one(name: str, batch: int, seconds: float, device: str) -> dict[str, float]:
    """slices/s of encode+decode and peak RSS for one model and batch size."""
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    model = CINN(cfg).to(device).eval()
    x, c = _inputs(cfg, batch, device)
    with torch.inference_mode():
        _pass(model, x, c)  # warm-up (allocator, oneDNN kernels)
        _sync(device)
        # Median pass time: robust to other processes sharing the cores.
        times: list[float] = []
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 3:
            tick = time.perf_counter()
            _pass(model, x, c)
            _sync(device)
            times.append(time.perf_counter() - tick)
    median = sorted(times)[len(times) // 2]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {"slices_per_s": batch / median, "peak_rss_mib": peak_kib / 1024, "passes": len(times)}
    if device.startswith("cuda"):
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def compare_interleaved(names: list[str], batch: int, rounds: int, device: str) -> None:
    """Median pass time of several models measured in alternation in one process.

    On shared cores the load drifts between the separate runs above; alternating one pass
    of each model per round exposes every model to the same load, so the ratios hold.
    """
    models = {}
    for name in names:
        torch.manual_seed(0)
        models[name] = CINN(CONFIGS[name]).to(device).eval()
    x, c = _inputs(CONFIGS[names[0]], batch, device)
    times: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for model in models.values():
            _pass(model, x, c)
        for _ in range(rounds):
            for name, model in models.items():
                tick = time.perf_counter()
                _pass(model, x, c)
                _sync(device)
                times[name].append(time.perf_counter() - tick)
    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    first = names[0]
    print(f"interleaved, batch {batch}, {rounds} rounds:")
    for name in names:
        print(
            f"  {name:12s} {batch / median[name]:7.1f} slices/s  "
            f"time per pass {median[name] / median[first]:.2f}x {first}'s"
        )


def flops_per_slice(name: str) -> float:
    """Counted FLOPs of one encode + decode of one slice."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = CONFIGS[name]
    model = CINN(cfg).eval()
    x, c = _inputs(cfg, 1, "cpu")
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        _pass(model, x, c)
    return float(counter.get_total_flops())


def matmul_peak_gflops(device: str, repeats: int = 5) -> tuple[int, float]:
    """``(n, best-of-repeats fp32 GFLOP/s)`` of an ``n x n`` matmul on ``device``.

    On CUDA TF32 stays off (torch's default for matmul), so this is the true fp32 peak.
    """
    n = 8192 if device.startswith("cuda") else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return n, 2 * n**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--models", default="default,paper-xray", help=f"comma-separated, of {sorted(CONFIGS)}"
    )
    parser.add_argument(
        "--interleaved",
        type=int,
        metavar="ROUNDS",
        help="only compare --models in alternation, ROUNDS passes each, at batch 1 and 8",
    )
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.seconds, args.device)))
        return

    if args.interleaved:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
        print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
        for batch in (1, 8):
            compare_interleaved(names, batch, args.interleaved, args.device)
        return
    n, peak = matmul_peak_gflops(args.device)
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    print(f"fp32 matmul peak ({n}^3 torch.mm on {args.device}): {peak:.1f} GFLOP/s")
    results: dict[str, dict[str, object]] = {}
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(CONFIGS)}")
    for name in names:
        cfg = CONFIGS[name]
        model = CINN(cfg)
        params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        size_mb = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
        flops = flops_per_slice(name)
        rows = {}
        for batch in BATCHES:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                name,
                str(batch),
                "--threads",
                str(args.threads),
                "--seconds",
                str(args.seconds),
                "--device",
                args.device,
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows[batch] = json.loads(out.stdout.strip().splitlines()[-1])
        results[name] = {"params": params, "size_mb": size_mb, "flops": flops, "rows": rows}
        print(f"\n{name}: {json.dumps(cfg.to_dict())}")
        print(
            f"  parameters {params:,}  ({size_mb:.1f} MB fp32 state)  "
            f"counted FLOPs/slice (enc+dec) {flops / 1e9:.3f} GFLOP"
        )
        print("  batch  slices/s  peak RSS MiB  achieved GFLOP/s  of matmul peak  GPU MiB")
        for batch, row in rows.items():
            achieved = flops * row["slices_per_s"] / 1e9
            gpu = f"{row['peak_gpu_mib']:8.0f}" if "peak_gpu_mib" in row else "       -"
            print(
                f"  {batch:5d}  {row['slices_per_s']:8.1f}  {row['peak_rss_mib']:12.0f}  "
                f"{achieved:16.1f}  {achieved / peak:13.1%}  {gpu}"
            )
    for other in ("paper-xray", "v2"):
        if "default" not in results or other not in results:
            continue
        default, rival = results["default"], results[other]
        print(f"\ndefault vs {other}:")
        for batch in BATCHES:
            ratio = default["rows"][batch]["slices_per_s"] / rival["rows"][batch]["slices_per_s"]
            print(f"  batch {batch:2d}: {ratio:.2f}x slices/s")
        print(
            f"  parameters: {rival['params'] / default['params']:.2f}x; "
            f"FLOPs/slice: {rival['flops'] / default['flops']:.2f}x (theirs / default's)"
        )


if __name__ == "__main__":
    main()
