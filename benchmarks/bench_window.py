"""How far the DP intensity window lands from the exact one, on real MR volumes.

For each volume, the exact window is the medians of its slices' own 0.5 / 99.5
percentiles (what ``--eps inf`` uses); the DP window is drawn ``--draws`` times by
:func:`cadp_med.privacy._window.dp_window` at each window epsilon, on the grid of the
representable range the NIfTI path stores the volume with (``store_volume``). The error
of each end is reported in units of the exact window's width: 0.05 means the end moved
by 5 % of the window.

Run::

    python benchmarks/bench_window.py --draws 200
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

VOLUMES = {
    "sample T1w (sample_data/nifti_small)": Path(__file__).resolve().parents[1]
    / "sample_data/nifti_small/sub-01/anat/sub-01_T1w.nii.gz",
    "Colin27 T1 (Debian mricron-data ch2)": Path("/usr/share/mricron/templates/ch2.nii.gz"),
}
EPSILONS = (0.2, 0.8, 2.0, 8.0)


def _range(stored: object) -> tuple[float, float, float]:
    from cadp_med.pixels._codec import stored_range

    signed = bool(stored.signed)  # type: ignore[attr-defined]
    low, high = stored_range(16, signed)
    slope, intercept = float(stored.slope), float(stored.intercept)  # type: ignore[attr-defined]
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends[0], ends[1], abs(slope)


def main() -> None:
    import nibabel

    from cadp_med.nifti._dicom import store_volume
    from cadp_med.privacy._window import dp_window, slice_percentiles

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for name, path in VOLUMES.items():
        if not path.is_file():
            print(f"{name}: not installed, skipped")
            continue
        voxels = np.asanyarray(nibabel.load(str(path)).dataobj).astype(np.float64)
        voxels = voxels[:, :, :, 0] if voxels.ndim == 4 else voxels
        stored = store_volume(voxels)
        value_range = _range(stored)
        slices = [np.ravel(voxels[:, :, k])[::7] for k in range(voxels.shape[2])]
        lows, highs = slice_percentiles(slices, (0.5, 99.5))
        exact = (float(np.median(lows)), float(np.median(highs)))
        width = exact[1] - exact[0]
        for eps in EPSILONS:
            err_low, err_high = [], []
            for _ in range(args.draws):
                window = dp_window(
                    lows, highs, value_range=value_range[:2], unit=value_range[2],
                    epsilon=eps, rng=rng,
                )
                err_low.append(abs(window["low"] - exact[0]) / width)
                err_high.append(abs(window["high"] - exact[1]) / width)
            row = {
                "volume": name,
                "slices": len(slices),
                "window_epsilon": eps,
                "exact": [round(v, 3) for v in exact],
                "low_error_median": round(float(np.median(err_low)), 3),
                "high_error_median": round(float(np.median(err_high)), 3),
                "high_error_p90": round(float(np.percentile(err_high, 90)), 3),
            }
            rows.append(row)
            print(json.dumps(row))
    print()
    print("| volume | slices | window eps | low error (median) | high error (median, p90) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['volume']} | {r['slices']} | {r['window_epsilon']:g} | "
            f"{r['low_error_median']:.3f} | {r['high_error_median']:.3f}, "
            f"{r['high_error_p90']:.3f} |"
        )


if __name__ == "__main__":
    main()
