"""Search de-identified outputs for identity that survived (no key needed).

:func:`verify_outputs` collects the identifying values of the originals, then looks for them
in every output element (any depth, private tags included), in the raw header bytes of every
output file, in output file and folder names, and in the audit log.

Which original values count as identifying: values of attributes that the applied profile
does not keep. The profile is read back from the outputs' De-identification Method Code
Sequence (PS3.15 E.1.1, CID 7050), so retained options (e.g. Retain Institution Identity)
do not report leaks. Rules, by kind:

* ``name``: PN values, whole and each component of 4+ characters;
* ``uid``: instance UIDs (UI values not registered in the standard), unless Retain UIDs;
* ``date``: DA values and the date part of DT values (8 characters), unless the outputs say
  LongitudinalTemporalInformationModified is UNMODIFIED; searched in element values only,
  and, in outputs marked MODIFIED, not in DA/DT elements (a shifted date can equal another
  original date; only the key could tell them apart);
* ``id``, ``address``, ``institution``, ``free-text``: other text of 4+ characters, by
  keyword (…ID/…Number, …Address…, Institution…); private text values count as free text.
  CS values, numbers, the dummies cadp-med writes, and any value that also appears in an
  attribute the profile keeps (e.g. "HEAD" in Body Part Examined) are not searched for.

Substring search (raw bytes, names, audit log) uses values of 6+ characters; element values
are matched exactly token by token (split on ``^``, ``\\`` and spaces) and by substring for
the longer values. Reports name tag paths and files, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from cadp_med.deid._plan import Plan, build_plan
from cadp_med.deid._profile import OPTION_CODES, Option, Profile
from cadp_med.deid._pseudo import is_registered_uid
from cadp_med.deid._values import WRITTEN_CONSTANTS

MIN_TOKEN = 4
MIN_SUBSTRING = 6
TEXT_OBJECT_FREE_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "AE", "PN", "UR"})
TRIVIAL = frozenset(
    {"YES", "NO", "NONE", "UNKNOWN", "ANON", "ANONYMOUS", "ANONYMIZED", "NULL", "TRUE", "FALSE"}
)
CODE_TO_OPTION = {code: option for option, code in OPTION_CODES.items()}


@dataclass(frozen=True)
class Leak:
    """One surviving identifying value: where it is, and what kind it was (never the value)."""

    tag_path: str
    kind: str
    where: str


@dataclass
class VerifyReport:
    """Result of :func:`verify_outputs`."""

    leaks: list[Leak] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing leaked and every output carries its de-identification marks."""
        return not self.leaks and not self.missing


def _all_files(root: Path) -> Iterator[tuple[Path, Dataset | None]]:
    """Yield every file under ``root``, with its dataset when it is a DICOM instance."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            try:
                ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            except Exception:  # not DICOM, or too broken to parse
                ds = None
            # ``force=True`` turns any text file into a few junk elements; an instance
            # without a SOP Instance UID is not one we wrote.
            if ds is not None and (len(ds) == 0 or "SOPInstanceUID" not in ds):
                ds = None
            yield path, ds


def _dicom_files(root: Path) -> Iterator[tuple[Path, Dataset]]:
    for path, ds in _all_files(root):
        if ds is not None:
            yield path, ds


def _elements(ds: Dataset, path: str = "") -> Iterator[tuple[str, int, str, object]]:
    """Yield ``(tag_path, tag, VR, value)`` for every element at every depth."""
    for tag in list(ds.keys()):
        tag_path = f"{path}({tag >> 16:04X},{tag & 0xFFFF:04X})"
        try:
            elem = ds[tag]
            vr, value = elem.VR, elem.value
        except Exception:
            continue
        if vr == "SQ":
            for index, item in enumerate(value or []):
                yield from _elements(item, f"{tag_path}[{index}].")
        else:
            yield tag_path, int(tag), vr, value


def _strings(vr: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value.decode("latin-1")] if vr in ("UN", "OB") and len(value) < 10_000 else []
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    text = str(value).strip()
    return [text] if text else []


def _kind(keyword: str, vr: str) -> str:
    if vr == "PN":
        return "name"
    if "Address" in keyword or "Telephone" in keyword:
        return "address"
    if "Institution" in keyword:
        return "institution"
    if keyword.endswith(("ID", "IDs", "Number", "Identifier")):
        return "id"
    return "free-text"


def _profile_from_outputs(datasets: list[Dataset]) -> tuple[Plan, bool]:
    options: set[Option] = set()
    unmodified = False
    for ds in datasets:
        for item in ds.get("DeidentificationMethodCodeSequence", []) or []:
            option = CODE_TO_OPTION.get(str(item.get("CodeValue", "")))
            if option is not None:
                options.add(option)
        unmodified |= ds.get("LongitudinalTemporalInformationModified", "") == "UNMODIFIED"
    if Option.RETAIN_LONGITUDINAL_FULL_DATES in options:
        options.discard(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES)
    return build_plan(Profile(frozenset(options))), unmodified


class _Identity:
    """Identifying values of the originals, by kind."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}  # exact value -> kind
        self.dates: set[str] = set()
        self.kept: set[str] = set()

    def add(self, text: str, kind: str) -> None:
        if len(text) >= MIN_TOKEN and text.upper() not in TRIVIAL:
            self.tokens.setdefault(text, kind)

    def finish(self) -> None:
        for value in self.kept | WRITTEN_CONSTANTS:
            self.tokens.pop(value, None)
        self.dates -= WRITTEN_CONSTANTS
        # A value inside a kept value (an institution "ACME" in a manufacturer "ACME_MED",
        # a word of a kept code meaning) is not searched for: it would be reported where
        # nothing leaked.
        kept_blob = "\x00".join(self.kept)
        self.tokens = {t: k for t, k in self.tokens.items() if t not in kept_blob}
        self.long = {t: k for t, k in self.tokens.items() if len(t) >= MIN_SUBSTRING}


def _collect(originals: list[Dataset], plan: Plan, unmodified: bool) -> _Identity:
    from pydicom.datadict import keyword_for_tag

    found = _Identity()
    for ds in originals:
        for _path, tag, vr, value in _elements(ds):
            group, number = tag >> 16, tag & 0xFFFF
            texts = _strings(vr, value)
            if group & 1:
                # Private text is free text; safe private elements are numeric, never text.
                if number > 0xFF and vr in TEXT_OBJECT_FREE_VRS | {"UN"}:
                    for text in texts:
                        if vr != "UN" or text.isprintable():
                            found.add(text, "free-text")
                continue
            # SR Text Value is outside the table but cleaned inside Content Sequences.
            action = "CLEAN" if tag == 0x0040A160 else plan.actions.get(tag)
            if action in (None, "K"):
                found.kept.update(texts)
            if vr == "UI":
                if not plan.retain_uids:
                    for uid in texts:
                        if not is_registered_uid(uid):
                            found.add(uid, "uid")
                continue
            if vr in ("DA", "DT"):
                if not unmodified and action != "K":
                    found.dates.update(t[:8] for t in texts if len(t) >= 8 and t[:8].isdigit())
                continue
            if vr not in TEXT_OBJECT_FREE_VRS:
                continue
            if action in (None, "K"):
                continue
            kind = _kind(keyword_for_tag(tag), vr)
            for text in texts:
                found.add(text, kind)
                if vr == "PN":
                    for part in text.replace("=", "^").split("^"):
                        found.add(part.strip(), "name")
    found.finish()
    return found


def _search_text(
    text: str, found: _Identity, *, dates: bool, candidates: dict[str, str] | None = None
) -> str | None:
    """The kind of the first identifying value in ``text``, or None.

    ``candidates`` narrows the substring search to values already known to occur in the
    file (one search over the whole file's text instead of one per element).
    """
    pieces = {text, *text.replace("\\", " ").replace("^", " ").split()}
    for piece in pieces:
        kind = found.tokens.get(piece)
        if kind:
            return kind
        if dates and piece[:8] in found.dates:
            return "date"
    for value, kind in (found.long if candidates is None else candidates).items():
        if value in text:
            return kind
    return None


def _raw_contains(data: bytes, value: bytes, *, whole_uid: bool) -> bool:
    """``value`` in ``data``; a UID must not continue (a root is not its children)."""
    start = data.find(value)
    if not whole_uid:
        return start >= 0
    while start >= 0:
        end = start + len(value)
        if end >= len(data) or data[end] not in b"0123456789.":
            return True
        start = data.find(value, start + 1)
    return False


def _byte_and_name_leaks(
    data: bytes,
    path: Path,
    output: Path,
    found: _Identity,
    raw_values: list[tuple[bytes, str]],
) -> list[Leak]:
    """Leaks in a file's raw bytes and in the names of the folders leading to it."""
    where = path.relative_to(output).as_posix()
    leaks = [
        Leak("raw bytes", kind, where)
        for value, kind in raw_values
        if _raw_contains(data, value, whole_uid=kind == "uid")
    ]
    for part in path.relative_to(output).parts:
        kind = _search_text(part, found, dates=False)
        if kind:
            leaks.append(Leak("file name", kind, where))
    return leaks


def verify_outputs(original: Path, output: Path, *, audit_log: Path | None = None) -> VerifyReport:
    """Check that no identifying value of ``original`` survives anywhere in ``output``.

    Parameters
    ----------
    original, output
        Folders of original and de-identified DICOM files (walked recursively; files that do
        not parse are skipped).
    audit_log
        A text log to search as well.
    """
    original, output = Path(original), Path(output)
    every_output = list(_all_files(output))
    outputs = [(path, ds) for path, ds in every_output if ds is not None]
    others = [path for path, ds in every_output if ds is None]
    plan, unmodified = _profile_from_outputs([ds for _, ds in outputs])
    found = _collect([ds for _, ds in _dicom_files(original)], plan, unmodified)
    report = VerifyReport(files_checked=len(outputs))
    raw_values = [(v.encode("utf-8"), k) for v, k in found.long.items()]
    for path, ds in outputs:
        where = path.relative_to(output).as_posix()
        for name in ("PatientIdentityRemoved", "LongitudinalTemporalInformationModified"):
            if name not in ds or (name == "PatientIdentityRemoved" and ds[name].value != "YES"):
                report.missing.append(f"{where}: {name}")
        if "DeidentificationMethod" not in ds and "DeidentificationMethodCodeSequence" not in ds:
            report.missing.append(f"{where}: DeidentificationMethod")
        # Shifted dates cannot be told from original ones without the key, and a shift can
        # land on another patient's real date: under MODIFIED, DA/DT elements are trusted
        # and dates are searched for only in other text.
        shifted = ds.get("LongitudinalTemporalInformationModified", "") == "MODIFIED"
        values = [
            (tag_path, vr, text)
            for tag_path, _tag, vr, value in _elements(ds)
            for text in _strings(vr, value)
        ]
        blob = "\x00".join(text for _, _, text in values)
        candidates = {v: k for v, k in found.long.items() if v in blob}
        reported: set[str] = set()
        for tag_path, vr, text in values:
            if tag_path in reported:
                continue  # one leak per element is enough
            search_dates = vr != "UI" and not (shifted and vr in ("DA", "DT"))
            kind = _search_text(text, found, dates=search_dates, candidates=candidates)
            if kind:
                report.leaks.append(Leak(tag_path, kind, where))
                reported.add(tag_path)
        header = path.read_bytes()
        pixel_tag = header.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010): skip pixel bytes
        header = header[:pixel_tag] if pixel_tag > 0 else header
        report.leaks.extend(_byte_and_name_leaks(header, path, output, found, raw_values))
    for path in others:
        # Files that are not DICOM (logs, manifests, stray copies) must not leak either.
        report.leaks.extend(
            _byte_and_name_leaks(path.read_bytes(), path, output, found, raw_values)
        )
    if audit_log is not None and Path(audit_log).exists():
        text = Path(audit_log).read_text(encoding="utf-8", errors="replace")
        for line_no, line in enumerate(text.splitlines(), start=1):
            kind = _search_text(line, found, dates=False)
            if kind:
                report.leaks.append(Leak(f"line {line_no}", kind, "audit log"))
    return report
