"""Every file we can get, de-identified, written, re-read and verified leak-free."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files

from cadp_med.deid import Profile, verify_outputs
from cadp_med.testing.phi_corpus import load_phi_strings
from tests.deid.conftest import SITE, deidentify, run_tree

CORPORA = {
    "pydicom": SITE / "pydicom" / "data" / "test_files",
    "pydicom-data": SITE / "data_store",
    "deid-data": SITE / "deid_data",
}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORPORA))
def test_installed_corpus_deidentifies_without_leaks(name: str, tmp_path: Path) -> None:
    root = CORPORA[name]
    if not root.is_dir():
        pytest.skip(f"{name} is not installed")
    written, failures = run_tree(_files(root), root, tmp_path, deidentify())
    assert failures == []
    assert written >= 10
    report = verify_outputs(root, tmp_path)
    assert report.files_checked == written
    assert report.leaks == []
    assert report.missing == []


def test_pydicom_test_files_are_all_found() -> None:
    # get_testdata_files only lists what is on disk, so it never hits the network.
    assert len(get_testdata_files()) >= 100


@pytest.mark.slow
def test_dicognito_corpus_deidentifies_without_leaks(dicognito_data: Path, tmp_path: Path) -> None:
    written, failures = run_tree(_files(dicognito_data), dicognito_data, tmp_path, deidentify())
    assert failures == [] and written >= 40
    report = verify_outputs(dicognito_data, tmp_path)
    assert report.ok, (report.leaks[:5], report.missing[:5])


@pytest.mark.parametrize(
    "options",
    [
        (),
        ("clean-descriptors", "clean-structured-content", "clean-graphics"),
        ("retain-longitudinal-modified-dates", "retain-safe-private"),
    ],
    ids=["basic", "clean-options", "modified-dates"],
)
def test_phi_corpus_leaves_no_injected_string(
    phi_corpus: Path, tmp_path: Path, options: tuple[str, ...]
) -> None:
    profile = Profile.from_options(options)
    written, failures = run_tree(_files(phi_corpus), phi_corpus, tmp_path, deidentify(profile))
    assert failures == [] and written == 6
    injected = load_phi_strings(phi_corpus)
    assert len(injected) > 1000
    if "retain-longitudinal-modified-dates" in options:
        # Shifted dates may equal another slot's random original date; shifting itself is
        # checked in test_pseudonyms.py, element by element.
        injected = {v: k for v, k in injected.items() if k != "date"}
    # Independent of verify: every injected string, searched in every output byte.
    for path in tmp_path.rglob("*.dcm"):
        data = path.read_bytes()
        survivors = [kind for value, kind in injected.items() if value.encode() in data]
        assert survivors == [], (path.name, survivors[:5])
    report = verify_outputs(phi_corpus, tmp_path)
    assert report.ok, (report.leaks[:5], report.missing[:5])


def test_verify_finds_leaks_in_undeidentified_copies(phi_corpus: Path, tmp_path: Path) -> None:
    shutil.copytree(phi_corpus, tmp_path / "out")
    report = verify_outputs(phi_corpus, tmp_path / "out")
    kinds = {leak.kind for leak in report.leaks}
    assert {"name", "uid", "date", "free-text"} <= kinds
    assert report.missing  # no PatientIdentityRemoved in the originals
    assert not report.ok
    injected = load_phi_strings(phi_corpus)
    for leak in report.leaks:  # never the value
        assert not any(value in leak.tag_path or value in leak.where for value in injected)


def test_verify_finds_a_single_planted_leak(phi_corpus: Path, tmp_path: Path) -> None:
    run_tree(_files(phi_corpus), phi_corpus, tmp_path, deidentify())
    victim = sorted(tmp_path.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(victim)
    original = pydicom.dcmread(sorted(phi_corpus.rglob("*.dcm"))[0])
    ds.SeriesDescription = f"follow-up for {original.PatientName}"
    ds.save_as(victim)
    (tmp_path / "audit.log").write_text(f"wrote {original.PatientID}\n")
    report = verify_outputs(phi_corpus, tmp_path, audit_log=tmp_path / "audit.log")
    where = {(leak.tag_path, leak.where) for leak in report.leaks}
    assert ("(0008,103E)", victim.name) in where
    assert ("line 1", "audit log") in where
