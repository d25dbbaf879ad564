"""A node configured with ``pixels = "privatize"`` privatizes with the DP pixel stage."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from cadp_med.errors import ConfigError
from cadp_med.net import Node
from cadp_med.net._spool import Spool, uid_key
from cadp_med.net.config import parse_config
from tests.conftest import SAMPLE_DATA
from tests.net._peers import wait_for
from tests.net.test_inprocess import base_config

HEAD_CT = SAMPLE_DATA / "ct_head" / "CT_head.dcm"


def test_privatizing_node_writes_dp_pixels_with_provenance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADP_MED_KEY", "node-test-key")
    raw = base_config(tmp_path, pixels="privatize", eps=4.0)
    raw["privacy"] = {"mechanism": "laplace", "window_eps_share": 0.2}
    config = parse_config(raw, tmp_path)
    source = pydicom.dcmread(HEAD_CT)
    spool = Spool(config.spool, config.staging)
    study = uid_key(str(source.StudyInstanceUID))
    spool.store(study, uid_key(str(source.SOPInstanceUID), 32), HEAD_CT.read_bytes())

    node = Node(config)
    node.start()
    try:
        wait_for(lambda: node.report()["sent"], 120, "the privatized study")
    finally:
        node.stop()
    [delivered] = [p for p in (tmp_path / "share").rglob("*") if p.is_file()]
    out = pydicom.dcmread(delivered)
    assert out.ImageType[0] == "DERIVED"
    methods = list(out.DeidentificationMethod)
    assert any(m.startswith("CADP laplace eps=4 ") for m in methods), methods
    assert out.PixelData != source.PixelData


def test_privacy_table_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_config(base_config(tmp_path, pixels="privatize", privacy={"epsilon": 1}), tmp_path)
    with pytest.raises(ConfigError, match="only to pixels"):
        parse_config(base_config(tmp_path, privacy={"mechanism": "laplace"}), tmp_path)
