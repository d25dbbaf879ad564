"""Condition schemas: which metadata the cINN is conditioned on, and how it is encoded.

A schema is data (JSON), a list of fields::

    {"name": "plane", "source": "derived:plane", "encoding": "onehot",
     "vocabulary": ["axial", "coronal", "sagittal", "oblique"], "required": false}

``source`` says where the value comes from:

``dicom:<Keyword>``        a DICOM attribute, read by :func:`metadata_from_dataset`
``derived:plane``          axial / coronal / sagittal / oblique from ImageOrientationPatient
``derived:slice_pos``      normalised position of the slice along the series normal, 0..1
``derived:age_band``       a band of PatientAge (bands in the schema's ``tables``)
``derived:modality_contrast``  CT, MR-T1, ... from ``modality`` and ``contrast``
``derived:region``         body region (head, spine, ...) from Anatomic Region Sequence codes,
                           Body Part Examined or the descriptions (``schemas/regions.json``)
``meta:<key>``             a key of the metadata dict that ``cadp_med.imaging`` produces
``csv:<column>``           a column of a CSV sidecar keyed by pseudonymous ID, merged into
                           the metadata dict by the caller (see :func:`merge_sidecar`)

:meth:`ConditionSchema.encode` reads ``metadata[field.name]`` and, for ``meta:``/``csv:``
sources, falls back to ``metadata[<key>]``.  ``onehot`` fields have an explicit "unknown"
slot for missing or unknown values; ``number`` fields are normalised to [0, 1] and carry a
"missing" indicator.  Error messages name fields, never values (values may be PHI).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadp_med.errors import ModelError
from cadp_med.model._derive import (
    age_band,
    default_schema_json,
    metadata_from_dataset,
    modality_contrast,
    mr_contrast_from_dataset,
    plane_from_orientation,
    position_along_normal,
)
from cadp_med.model._region import body_region, region_tables

UNKNOWN = "unknown"
_ENCODINGS = ("onehot", "number")
_DERIVED = ("plane", "slice_pos", "age_band", "modality_contrast", "region")


@dataclass(frozen=True)
class ConditionField:
    """One field of a :class:`ConditionSchema`."""

    name: str
    source: str
    encoding: str
    vocabulary: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ModelError("a condition field needs a name")
        kind, _, key = self.source.partition(":")
        if kind not in ("dicom", "derived", "meta", "csv") or not key:
            raise ModelError(f"field {self.name!r}: source must be dicom:/derived:/meta:/csv:")
        if kind == "derived" and key not in _DERIVED:
            raise ModelError(f"field {self.name!r}: derived source must be one of {_DERIVED}")
        if self.encoding not in _ENCODINGS:
            raise ModelError(f"field {self.name!r}: encoding must be one of {_ENCODINGS}")
        if self.encoding == "onehot":
            if not self.vocabulary or len(set(self.vocabulary)) != len(self.vocabulary):
                raise ModelError(f"field {self.name!r}: onehot needs a non-empty unique vocabulary")
            if UNKNOWN in self.vocabulary:
                raise ModelError(f"field {self.name!r}: 'unknown' is reserved for the extra slot")
        else:
            if self.range is None or not self.range[0] < self.range[1]:
                raise ModelError(f"field {self.name!r}: number needs a range [lo, hi] with lo < hi")

    @property
    def dim(self) -> int:
        """Width in the condition vector: vocabulary + unknown, or value + missing flag."""
        return len(self.vocabulary) + 1 if self.encoding == "onehot" else 2

    @property
    def source_key(self) -> str:
        """The part of ``source`` after the colon."""
        return self.source.partition(":")[2]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditionField:
        """Build from the JSON form."""
        rng = data.get("range")
        return cls(
            name=str(data["name"]),
            source=str(data["source"]),
            encoding=str(data["encoding"]),
            vocabulary=tuple(str(v) for v in data.get("vocabulary", ())),
            range=(float(rng[0]), float(rng[1])) if rng is not None else None,
            required=bool(data.get("required", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"name": self.name, "source": self.source, "encoding": self.encoding}
        if self.encoding == "onehot":
            out["vocabulary"] = list(self.vocabulary)
        else:
            out["range"] = list(self.range) if self.range else None
        out["required"] = self.required
        return out


@dataclass(frozen=True)
class ConditionSchema:
    """An ordered list of condition fields plus the mapping tables used to derive values."""

    fields: tuple[ConditionField, ...]
    tables: Mapping[str, Any] = field(default_factory=dict)
    name: str = "custom"

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ModelError("condition field names must be unique")

    # -- (de)serialisation ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditionSchema:
        """Build from the JSON form (``fields``, optional ``tables`` and ``name``)."""
        if "fields" not in data:
            raise ModelError("a condition schema needs a 'fields' list")
        return cls(
            fields=tuple(ConditionField.from_dict(f) for f in data["fields"]),
            tables=dict(data.get("tables", {})),
            name=str(data.get("name", "custom")),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> ConditionSchema:
        """Read a schema JSON file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"cannot read condition schema: {exc.__class__.__name__}") from exc
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, complete enough to rebuild the schema exactly."""
        return {
            "format": "cadp-med-conditions/1",
            "name": self.name,
            "fields": [f.to_dict() for f in self.fields],
            "tables": dict(self.tables),
        }

    @property
    def dim(self) -> int:
        """Length of the encoded condition vector."""
        return sum(f.dim for f in self.fields)

    @property
    def names(self) -> list[str]:
        """Field names in order."""
        return [f.name for f in self.fields]

    # -- encoding ------------------------------------------------------------------------
    def _raw_value(self, fld: ConditionField, metadata: Mapping[str, Any]) -> Any:
        value = metadata.get(fld.name)
        kind = fld.source.partition(":")[0]
        if value is None and (kind in ("meta", "csv") or fld.source == "derived:region"):
            value = metadata.get(fld.source_key)
        if fld.source == "derived:modality_contrast":
            value = modality_contrast(
                metadata.get("modality"), metadata.get("contrast"), self.tables, fld.vocabulary
            )
        return value

    def _onehot_index(self, fld: ConditionField, value: Any) -> int | None:
        if value is None:
            return None
        text = str(value).strip()
        lowered = [v.lower() for v in fld.vocabulary]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        return None

    def _number(self, fld: ConditionField, value: Any) -> float | None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        lo, hi = fld.range  # type: ignore[misc]
        return min(max((number - lo) / (hi - lo), 0.0), 1.0)

    def encode(self, metadata: Mapping[str, Any]) -> np.ndarray:
        """Encode one metadata dict as a float32 vector of length :attr:`dim`.

        Missing or unknown values never raise: they set the field's unknown slot (onehot)
        or its missing flag with the value 0.5 (number).
        """
        out = np.zeros(self.dim, dtype=np.float32)
        offset = 0
        for fld in self.fields:
            value = self._raw_value(fld, metadata)
            if fld.encoding == "onehot":
                index = self._onehot_index(fld, value)
                out[offset + (len(fld.vocabulary) if index is None else index)] = 1.0
            else:
                number = self._number(fld, value)
                out[offset : offset + 2] = (0.5, 1.0) if number is None else (number, 0.0)
            offset += fld.dim
        return out

    def encode_batch(self, metadata: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode many metadata dicts, ``[N, dim]`` float32."""
        if not metadata:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.encode(m) for m in metadata])

    def is_known(self, fld: ConditionField, metadata: Mapping[str, Any]) -> bool:
        """Whether ``fld`` gets a real value (not the unknown slot / missing flag)."""
        value = self._raw_value(fld, metadata)
        if fld.encoding == "onehot":
            return self._onehot_index(fld, value) is not None
        return self._number(fld, value) is not None

    def validate_encodable(self, metadata: Mapping[str, Any]) -> None:
        """Raise :class:`ModelError` if a required field is missing or outside the vocabulary.

        Inference uses this to refuse a study the model was not trained for.
        """
        bad = [f.name for f in self.fields if f.required and not self.is_known(f, metadata)]
        if bad:
            raise ModelError(
                f"metadata cannot be encoded under the model's condition schema: required "
                f"field(s) {bad} are missing or outside the vocabulary the model was trained on"
            )

    def decode(self, vector: np.ndarray | Sequence[float]) -> dict[str, Any]:
        """Readable form of an encoded vector (argmax per onehot field), for reports."""
        vec = np.asarray(vector, dtype=np.float64).reshape(-1)
        if vec.shape[0] != self.dim:
            raise ModelError(f"condition vector must have length {self.dim}")
        out: dict[str, Any] = {}
        offset = 0
        for fld in self.fields:
            part = vec[offset : offset + fld.dim]
            if fld.encoding == "onehot":
                index = int(np.argmax(part))
                out[fld.name] = fld.vocabulary[index] if index < len(fld.vocabulary) else UNKNOWN
            elif part[1] > 0.5:
                out[fld.name] = None
            else:
                lo, hi = fld.range  # type: ignore[misc]
                out[fld.name] = float(lo + part[0] * (hi - lo))
            offset += fld.dim
        return out

    def label(self, fld: ConditionField, metadata: Mapping[str, Any]) -> str:
        """The value ``fld`` encodes for ``metadata`` as a string (for training counts)."""
        decoded = self.decode(self.encode(metadata))[fld.name]
        if decoded is None:
            return "missing"
        if isinstance(decoded, float):
            return f"{decoded:.1f}"
        return str(decoded)


# -- the default schema ------------------------------------------------------------------
def default_schema(names: Sequence[str] | None = None) -> ConditionSchema:
    """The shipped default schema, or the named fields of it (in the given order).

    ``names`` may also pick the default file's ``optional_fields`` (species, age_band, view,
    body_part, region). With ``region`` the schema's tables carry the region table
    (``tables["region"]``), so a model card records exactly how its regions were derived.
    """
    data = default_schema_json()
    if names is None:
        return ConditionSchema.from_dict(data)
    available = {f["name"]: f for f in data["fields"] + data.get("optional_fields", [])}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ModelError(f"unknown condition field(s) {unknown}; choose from {sorted(available)}")
    fields = [available[n] for n in names]
    tables = dict(data["tables"])
    if any(f["source"] == "derived:region" for f in fields):
        tables["region"] = region_tables()
    return ConditionSchema.from_dict({"name": "default", "fields": fields, "tables": tables})


def read_csv_sidecar(path: str | Path, *, id_column: str = "id") -> dict[str, dict[str, str]]:
    """Read a CSV sidecar into ``{pseudonymous_id: {column: value}}``."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or id_column not in reader.fieldnames:
            raise ModelError(f"CSV sidecar has no column {id_column!r}")
        return {row[id_column]: dict(row) for row in reader}


def merge_sidecar(
    metadata: Mapping[str, Any], sidecar: Mapping[str, Mapping[str, str]], pseudo_id: str
) -> dict[str, Any]:
    """``metadata`` plus the sidecar row of ``pseudo_id`` (metadata wins on clashes)."""
    row = sidecar.get(pseudo_id, {})
    return {**row, **metadata}


__all__ = [
    "UNKNOWN",
    "ConditionField",
    "ConditionSchema",
    "age_band",
    "body_region",
    "default_schema",
    "merge_sidecar",
    "metadata_from_dataset",
    "modality_contrast",
    "mr_contrast_from_dataset",
    "plane_from_orientation",
    "position_along_normal",
    "read_csv_sidecar",
]
