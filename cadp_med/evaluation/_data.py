"""Evaluation data sets: labelled images with their conditions, padded to a model grid.

``--data`` accepts:

``digits``
    scikit-learn's 1,797 8x8 digits (values 0..16 scaled to [0, 1]), conditioned on the
    class; a seeded stratified 70/30 train/test split.
``fashion-mnist[:DIR]``
    The idx-ubyte.gz files of Debian's ``dataset-fashion-mnist`` (default folder
    ``/usr/share/datasets/fashion-mnist``), 28x28 zero-padded to 32x32, conditioned on the
    class; the official 60k/10k split.
``PATH.npz``
    A prepared medical :class:`~cadp_med.imaging.SliceSet` whose ``split`` labels give the
    held-out slices.  No labelled medical set exists here, so the utility task is to
    predict one condition field (``target``) and the conditions come from the model card.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadp_med.errors import ConfigError
from cadp_med.model.conditions import ConditionSchema

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)


@dataclass
class EvalData:
    """Train and test images on the model grid, with metadata, task labels and groups.

    ``group_*`` holds one hashable per image: images with equal groups share the same
    condition, so they are the linkage attacker's candidate pool for each other.
    """

    name: str
    x_train: np.ndarray
    meta_train: list[dict[str, Any]]
    y_train: np.ndarray
    x_test: np.ndarray
    meta_test: list[dict[str, Any]]
    y_test: np.ndarray
    classes: tuple[str, ...]
    native_size: int
    schema: ConditionSchema
    target: str = "label"

    @property
    def size(self) -> int:
        """Side of the model grid."""
        return int(self.x_train.shape[-1])

    def groups(self, meta: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Condition group id per image: the tuple of the schema's labels, enumerated."""
        keys = [tuple(self.schema.label(f, m) for f in self.schema.fields) for m in meta]
        lookup: dict[tuple[str, ...], int] = {}
        return np.asarray([lookup.setdefault(k, len(lookup)) for k in keys], dtype=np.int64)


def label_schema(classes: Sequence[str]) -> ConditionSchema:
    """A one-field schema: the class label, one-hot (plus the schema's unknown slot)."""
    return ConditionSchema.from_dict(
        {
            "name": "class-label",
            "fields": [
                {
                    "name": "label",
                    "source": "meta:label",
                    "encoding": "onehot",
                    "vocabulary": list(classes),
                }
            ],
        }
    )


def pad_to(x: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad ``[N, 1, s, s]`` images centrally to ``size`` (background is 0 here)."""
    side = x.shape[-1]
    if side > size:
        raise ConfigError(f"images of side {side} do not fit a model grid of {size}")
    before = (size - side) // 2
    after = size - side - before
    return np.pad(x, ((0, 0), (0, 0), (before, after), (before, after)))


def crop_to(x: np.ndarray, side: int) -> np.ndarray:
    """Inverse of :func:`pad_to`: the central ``side x side`` window."""
    before = (x.shape[-1] - side) // 2
    return x[..., before : before + side, before : before + side]


def _labelled(
    name: str,
    images: tuple[np.ndarray, np.ndarray],
    labels: tuple[np.ndarray, np.ndarray],
    classes: Sequence[str],
    size: int,
) -> EvalData:
    (x_tr, x_te), (y_tr, y_te) = images, labels
    native = int(x_tr.shape[-1])
    return EvalData(
        name=name,
        x_train=pad_to(x_tr, size).astype(np.float32),
        meta_train=[{"label": classes[int(y)]} for y in y_tr],
        y_train=np.asarray(y_tr, dtype=np.int64),
        x_test=pad_to(x_te, size).astype(np.float32),
        meta_test=[{"label": classes[int(y)]} for y in y_te],
        y_test=np.asarray(y_te, dtype=np.int64),
        classes=tuple(classes),
        native_size=native,
        schema=label_schema(classes),
    )


def load_digits_data(*, seed: int = 0, size: int = 8) -> EvalData:
    """scikit-learn's digits with a seeded stratified 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, bunch.target, test_size=0.3, random_state=seed, stratify=bunch.target
    )
    classes = [str(d) for d in range(10)]
    return _labelled("digits", (x_tr, x_te), (y_tr, y_te), classes, size)


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx-ubyte(.gz) file: magic (0, 0, dtype 0x08, ndim), big-endian dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if raw[:3] != b"\x00\x00\x08":
        raise ConfigError(f"{path.name} is not an unsigned-byte idx file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ConfigError(f"{path.name} is truncated")
    return data.reshape(dims)


def load_fashion_mnist(folder: Path = FASHION_DIR, *, size: int = 32) -> EvalData:
    """Fashion-MNIST from its four idx-ubyte.gz files, the official train/test split."""

    def read(stem: str) -> np.ndarray:
        for suffix in (".gz", ""):
            path = folder / f"{stem}{suffix}"
            if path.exists():
                return _read_idx(path)
        raise ConfigError(
            f"Fashion-MNIST file {stem}[.gz] not found in {folder}; "
            "install it with: apt-get install dataset-fashion-mnist"
        )

    x_tr = read("train-images-idx3-ubyte")[:, None].astype(np.float32) / 255.0
    x_te = read("t10k-images-idx3-ubyte")[:, None].astype(np.float32) / 255.0
    y_tr = read("train-labels-idx1-ubyte")
    y_te = read("t10k-labels-idx1-ubyte")
    return _labelled("fashion-mnist", (x_tr, x_te), (y_tr, y_te), FASHION_CLASSES, size)


def load_slice_set_data(path: Path, schema: ConditionSchema, target: str | None) -> EvalData:
    """A medical slice set; the utility label is the condition field ``target``."""
    from cadp_med.imaging import SliceSet

    slices = SliceSet.load(path)
    names = [f.name for f in schema.fields]
    target = target or ("plane" if "plane" in names else names[0])
    if target not in names:
        raise ConfigError(f"--target must be one of the model's condition fields {names}")
    fld = next(f for f in schema.fields if f.name == target)
    labels = [schema.label(fld, m) for m in slices.metadata]
    classes = tuple(sorted(set(labels)))
    y = np.asarray([classes.index(v) for v in labels], dtype=np.int64)
    split = np.asarray([m.get("split") for m in slices.metadata])
    if not (split == "heldout").any():
        raise ConfigError("the slice set has no held-out slices ('split' == 'heldout')")
    train, test = np.flatnonzero(split != "heldout"), np.flatnonzero(split == "heldout")
    return EvalData(
        name=path.stem,
        x_train=slices.x[train],
        meta_train=[slices.metadata[i] for i in train],
        y_train=y[train],
        x_test=slices.x[test],
        meta_test=[slices.metadata[i] for i in test],
        y_test=y[test],
        classes=classes,
        native_size=slices.size,
        schema=schema,
        target=target,
    )


def load_eval_data(
    spec: str,
    *,
    size: int | None = None,
    schema: ConditionSchema | None = None,
    target: str | None = None,
    seed: int = 0,
) -> EvalData:
    """Dispatch on the ``--data`` spec (see the module docstring)."""
    if spec == "digits":
        return load_digits_data(seed=seed, size=size or 8)
    if spec == "fashion-mnist" or spec.startswith("fashion-mnist:"):
        folder = Path(spec.partition(":")[2]) if ":" in spec else FASHION_DIR
        return load_fashion_mnist(folder, size=size or 32)
    if spec.endswith(".npz"):
        if schema is None:
            raise ConfigError("a slice set needs the model's condition schema")
        return load_slice_set_data(Path(spec), schema, target)
    raise ConfigError("--data must be 'digits', 'fashion-mnist[:DIR]' or a slice set .npz")


def subsample(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Sorted seeded subset of ``range(n)`` of at most ``limit`` items (all when None)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


__all__ = [
    "EvalData",
    "crop_to",
    "label_schema",
    "load_digits_data",
    "load_eval_data",
    "load_fashion_mnist",
    "load_slice_set_data",
    "pad_to",
    "subsample",
]
