"""The batch manifest: one SQLite file, the single source of truth for a batch.

Tables
------
``run_config``
    One row: the output folder, the options as JSON (never the key: only a keyed
    digest that tells a different key apart), the cadp-med version, and when the
    batch was created.
``studies``
    One row per study: the input as the operator gave it and its absolute path,
    ``state`` (pending, running, done, failed), ``attempts``, the error category of
    a failure (a fixed name, never a message or header value), the per-study output
    counts and timestamps.

Only the driver process writes it (workers return results), inside short
transactions, so a killed driver leaves a consistent file; studies it left
``running`` are made ``pending`` again by the next run (see :meth:`Manifest.reset_running`).
It holds no PHI: no header value is ever written, and input paths are the operator's own.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadp_med._types import PathLike
from cadp_med.batch._inputs import StudyInput
from cadp_med.batch._study import COUNT_FIELDS, StudyResult
from cadp_med.errors import ConfigError

__all__ = ["MANIFEST_NAME", "STATES", "Manifest", "StudyRow"]

MANIFEST_NAME = "manifest.sqlite"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)
_SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS run_config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    cadp_med_version TEXT NOT NULL,
    output TEXT NOT NULL,
    options_json TEXT NOT NULL,
    key_check TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY,
    input TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    {", ".join(f"{name} INTEGER" for name in COUNT_FIELDS)},
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_state ON studies (state);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StudyRow:
    """One row of the ``studies`` table."""

    id: int
    input: str
    path: str
    state: str
    attempts: int
    error: str | None
    counts: dict[str, int | None]
    created_at: str
    started_at: str | None
    finished_at: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "id": self.id,
            "input": self.input,
            "state": self.state,
            "attempts": self.attempts,
            "error": self.error,
            "counts": dict(self.counts),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class Manifest:
    """A batch manifest file.

    Parameters
    ----------
    path : str or os.PathLike
        The SQLite file; created (with its folder) when ``create`` is true.
    create : bool, default False
        Create the file when missing; otherwise a missing file is a ``ConfigError``.
    """

    def __init__(self, path: PathLike, *, create: bool = False) -> None:
        self.path = Path(path).absolute()
        if not self.path.exists():
            if not create:
                raise ConfigError("the manifest file does not exist")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # Rollback journal (not WAL): the file is self-contained after every
        # transaction, and survives being copied or read from another host.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- run configuration -------------------------------------------------------

    def run_config(self) -> dict[str, Any] | None:
        """Return the stored run configuration, or None for a new manifest."""
        row = self._db.execute("SELECT * FROM run_config WHERE id = 1").fetchone()
        if row is None:
            return None
        return {
            "created_at": row["created_at"],
            "cadp_med_version": row["cadp_med_version"],
            "output": row["output"],
            "options": json.loads(row["options_json"]),
            "key_check": row["key_check"],
        }

    def bind_run_config(self, output: str, options: dict[str, Any], key_check: str) -> None:
        """Store the run configuration, or check that it equals the stored one.

        Raises
        ------
        ConfigError
            If the manifest belongs to another output folder, other options or
            another key: mixing them would break the batch's pseudonym linkage.
        """
        from cadp_med._version import __version__

        stored = self.run_config()
        if stored is None:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO run_config VALUES (1, ?, ?, ?, ?, ?, ?)",
                    (_SCHEMA_VERSION, _now(), __version__, output, _dump(options), key_check),
                )
            return
        if stored["output"] != output:
            raise ConfigError("this manifest belongs to another output folder")
        if _dump(stored["options"]) != _dump(options):
            raise ConfigError("this manifest was created with other options; use a new manifest")
        if stored["key_check"] != key_check:
            raise ConfigError("this manifest was created with another key")

    # -- studies -----------------------------------------------------------------

    def add_studies(self, studies: Iterable[StudyInput]) -> int:
        """Add studies not yet listed (by absolute path) as pending; return how many."""
        now = _now()
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO studies (input, path, state, created_at, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?)",
                [(study.given, study.path, now, now) for study in studies],
            )
            return db.total_changes - before

    def reset_running(self) -> int:
        """Make studies left ``running`` by a dead driver ``pending``; return how many.

        Call only while holding the batch lock: then no other driver is running them.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE studies SET state = 'pending', updated_at = ? WHERE state = 'running'",
                (_now(),),
            )
            return cursor.rowcount

    def reset_failed(self) -> int:
        """Make failed studies pending again (for ``batch retry``); return how many."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE studies SET state = 'pending', updated_at = ? WHERE state = 'failed'",
                (_now(),),
            )
            return cursor.rowcount

    def mark_running(self, study_id: int) -> int:
        """Record the start of an attempt; return the attempt number."""
        now = _now()
        with self._transaction() as db:
            db.execute(
                "UPDATE studies SET state = 'running', attempts = attempts + 1, error = NULL, "
                "started_at = ?, updated_at = ? WHERE id = ?",
                (now, now, study_id),
            )
            row = db.execute("SELECT attempts FROM studies WHERE id = ?", (study_id,)).fetchone()
        return int(row["attempts"])

    def mark_finished(self, result: StudyResult) -> None:
        """Record a study's result: done with counts, or failed with a category."""
        now = _now()
        assignments = ", ".join(f"{name} = ?" for name in COUNT_FIELDS)
        values = [result.counts.get(name) for name in COUNT_FIELDS]
        with self._transaction() as db:
            db.execute(
                f"UPDATE studies SET state = ?, error = ?, {assignments}, finished_at = ?, "
                "updated_at = ? WHERE id = ?",
                (
                    DONE if result.ok else FAILED,
                    result.error,
                    *values,
                    now,
                    now,
                    result.study_id,
                ),
            )

    def studies(self, state: str | None = None) -> list[StudyRow]:
        """Return the studies, optionally only those in ``state``, by id."""
        query = "SELECT * FROM studies"
        params: tuple[Any, ...] = ()
        if state is not None:
            query, params = query + " WHERE state = ?", (state,)
        rows = self._db.execute(query + " ORDER BY id", params).fetchall()
        return [
            StudyRow(
                id=row["id"],
                input=row["input"],
                path=row["path"],
                state=row["state"],
                attempts=row["attempts"],
                error=row["error"],
                counts={name: row[name] for name in COUNT_FIELDS},
                created_at=row["created_at"],
                started_at=row["started_at"],
                finished_at=row["finished_at"],
            )
            for row in rows
        ]

    def summary(self) -> dict[str, Any]:
        """Return study counts by state, failures by category and summed output counts."""
        states = dict.fromkeys(STATES, 0)
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM studies GROUP BY state"):
            states[row["state"]] = row["n"]
        errors = {
            row["error"]: row["n"]
            for row in self._db.execute(
                "SELECT error, COUNT(*) AS n FROM studies WHERE state = 'failed' "
                "GROUP BY error ORDER BY error"
            )
        }
        sums = self._db.execute(
            "SELECT "
            + ", ".join(f"COALESCE(SUM({name}), 0) AS {name}" for name in COUNT_FIELDS)
            + " FROM studies WHERE state = 'done'"
        ).fetchone()
        retried = self._db.execute("SELECT COUNT(*) FROM studies WHERE attempts > 1").fetchone()[0]
        return {
            "studies": sum(states.values()),
            "states": states,
            "failures": errors,
            "retried": retried,
            "outputs": {name: sums[name] for name in COUNT_FIELDS},
            "finished": states[PENDING] == 0 and states[RUNNING] == 0,
        }


def _dump(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
