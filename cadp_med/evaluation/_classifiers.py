"""Downstream classifiers for the utility protocol, plain and DP-SGD (Opacus).

The paper's utility protocol trains one classifier on privatized training images and tests
it on the original test images ("p/o"), next to the same classifier trained and tested on
originals ("o/o") and a DP-SGD baseline trained on originals at the same epsilon.

The 28x28/32x32 network is the paper's small CNN (two conv layers and a linear layer) with
GroupNorm instead of BatchNorm: BatchNorm mixes examples within a batch, so per-example
gradients (and Opacus) are undefined for it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv5x5(16)-GN-ReLU-pool, conv5x5(32)-GN-ReLU-pool, linear."""

    def __init__(self, size: int, n_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2),
            nn.GroupNorm(4, 16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2),
            nn.GroupNorm(4, 32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * (size // 4) ** 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def build_classifier(size: int, n_classes: int) -> nn.Module:
    """The paper's small CNN for grids of 28 and more; a one-hidden-layer MLP for 8x8/16x16."""
    if size >= 28:
        return SmallCNN(size, n_classes)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(size * size, 128), nn.ReLU(), nn.Linear(128, n_classes)
    )


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation settings shared by every classifier of one evaluation (a fair race)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    max_grad_norm: float = 1.0  # DP-SGD per-example clipping norm
    device: str = "cpu"


def _loader(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int
) -> torch.utils.data.DataLoader:
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(np.asarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y))
    )
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=generator
    )


class _device_batches:
    """Shuffled mini-batches from tensors kept on the device (non-private training only).

    A ``DataLoader`` over a ``TensorDataset`` fetches and stacks items one at a time, which
    dominates a GPU run; DP-SGD keeps Opacus' Poisson-sampling loader.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, spec: TrainSpec, seed: int) -> None:
        self.x = torch.from_numpy(np.asarray(x, dtype=np.float32)).to(spec.device)
        self.y = torch.from_numpy(np.asarray(y)).to(spec.device)
        self.batch_size = spec.batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):  # type: ignore[no-untyped-def]
        order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, device: str) -> float:
    """Top-1 accuracy of ``model`` on ``x`` (batches of 1,024)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), 1024):
            xb = torch.from_numpy(np.asarray(x[start : start + 1024], dtype=np.float32))
            pred = model(xb.to(device)).argmax(dim=1).cpu().numpy()
            correct += int((pred == y[start : start + 1024]).sum())
    return correct / max(len(x), 1)


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    spec: TrainSpec,
    *,
    seed: int,
    dp_epsilon: float | None = None,
    dp_delta: float | None = None,
) -> tuple[nn.Module, dict[str, float]]:
    """Train the classifier, optionally with DP-SGD at ``(dp_epsilon, dp_delta)``.

    Parameters
    ----------
    x, y
        ``[N, 1, S, S]`` images and ``[N]`` integer labels.
    n_classes
        Output width.
    spec
        Shared optimisation settings.
    seed
        Seeds the initial weights, the shuffling and (for DP-SGD) the noise.
    dp_epsilon, dp_delta
        Target of Opacus' ``make_private_with_epsilon`` (RDP accountant, Poisson
        sampling); ``None`` or ``inf`` trains without DP.

    Returns
    -------
    model, info
        The trained model (eval mode) and ``{"epsilon": spent or inf, "noise_multiplier"}``.
    """
    with warnings.catch_warnings():
        # Opacus warns that its secure RNG is off (we seed it for a repeatable audit), at
        # very large eps that the optimal RDP order is the smallest one, and about its
        # backward hooks on inputs without gradients; all expected here.
        warnings.filterwarnings("ignore", category=UserWarning, module="opacus")
        warnings.filterwarnings("ignore", message="Full backward hook", category=UserWarning)
        return _train(x, y, n_classes, spec, seed, dp_epsilon, dp_delta)


def _train(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    spec: TrainSpec,
    seed: int,
    dp_epsilon: float | None,
    dp_delta: float | None,
) -> tuple[nn.Module, dict[str, float]]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_classifier(int(x.shape[-1]), n_classes).to(spec.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    loader = _loader(x, y, spec.batch_size, seed)
    info = {"epsilon": math.inf, "noise_multiplier": 0.0}
    engine = None
    if dp_epsilon is not None and math.isfinite(dp_epsilon):
        from opacus import PrivacyEngine

        engine = PrivacyEngine(accountant="rdp")
        noise_gen = torch.Generator(device=spec.device).manual_seed(seed + 1)
        model, optimizer, loader = engine.make_private_with_epsilon(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            target_epsilon=dp_epsilon,
            target_delta=dp_delta,
            epochs=spec.epochs,
            max_grad_norm=spec.max_grad_norm,
            noise_generator=noise_gen,
        )
        info["noise_multiplier"] = float(optimizer.noise_multiplier)
    loss_fn = nn.CrossEntropyLoss()
    batches = loader if engine is not None else _device_batches(x, y, spec, seed)
    for _ in range(spec.epochs):
        model.train()
        for xb, yb in batches:
            if len(xb) == 0:  # Poisson sampling can draw an empty batch
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb.to(spec.device)), yb.to(spec.device))
            loss.backward()
            optimizer.step()
    if engine is not None:
        info["epsilon"] = float(engine.get_epsilon(dp_delta))
    model.eval()
    return model, info


__all__ = ["SmallCNN", "TrainSpec", "accuracy", "build_classifier", "train_classifier"]
