"""The catalog of the embedded store: models, versions, committed parts, results, API keys and
evaluation jobs, in SQLite (default) or PostgreSQL (see `sqldb`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ml_debugger.exceptions import NoDataError, ResultExistsError, StoreError, TraceValidationError
from ml_debugger.store.base import PartInfo
from ml_debugger.store.partfiles import ColumnTypes, merged_types, type_difference
from ml_debugger.store.sqldb import Database, open_database

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    created_at TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL REFERENCES models(name),
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model, name)
)""",
    """CREATE TABLE IF NOT EXISTS parts (
    path TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    dataset_type TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    rows BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    rank INTEGER NOT NULL,
    committed_at TEXT NOT NULL,
    FOREIGN KEY (model, version) REFERENCES versions(model, name)
)""",
    "CREATE INDEX IF NOT EXISTS parts_by_version ON parts (model, version, epoch)",
    """CREATE TABLE IF NOT EXISTS version_columns (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    columns TEXT NOT NULL,
    PRIMARY KEY (model, version),
    FOREIGN KEY (model, version) REFERENCES versions(model, name)
)""",
    """CREATE TABLE IF NOT EXISTS results (
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    meta TEXT NOT NULL,
    PRIMARY KEY (model, version, name),
    FOREIGN KEY (model, version) REFERENCES versions(model, name)
)""",
    """CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)""",
    """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    result_name TEXT,
    error_type TEXT,
    error_message TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)""",
]

_JOB_COLUMNS = (
    "id", "model", "version", "request", "status", "result_name", "error_type", "error_message",
    "created_at", "updated_at",
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class Catalog:
    """Thread- and process-safe catalog on ``target``: a SQLite file path or a PostgreSQL URL."""

    def __init__(self, target: str | Path) -> None:
        self.db: Database = open_database(target)
        self.db.create_schema(_SCHEMA)

    def __repr__(self) -> str:
        return f"Catalog({self.db.description!r})"

    def register_version(self, model: str, version: str, task: str) -> None:
        with self.db.transaction(write=True) as db:
            db.run("INSERT INTO models VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (model, task, utc_now()))
            registered = db.query("SELECT task FROM models WHERE name = ?", (model,))[0][0]
            if registered != task:
                raise StoreError(
                    f"model {model!r} was registered for task {registered!r}; it cannot record {task!r} traces "
                    "(use another model_name)"
                )
            db.run("INSERT INTO versions VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (model, version, utc_now()))

    def model_task(self, model: str) -> str:
        with self.db.transaction() as db:
            rows = db.query("SELECT task FROM models WHERE name = ?", (model,))
        if not rows:
            raise NoDataError(f"unknown model {model!r}: nothing was ever traced under that model_name")
        return str(rows[0][0])

    def require_version(self, model: str, version: str) -> None:
        self.model_task(model)
        with self.db.transaction() as db:
            if db.query("SELECT 1 FROM versions WHERE model = ? AND name = ?", (model, version)):
                return
            known = [r[0] for r in db.query("SELECT name FROM versions WHERE model = ? ORDER BY name", (model,))]
        raise NoDataError(f"model {model!r} has no version {version!r}; known versions: {known}")

    def commit_parts(self, parts: list[PartInfo], columns: ColumnTypes | None = None) -> None:
        """Record the parts as committed, all or none.

        ``columns`` (the parts' column types) is compared with those of the version's earlier
        commits in the same transaction and added to them; a column whose type differs raises
        TraceValidationError, so a version always reads as one table.
        """
        now = utc_now()
        rows = [
            (p.path, p.key.model_name, p.key.version_name, p.key.dataset_type, p.key.epoch, p.rows, p.bytes,
             p.run_id, p.rank, now)
            for p in parts
        ]
        with self.db.transaction(write=True) as db:
            if columns is not None and parts:
                model, version = parts[0].key.model_name, parts[0].key.version_name
                db.run("INSERT INTO version_columns VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       (model, version, json.dumps(columns)))
                pinned = json.loads(db.query(
                    "SELECT columns FROM version_columns WHERE model = ? AND version = ?", (model, version)
                )[0][0])
                problem = type_difference(columns, pinned, f"the parts committed to {model}/{version}")
                if problem is not None:
                    raise TraceValidationError(f"nothing was committed: {problem}")
                if set(columns) - set(pinned):
                    db.run("UPDATE version_columns SET columns = ? WHERE model = ? AND version = ?",
                           (json.dumps(merged_types(pinned, columns)), model, version))
            db.run_many("INSERT INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)

    def version_columns(self, model: str, version: str) -> ColumnTypes | None:
        """The column types of the version's committed parts (None before its first commit)."""
        with self.db.transaction() as db:
            rows = db.query("SELECT columns FROM version_columns WHERE model = ? AND version = ?", (model, version))
        return json.loads(rows[0][0]) if rows else None

    def is_committed(self, path: str) -> bool:
        with self.db.transaction() as db:
            return bool(db.query("SELECT 1 FROM parts WHERE path = ?", (path,)))

    def committed_epochs(self, model: str, version: str) -> list[int]:
        self.require_version(model, version)
        with self.db.transaction() as db:
            rows = db.query(
                "SELECT DISTINCT epoch FROM parts WHERE model = ? AND version = ? ORDER BY epoch", (model, version)
            )
        return [int(r[0]) for r in rows]

    def committed_epochs_by_dataset(self, model: str, version: str) -> dict[str, list[int]]:
        self.require_version(model, version)
        with self.db.transaction() as db:
            rows = db.query(
                "SELECT DISTINCT dataset_type, epoch FROM parts WHERE model = ? AND version = ? "
                "ORDER BY dataset_type, epoch",
                (model, version),
            )
        epochs: dict[str, list[int]] = {}
        for dataset, epoch in rows:
            epochs.setdefault(str(dataset), []).append(int(epoch))
        return epochs

    def committed_paths(self, model: str, version: str, epochs: list[int] | None) -> list[str]:
        with self.db.transaction() as db:
            rows = db.query(
                "SELECT path, epoch FROM parts WHERE model = ? AND version = ? ORDER BY committed_at, path",
                (model, version),
            )
        wanted = None if epochs is None else set(epochs)
        return [str(path) for path, epoch in rows if wanted is None or epoch in wanted]

    def known_paths(self) -> set[str]:
        with self.db.transaction() as db:
            return {str(r[0]) for r in db.query("SELECT path FROM parts")}

    def add_result(self, model: str, version: str, name: str, meta: dict) -> None:
        with self.db.transaction(write=True) as db:
            added = db.run(
                "INSERT INTO results VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (model, version, name, meta["created_at"], json.dumps(meta)),
            )
        if not added:
            raise ResultExistsError(
                f"a result named {name!r} already exists for {model}/{version}; choose another result_name"
            )

    def has_result(self, model: str, version: str, name: str) -> bool:
        with self.db.transaction() as db:
            rows = db.query(
                "SELECT 1 FROM results WHERE model = ? AND version = ? AND name = ?", (model, version, name)
            )
        return bool(rows)

    def result_meta(self, model: str, version: str, name: str) -> dict:
        with self.db.transaction() as db:
            rows = db.query(
                "SELECT meta FROM results WHERE model = ? AND version = ? AND name = ?", (model, version, name)
            )
        if not rows:
            raise NoDataError(f"no result named {name!r} for {model}/{version}; see Evaluator.list_results()")
        return json.loads(rows[0][0])

    def results(self, model: str, version: str) -> list[dict]:
        with self.db.transaction() as db:
            rows = db.query(
                "SELECT meta FROM results WHERE model = ? AND version = ? ORDER BY created_at", (model, version)
            )
        return [json.loads(r[0]) for r in rows]

    # API keys: only their SHA-256 is stored (see ml_debugger.server.keys).

    def add_key(self, key_id: str, name: str, key_hash: str) -> None:
        with self.db.transaction(write=True) as db:
            db.run("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)", (key_id, name, key_hash, utc_now()))

    def active_key_hash(self, key_id: str) -> str | None:
        """The stored hash of an unrevoked key, or ``None``."""
        with self.db.transaction() as db:
            rows = db.query("SELECT hash FROM api_keys WHERE id = ? AND revoked_at IS NULL", (key_id,))
        return str(rows[0][0]) if rows else None

    def revoke_key(self, key_id: str) -> bool:
        """Revoke an active key; ``False`` when there is no active key with that id."""
        with self.db.transaction(write=True) as db:
            changed = db.run(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (utc_now(), key_id)
            )
        return changed > 0

    def keys(self) -> list[dict[str, Any]]:
        with self.db.transaction() as db:
            rows = db.query("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at")
        return [dict(zip(("id", "name", "created_at", "revoked_at"), r, strict=True)) for r in rows]

    # Evaluation jobs run by the server (see ml_debugger.server.jobs).

    def add_job(self, job_id: str, model: str, version: str, request: dict) -> tuple[dict[str, Any], bool]:
        """Insert a queued job unless ``job_id`` exists; the job as stored and whether it is new."""
        now = utc_now()
        with self.db.transaction(write=True) as db:
            added = db.run(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, 'queued', NULL, NULL, NULL, ?, ?) ON CONFLICT DO NOTHING",
                (job_id, model, version, json.dumps(request), now, now),
            )
        return self.job(job_id), added > 0

    def job(self, job_id: str) -> dict[str, Any]:
        with self.db.transaction() as db:
            rows = db.query(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise NoDataError(f"no evaluation job {job_id!r}")
        job = dict(zip(_JOB_COLUMNS, rows[0], strict=True))
        job["request"] = json.loads(job["request"])
        return job

    def update_job(self, job_id: str, status: str, **fields: str | None) -> None:
        """Set a job's status and any of ``result_name``, ``error_type``, ``error_message``."""
        unknown = set(fields) - {"result_name", "error_type", "error_message"}
        if unknown:
            raise ValueError(f"unknown job fields {sorted(unknown)}")
        assignments = "".join(f", {name} = ?" for name in fields)
        with self.db.transaction(write=True) as db:
            db.run(
                f"UPDATE jobs SET status = ?, updated_at = ?{assignments} WHERE id = ?",
                (status, utc_now(), *fields.values(), job_id),
            )

    def interrupt_jobs(self, message: str) -> int:
        """Mark every queued or running job failed (they died with a previous server process)."""
        with self.db.transaction(write=True) as db:
            return db.run(
                "UPDATE jobs SET status = 'failed', error_type = 'ServerUnavailableError', error_message = ?, "
                "updated_at = ? WHERE status IN ('queued', 'running')",
                (message, utc_now()),
            )
