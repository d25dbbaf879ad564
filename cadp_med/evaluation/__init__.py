"""Measured privacy and utility of CADP releases (``cadp-med evaluate``).

* utility in the paper's protocol: train on privatized, test on original ("p/o"), next to
  original/original ("o/o") and a DP-SGD baseline (Opacus) at the same epsilon;
* privacy against a linkage attack (pixel NCC and the model's own latent), with top-1,
  top-5 and a verification AUC next to chance;
* fidelity (SSIM, PSNR, mean absolute difference), which is not privacy;
* the paper's tabular experiment on scikit-learn's diabetes table (``run_categorical``).

This package imports torch at module level; only ``cadp-med evaluate`` and the pipelines
import it.
"""

from __future__ import annotations

from cadp_med.evaluation._classifiers import TrainSpec
from cadp_med.evaluation._data import EvalData, load_eval_data
from cadp_med.evaluation._models import small_config, train_eval_model
from cadp_med.evaluation._report import write_report
from cadp_med.evaluation._runner import EvalSettings, run_evaluation, steps

__all__ = [
    "EvalData",
    "EvalSettings",
    "TrainSpec",
    "load_eval_data",
    "run_evaluation",
    "small_config",
    "steps",
    "train_eval_model",
    "write_report",
]
