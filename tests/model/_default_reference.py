"""Outputs of the packaged default model that must not change when the code around it does.

``python -m tests.model._default_reference OUT.json`` writes them; rewrite the committed
``tests/model/data/default_model_reference.json`` only when the packaged model itself is
replaced (it was last written for the v2 model with the conditional prior; the v1 model
before it was checked against a reference from the code of commit 194c6b9, before the
prior existed). ``test_prior.py`` recomputes them with the current code.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

DEFAULT = Path(str(resources.files("cadp_med") / "model" / "default" / "model.safetensors"))
Z_STRIDE = 61
X_STRIDE = 97


def reference_outputs() -> dict[str, Any]:
    """Encode the real CT/MR slices, privatize (seeded, eps 2 Laplace) and decode."""
    from cadp_med.model.checkpoint import load_model
    from cadp_med.model.conditions import ConditionSchema
    from cadp_med.privacy import LatentPrivatizer, MechanismConfig
    from tests.model._slices import real_batch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float reductions split over threads round differently
    try:
        model, card = load_model(DEFAULT)
        schema = ConditionSchema.from_dict(card["conditions"])
        x, meta = real_batch(model.config.size)
        c = torch.from_numpy(schema.encode_batch(meta))
        rel = card["latent"]["default_release"]
        config = MechanismConfig(
            kind="laplace",
            epsilon=2.0,
            delta=None,
            clip=float(card["privacy_defaults"]["clip_l1"]),
            release=(int(rel["start"]), int(rel["stop"])),
        )
        with torch.no_grad():
            z, log_det = model.encode(x, c)
            z_private = LatentPrivatizer(config, seed=20261201)(z.double(), noise_keys=[0, 1])
            decoded = model.decode(z_private.float(), c)
    finally:
        torch.set_num_threads(threads)
    return {
        "z": z[:, ::Z_STRIDE].tolist(),
        "log_det": log_det.tolist(),
        "z_private": z_private[:, ::Z_STRIDE].tolist(),
        "decoded": decoded.reshape(2, -1)[:, ::X_STRIDE].tolist(),
    }


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(reference_outputs()) + "\n", encoding="utf-8")
    print(np.asarray(reference_outputs()["decoded"]).mean())
