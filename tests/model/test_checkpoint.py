"""Checkpoints: exact reload, card round trip, tamper detection, torch-free card reading."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from cadp_med.errors import ModelError
from cadp_med.model.checkpoint import card_path, load_model, read_model_card, save_model
from cadp_med.model.cinn import CINN
from cadp_med.model.conditions import default_schema
from tests.model._slices import real_batch
from tests.model.test_cinn import SMALL, _randomize

CARD = {
    "conditions": default_schema().to_dict(),
    "normalization": {"method": "opaque-to-model", "p": [1, 99]},
    "privacy_defaults": {"clip_l1": 1.0, "clip_l2": 2.0, "how_chosen": "test"},
    "training": {"epochs": 0},
    "heldout_bits_per_dim": None,
}


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, CINN, dict[str, object]]:
    torch.manual_seed(0)
    model = _randomize(CINN(SMALL).eval())
    path = tmp_path / "model.safetensors"
    card = save_model(path, model, CARD)
    return path, model, card


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One intra-op thread: MKL may otherwise pick a different thread count per call on a
    loaded machine (MKL_DYNAMIC), which changes the summation order in the last bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_reload_is_bit_identical(saved: tuple[Path, CINN, dict[str, object]]) -> None:
    path, model, _ = saved
    loaded, _ = load_model(path)
    x, meta = real_batch(64)
    c = torch.from_numpy(default_schema().encode_batch(meta))
    with torch.no_grad():
        z0, j0 = model.encode(x, c)
        z1, j1 = loaded.encode(x, c)
        assert torch.equal(z0, z1) and torch.equal(j0, j1)
        assert torch.equal(model.decode(z0, c), loaded.decode(z0, c))


def test_card_roundtrip(saved: tuple[Path, CINN, dict[str, object]]) -> None:
    path, model, card = saved
    assert read_model_card(path) == card
    assert json.loads(card_path(path).read_text()) == card
    assert card["format"] == "cadp-med-model/1"
    assert card["architecture"] == SMALL.to_dict()
    assert card["normalization"] == CARD["normalization"]
    latent = card["latent"]
    assert latent["dim"] == 64 * 64
    assert latent["default_release"] == {
        "start": model.coarsest_block.start,
        "stop": model.coarsest_block.stop,
        "name": "fc",
    }
    assert str(card["content_hash"]).startswith("sha256:")


def test_tampered_weights_rejected(saved: tuple[Path, CINN, dict[str, object]]) -> None:
    path = saved[0]
    data = bytearray(path.read_bytes())
    (header_len,) = struct.unpack("<Q", data[:8])
    data[8 + header_len + 100] ^= 0x01  # flip one bit inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="content hash"):
        load_model(path)


def test_not_a_model_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}{}{")
    with pytest.raises(ModelError):
        read_model_card(path)


def test_read_model_card_does_not_import_torch(
    saved: tuple[Path, CINN, dict[str, object]],
) -> None:
    path = saved[0]
    code = (
        "import sys; from cadp_med.model import read_model_card; "
        f"card = read_model_card({str(path)!r}); "
        "assert card['format'] == 'cadp-med-model/1'; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
