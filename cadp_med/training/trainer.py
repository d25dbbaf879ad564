"""Maximum-likelihood training of the cINN (``cadp-med train``).

Determinism: the weights are initialised under ``seed``; the held-out split comes from
``numpy.random.default_rng(seed)``; every epoch draws its shuffling and dequantisation
noise from a CPU ``torch.Generator`` seeded with ``(seed, epoch)``, so a run resumed from
the checkpoint of epoch ``k`` continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cadp_med.errors import ConfigError, ModelError
from cadp_med.model._domains import domain_counts
from cadp_med.model.conditions import ConditionSchema
from cadp_med.training._augment import batch_augmenter
from cadp_med.training.metrics import (
    BPD_CONVENTION,
    BPD_CONVENTION_CONDITIONAL,
    bits_per_dim,
    condition_counts,
    heldout_bpd,
    latent_norms,
    model_nll,
    privacy_defaults,
)

logger = logging.getLogger(__name__)

_STATE_SUFFIX = ".train-state.pt"
_EVAL_NOISE_SEED_OFFSET = 7_919
_INIT_SEED_OFFSET = 104_729
_INIT_SLICES = 256


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda"`` when available, else ``"cpu"``; other values pass through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    return device


def state_path(out_path: str | Path) -> Path:
    """Where the per-epoch training state for ``out_path`` lives."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + _STATE_SUFFIX)


def _lr_at(step: int, total: int, lr: float) -> float:
    # Cosine decay to 1% of lr over all steps; a pure function of the step so resuming
    # needs no scheduler state.
    frac = min(step / max(total, 1), 1.0)
    return lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def _choose_split(
    metadata: Sequence[Mapping[str, Any]], heldout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """Use the slice set's own ``split`` labels when every slice has one, else a random split.

    The training-set builder holds out blocks of neighbouring slices; a random per-slice
    split would put near-duplicates on both sides and flatter the held-out numbers.
    """
    labels = [m.get("split") for m in metadata]
    if labels and all(label in ("train", "heldout") for label in labels):
        train = np.asarray([i for i, label in enumerate(labels) if label == "train"], dtype=int)
        held = np.asarray([i for i, label in enumerate(labels) if label == "heldout"], dtype=int)
        if len(train) == 0:
            raise ConfigError("the slice set's split labels leave no training slices")
        return train, held, "the slice set's own 'split' labels"
    train, held = _split(len(metadata), heldout_fraction, seed)
    return train, held, f"random per slice, fraction {heldout_fraction:g}, seed {seed}"


def _split(n: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 <= heldout_fraction < 1.0:
        raise ConfigError("heldout_fraction must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(n)
    n_held = int(round(n * heldout_fraction))
    if heldout_fraction > 0 and n >= 2:
        n_held = min(max(n_held, 1), n - 1)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def train_model(
    train_x: np.ndarray,
    train_meta: Sequence[Mapping[str, Any]],
    *,
    schema: ConditionSchema,
    config: Any = None,
    epochs: int = 20,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    heldout_fraction: float = 0.1,
    out_path: str | Path,
    resume: bool = False,
    progress: bool = True,
    normalization: Mapping[str, Any] | None = None,
    sources: Sequence[str] = (),
    grad_clip: float = 10.0,
    augmentation: Any = None,
) -> dict[str, Any]:
    """Train a cINN by maximum likelihood and save it with its model card.

    Parameters
    ----------
    train_x
        ``[N, 1, S, S]`` float slices in [0, 1].
    train_meta
        ``N`` metadata dicts, encoded with ``schema``.
    schema
        The condition schema; stored in the card.
    config
        A :class:`~cadp_med.model.cinn.ModelConfig`; ``None`` uses the defaults with
        ``size = S`` and ``cond_dim = schema.dim``.
    epochs, batch_size, lr, seed, grad_clip
        Optimisation: Adam, cosine decay of ``lr`` per step, gradient-norm clipping.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    heldout_fraction
        Share of slices kept out for bits/dim and the clip defaults, drawn at random per
        slice; ignored when every metadata dict carries a ``split`` of "train"/"heldout"
        (the training-set builder's block split), which is then used as it is.
    out_path
        The ``.safetensors`` to write; the per-epoch state goes to
        ``<out_path>.train-state.pt``.
    resume
        Continue from that state if it exists (same data, config, schema and seed).
    progress
        Show a Rich progress bar.
    normalization
        The imaging normaliser's description, stored opaque in the card.
    sources
        Names of the training sources for the card (no PHI: the caller chooses them).
    augmentation
        A :class:`~cadp_med.training._augment.Augmentation` applied on the fly to every
        training batch (its anatomy rules read the ``region``, ``plane`` and ``contrast``
        labels); ``None`` trains on the slices as they are.

    Returns
    -------
    dict
        The model card as saved.
    """
    import torch

    from cadp_med.model.checkpoint import save_model
    from cadp_med.model.cinn import CINN, ModelConfig

    x_np = np.asarray(train_x, dtype=np.float32)
    if x_np.ndim != 4 or x_np.shape[2] != x_np.shape[3]:
        raise ConfigError("train_x must have shape [N, C, S, S]")
    if len(train_meta) != x_np.shape[0]:
        raise ConfigError("train_meta must have one dict per slice")
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ConfigError("epochs and batch_size must be >= 1 and lr > 0")
    if config is None:
        config = ModelConfig(size=x_np.shape[-1], channels=x_np.shape[1], cond_dim=schema.dim)
    if (config.size, config.channels, config.cond_dim) != (
        x_np.shape[-1],
        x_np.shape[1],
        schema.dim,
    ):
        raise ConfigError("config size/channels/cond_dim do not match the data and schema")
    device = resolve_device(device)
    out_path = Path(out_path)

    train_idx, held_idx, split_rule = _choose_split(train_meta, heldout_fraction, seed)
    cond_np = schema.encode_batch(train_meta)
    x_all = torch.from_numpy(x_np).to(device)
    c_all = torch.from_numpy(cond_np).to(device)
    x_tr, c_tr = x_all[train_idx], c_all[train_idx]
    x_ho, c_ho = x_all[held_idx], c_all[held_idx]
    augment = batch_augmenter(augmentation, [train_meta[i] for i in train_idx])
    n_train = len(train_idx)
    steps_per_epoch = math.ceil(n_train / batch_size)
    total_steps = steps_per_epoch * epochs

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CINN(config).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    fingerprint = {
        "architecture": config.to_dict(),
        "conditions": schema.to_dict(),
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "n": int(x_np.shape[0]),
        "heldout_fraction": heldout_fraction,
        "split": split_rule,
        "augmentation": augmentation.to_card() if augmentation is not None else None,
    }
    eval_seed = seed + _EVAL_NOISE_SEED_OFFSET
    start_epoch, history = 0, []
    state_file = state_path(out_path)
    if resume and state_file.exists():
        state = torch.load(state_file, map_location=device, weights_only=True)
        if state["fingerprint"] != fingerprint:
            raise ConfigError(
                "cannot resume: data size, architecture, schema, seed, batch size or lr differ "
                "from the saved training state"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        logger.info("resuming training after epoch %d", start_epoch)
    elif resume:
        logger.info("no training state to resume from; starting fresh")
    if start_epoch == 0:
        _data_init(model, x_tr, c_tr, seed)
    if not history:
        history.append(
            {
                "epoch": 0,
                "heldout_bpd": heldout_bpd(model, x_ho, c_ho, batch_size=64, seed=eval_seed),
            }
        )

    bar = _progress_bar(progress)
    with bar, _deterministic_cudnn():
        task = bar.add_task("training", total=total_steps, completed=start_epoch * steps_per_epoch)
        for epoch in range(start_epoch, epochs):
            model.train()
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(n_train, generator=generator)
            running, seen = 0.0, 0
            for batch_no in range(steps_per_epoch):
                step = epoch * steps_per_epoch + batch_no
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total_steps, lr)
                idx = order[batch_no * batch_size : (batch_no + 1) * batch_size].to(device)
                xb = augment(x_tr[idx], idx, epoch, batch_no)
                noise = torch.rand(xb.shape, generator=generator).to(device)
                z, log_det = model.encode(xb + noise / 256.0, c_tr[idx])
                bpd = bits_per_dim(model_nll(model, z, log_det, c_tr[idx]), z.shape[1])
                loss = bpd.mean()
                if not torch.isfinite(loss):
                    raise ModelError(
                        f"non-finite loss in epoch {epoch + 1}, step {batch_no + 1}; "
                        "lower the learning rate"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                running += float(loss.detach()) * xb.shape[0]
                seen += xb.shape[0]
                bar.update(
                    task, advance=1, description=f"epoch {epoch + 1}/{epochs} bpd {loss:.3f}"
                )
            record = {
                "epoch": epoch + 1,
                "train_bpd": running / max(seen, 1),
                "heldout_bpd": heldout_bpd(model, x_ho, c_ho, batch_size=64, seed=eval_seed),
            }
            history.append(record)
            logger.info(
                "epoch %d: train %.4f bpd, held-out %.4f bpd",
                epoch + 1,
                record["train_bpd"],
                record["heldout_bpd"],
            )
            _save_state(state_file, model, optimizer, epoch + 1, history, fingerprint)

    model.eval()
    release = model.coarsest_block
    # Without a held-out split the clip defaults fall back to training slices (stated).
    norm_x, norm_c, norm_src = (
        (x_ho, c_ho, "held-out") if len(held_idx) else (x_tr, c_tr, "training")
    )
    norms = latent_norms(
        model, norm_x, norm_c, batch_size=64, release=(release.start, release.stop)
    )
    defaults = privacy_defaults(norms, release.name, standardised=model.has_conditional_prior)
    if norm_src != "held-out":
        defaults["how_chosen"] = defaults["how_chosen"].replace(
            "held-out", "training (no held-out)"
        )
    card = {
        "conditions": schema.to_dict(),
        "normalization": dict(normalization or {}),
        "privacy_defaults": defaults,
        "training": {
            "counts": condition_counts(schema, [train_meta[i] for i in train_idx]),
            "sources": list(sources),
            "epochs": epochs,
            "seed": seed,
            "size": config.size,
            "n_train": n_train,
            "n_heldout": int(len(held_idx)),
            "split": split_rule,
            "batch_size": batch_size,
            "lr": lr,
            "optimizer": f"Adam, cosine decay per step to 1% of lr, grad-norm clip {grad_clip:g}",
            "augmentation": augmentation.to_card() if augmentation is not None else "none",
            "dequantization": (
                BPD_CONVENTION_CONDITIONAL if model.has_conditional_prior else BPD_CONVENTION
            ),
            "device": device.split(":")[0],
            "history": history,
        },
        "heldout_bits_per_dim": history[-1]["heldout_bpd"] if len(held_idx) else None,
        # What the model may be used on: anonymize refuses inputs outside these.
        "domains": domain_counts([train_meta[i] for i in train_idx], schema.to_dict()),
    }
    return save_model(out_path, model.cpu(), card)


def _data_init(model: Any, x: Any, c: Any, seed: int) -> None:
    """Glow's data-dependent ActNorm initialisation from a seeded sample of training slices.

    A no-op for models without ActNorm.  Dequantised like a training batch, so that no
    channel starts from the zero variance of 8-bit steps.
    """
    import torch

    generator = torch.Generator().manual_seed(seed + _INIT_SEED_OFFSET)
    pick = torch.randperm(x.shape[0], generator=generator)[:_INIT_SLICES].to(x.device)
    noise = torch.rand(x[pick].shape, generator=generator).to(x.device)
    model.data_init(x[pick] + noise / 256.0, c[pick])


def _save_state(
    path: Path,
    model: Any,
    optimizer: Any,
    epoch: int,
    history: list[dict[str, Any]],
    fingerprint: dict[str, Any],
) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": epoch,
            "history": history,
            "fingerprint": fingerprint,
        },
        tmp,
    )
    os.replace(tmp, path)


@contextlib.contextmanager
def _deterministic_cudnn() -> Iterator[None]:
    """Deterministic cuDNN kernels while training, restoring the caller's settings.

    cuDNN's autotuned convolution backward kernels differ between runs, so two CUDA runs
    with the same seed would otherwise drift apart in the last bits.
    """
    import torch

    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


class _NoProgress:
    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    )


__all__ = ["resolve_device", "state_path", "train_model"]
