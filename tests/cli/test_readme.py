"""Every ``cadp-med`` example of README.md runs through Typer's CliRunner."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cadp_med.cli import app
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def cli_examples() -> list[list[str]]:
    """Each ``cadp-med ...`` command in the bash blocks, split into arguments."""
    commands = []
    for block in bash_blocks():
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part)
                # Drop leading VAR=value environment assignments.
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words.pop(0)
                if words and words[0] == "cadp-med":
                    commands.append(words[1:])
    return commands


def test_readme_has_the_expected_examples() -> None:
    names = [command[0] for command in cli_examples()]
    assert names.count("anonymize") >= 4
    assert "verify" in names and "inspect" in names
    quick_start = bash_blocks()[0].strip().splitlines()
    assert len(quick_start) == 2  # exactly two commands


def test_readme_examples_run(
    tmp_path: Path, test_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)  # examples use sample_data/ relative paths
    toml = re.search(r"```toml\n(.*?)```", README, flags=re.S)
    assert toml is not None
    (tmp_path / "cadp-profile.toml").write_text(toml.group(1))
    for args in cli_examples():
        # Outputs go to the test's folder instead of /tmp.
        args = [re.sub(r"^/tmp/", f"{tmp_path}/", arg) for arg in args]
        result = runner.invoke(app, args)
        if args[0] == "verify":
            # verify's exit status is pinned in tests/cli/test_verify.py.
            assert "leaks: 0" in result.output, result.output
        else:
            assert result.exit_code == 0, (args, result.output)
    assert (tmp_path / "cadp-map.csv").is_file()
    assert list((tmp_path / "cadp-out").rglob("*.dcm"))
