"""The SQLite catalog of the embedded store: models, versions, committed parts and results."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ml_debugger.exceptions import NoDataError, ResultExistsError, StoreError
from ml_debugger.store.base import PartInfo

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL REFERENCES models(name),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model, name)
);
CREATE TABLE IF NOT EXISTS parts (
    path TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    dataset_type TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    committed_at TEXT NOT NULL,
    FOREIGN KEY (model, version) REFERENCES versions(model, name)
);
CREATE INDEX IF NOT EXISTS parts_by_version ON parts (model, version, epoch);
CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (model, version, name),
    FOREIGN KEY (model, version) REFERENCES versions(model, name)
);
"""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Catalog:
    """Thread- and process-safe access to ``catalog.sqlite`` (WAL mode, one connection per call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the catalog {self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.Error as exc:
            raise StoreError(f"catalog {self.path}: {exc}") from exc
        finally:
            db.close()

    def register_version(self, model: str, version: str, task: str) -> None:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT task FROM models WHERE name = ?", (model,)).fetchone()
            if row is None:
                db.execute("INSERT INTO models VALUES (?, ?, ?)", (model, task, utc_now()))
            elif row[0] != task:
                db.execute("ROLLBACK")
                raise StoreError(
                    f"model {model!r} was registered for task {row[0]!r}; it cannot record {task!r} traces "
                    "(use another model_name)"
                )
            db.execute("INSERT OR IGNORE INTO versions VALUES (?, ?, ?)", (model, version, utc_now()))
            db.execute("COMMIT")

    def model_task(self, model: str) -> str:
        with self._connect() as db:
            row = db.execute("SELECT task FROM models WHERE name = ?", (model,)).fetchone()
        if row is None:
            raise NoDataError(f"unknown model {model!r}: nothing was ever traced under that model_name")
        return str(row[0])

    def require_version(self, model: str, version: str) -> None:
        self.model_task(model)
        with self._connect() as db:
            row = db.execute("SELECT 1 FROM versions WHERE model = ? AND name = ?", (model, version)).fetchone()
            if row is None:
                known = [r[0] for r in db.execute("SELECT name FROM versions WHERE model = ? ORDER BY name", (model,))]
                raise NoDataError(f"model {model!r} has no version {version!r}; known versions: {known}")

    def commit_parts(self, parts: list[PartInfo]) -> None:
        now = utc_now()
        rows = [
            (p.path, p.key.model_name, p.key.version_name, p.key.dataset_type, p.key.epoch, p.rows, p.bytes,
             p.run_id, p.rank, now)
            for p in parts
        ]
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT OR IGNORE INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")

    def committed_epochs(self, model: str, version: str) -> list[int]:
        self.require_version(model, version)
        with self._connect() as db:
            rows = db.execute(
                "SELECT DISTINCT epoch FROM parts WHERE model = ? AND version = ? ORDER BY epoch", (model, version)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def committed_paths(self, model: str, version: str, epochs: list[int] | None) -> list[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT path, epoch FROM parts WHERE model = ? AND version = ? ORDER BY committed_at, path",
                (model, version),
            ).fetchall()
        wanted = None if epochs is None else set(epochs)
        return [str(path) for path, epoch in rows if wanted is None or epoch in wanted]

    def known_paths(self) -> set[str]:
        with self._connect() as db:
            return {str(r[0]) for r in db.execute("SELECT path FROM parts")}

    def add_result(self, model: str, version: str, name: str, meta: dict) -> None:
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?)",
                    (model, version, name, meta["created_at"], json.dumps(meta)),
                )
            except sqlite3.IntegrityError as exc:
                raise ResultExistsError(
                    f"a result named {name!r} already exists for {model}/{version}; choose another result_name"
                ) from exc

    def has_result(self, model: str, version: str, name: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT 1 FROM results WHERE model = ? AND version = ? AND name = ?", (model, version, name)
            ).fetchone()
        return row is not None

    def result_meta(self, model: str, version: str, name: str) -> dict:
        with self._connect() as db:
            row = db.execute(
                "SELECT meta FROM results WHERE model = ? AND version = ? AND name = ?", (model, version, name)
            ).fetchone()
        if row is None:
            raise NoDataError(f"no result named {name!r} for {model}/{version}; see Evaluator.list_results()")
        return json.loads(row[0])

    def results(self, model: str, version: str) -> list[dict]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT meta FROM results WHERE model = ? AND version = ? ORDER BY created_at", (model, version)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]
