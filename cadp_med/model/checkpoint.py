"""Model checkpoints: safetensors weights with the model card embedded.

The card (JSON) is stored in the safetensors header metadata under ``"cadp_med_card"`` and
also written next to the weights as ``<path>.card.json`` for people and tools.  The card
alone rebuilds the architecture; :func:`read_model_card` reads it without importing torch,
so ``cadp-med inspect`` stays fast.

Card keys (other modules read these): ``format``, ``cadp_med_version``, ``architecture``,
``conditions``, ``normalization``, ``latent``, ``privacy_defaults``, ``training``,
``heldout_bits_per_dim``, ``content_hash``, and ``domains`` (``cadp_med.model._domains``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cadp_med._version import __version__
from cadp_med.errors import ModelError

if TYPE_CHECKING:
    from torch import Tensor

    from cadp_med.model.cinn import CINN

CARD_FORMAT = "cadp-med-model/1"
CARD_KEY = "cadp_med_card"
_MAX_HEADER = 100 * 1024 * 1024


def card_path(path: str | Path) -> Path:
    """The sidecar path ``<path>.card.json``."""
    path = Path(path)
    return path.with_name(path.name + ".card.json")


def content_hash(tensors: dict[str, Tensor]) -> str:
    """sha256 over the sorted tensor names, dtypes, shapes and raw bytes."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def latent_card(model: CINN) -> dict[str, Any]:
    """The card's ``latent`` entry: dimension, prior, blocks and the default release subspace.

    ``prior`` is ``"standard"`` (N(0, I)) or ``"conditional"`` (N(mu(c), diag sigma(c)^2),
    its weights under ``prior.`` in the checkpoint); cards written before it existed lack
    the key and mean ``"standard"``.
    """
    coarsest = model.coarsest_block
    return {
        "dim": model.latent_dim,
        "prior": model.config.prior,
        "blocks": [block.to_dict() for block in model.latent_layout],
        "default_release": {
            "start": coarsest.start,
            "stop": coarsest.stop,
            "name": coarsest.name,
        },
    }


def _state_tensors(model: CINN) -> dict[str, Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone to be safe.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_model(path: str | Path, model: CINN, card: dict[str, Any]) -> dict[str, Any]:
    """Write ``model`` and its card atomically; return the completed card.

    ``architecture``, ``latent``, ``format``, ``cadp_med_version`` and ``content_hash``
    are filled in from the model; everything else in ``card`` is kept as given.
    """
    path = Path(path)
    tensors = _state_tensors(model)
    full = dict(card)
    full.update(
        format=CARD_FORMAT,
        cadp_med_version=__version__,
        architecture=model.config.to_dict(),
        latent=latent_card(model),
        content_hash=content_hash(tensors),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_weights_and_card(tensors, full, path)
    return full


def _write_weights_and_card(tensors: dict[str, Any], card: dict[str, Any], path: Path) -> None:
    """Write the tensors with the card embedded (atomically), then the card beside them."""
    from safetensors.torch import save_file

    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={CARD_KEY: json.dumps(card, sort_keys=True)})
        os.chmod(tmp, mode)  # mkstemp's 0600 would hide a model meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    card_path(path).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def update_model_card(path: str | Path, sections: dict[str, Any]) -> dict[str, Any]:
    """Add or replace card ``sections`` of a saved model without touching its weights.

    The tensors are read, checked against the card's ``content_hash`` and written back
    unchanged with the new card (embedded and beside), so the hash stays valid. Sections
    that :func:`save_model` derives from the model (``architecture``, ``latent``,
    ``format``, ``cadp_med_version``, ``content_hash``) cannot be replaced here.
    """
    from safetensors.torch import load_file

    fixed = {"architecture", "latent", "format", "cadp_med_version", "content_hash"}
    if fixed & set(sections):
        raise ModelError(f"card sections {sorted(fixed & set(sections))} come from the weights")
    path = Path(path)
    card = read_model_card(path)
    tensors = load_file(str(path), device="cpu")
    if content_hash(tensors) != card.get("content_hash"):
        raise ModelError("model weights do not match the content hash in the model card")
    full = {**card, **sections}
    _write_weights_and_card(tensors, full, path)
    return full


def read_model_card(path: str | Path) -> dict[str, Any]:
    """Read the card from a safetensors header without importing torch.

    The safetensors layout is an 8-byte little-endian header length, then a JSON header
    whose ``__metadata__`` holds string key/values.
    """
    try:
        with Path(path).open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > _MAX_HEADER:
                raise ModelError("safetensors header is implausibly large")
            header = json.loads(handle.read(length))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"not a readable model file: {exc.__class__.__name__}") from exc
    text = header.get("__metadata__", {}).get(CARD_KEY)
    if text is None:
        raise ModelError("model file has no cadp-med model card")
    card = json.loads(text)
    if card.get("format") != CARD_FORMAT:
        raise ModelError(f"unsupported model card format; expected {CARD_FORMAT}")
    return card


def load_model(path: str | Path, device: str = "cpu") -> tuple[CINN, dict[str, Any]]:
    """Rebuild the architecture from the card, load the weights strictly, verify the hash.

    Raises
    ------
    ModelError
        The file is unreadable, the card is missing or the weights do not match the card's
        ``content_hash`` or architecture.
    """
    from safetensors.torch import load_file

    from cadp_med.model.cinn import CINN, ModelConfig

    card = read_model_card(path)
    tensors = load_file(str(path), device="cpu")
    if content_hash(tensors) != card.get("content_hash"):
        raise ModelError("model weights do not match the content hash in the model card")
    model = CINN(ModelConfig.from_dict(card["architecture"]))
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ModelError("model weights do not fit the architecture in the card") from exc
    model.eval()
    return model.to(device), card
