from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cadp_med.errors import ConfigError
from cadp_med.io._hashing import path_hash
from cadp_med.io.quarantine import Quarantine, check_quarantine_location, default_quarantine_root
from tests.conftest import pydicom_file


def test_put_copies_with_reason(tmp_path: Path) -> None:
    source = tmp_path / "in" / "Doe^John.dcm"
    source.parent.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), source)
    before = source.read_bytes()

    copy = Quarantine(tmp_path / "q").put(source, "truncated")

    assert source.read_bytes() == before  # copied, not moved
    digest = path_hash(source)
    assert copy == tmp_path / "q" / f"{digest[:16]}.dcm"
    assert copy.read_bytes() == before
    note = json.loads((tmp_path / "q" / f"{digest[:16]}.reason.json").read_text())
    assert note["reason"] == "truncated" and note["input_path_hash"] == digest
    assert "Doe" not in json.dumps(note)
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == sorted(
        [copy.name, f"{digest[:16]}.reason.json"]
    )


def test_default_root_is_a_sibling_of_the_output(tmp_path: Path) -> None:
    assert default_quarantine_root(tmp_path / "out") == tmp_path / "out.quarantine"
    check_quarantine_location(tmp_path / "out.quarantine", tmp_path / "out")


@pytest.mark.parametrize("inside", [".", "sub", "sub/deeper"])
def test_quarantine_inside_output_is_refused(tmp_path: Path, inside: str) -> None:
    with pytest.raises(ConfigError, match="inside the output"):
        check_quarantine_location(tmp_path / "out" / inside, tmp_path / "out")
