"""The small SQL layer under the catalog: one SQL text, run on SQLite or PostgreSQL.

The catalog writes portable SQL with ``?`` placeholders and ``INSERT ... ON CONFLICT DO NOTHING``;
:class:`PostgresDatabase` translates the placeholders for psycopg 3 (imported only when used).
Database errors are converted to :class:`~ml_debugger.exceptions.StoreError` here.
"""

from __future__ import annotations

import queue
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from ml_debugger.exceptions import StoreError

Params = Sequence[Any]


class Connection:
    """One open connection inside a transaction: run statements, fetch rows."""

    def __init__(self, raw: Any, placeholder: str) -> None:
        self._raw = raw
        self._placeholder = placeholder

    def _sql(self, sql: str) -> str:
        return sql if self._placeholder == "?" else sql.replace("?", self._placeholder)

    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        """Rows of a SELECT."""
        cursor = self._raw.execute(self._sql(sql), tuple(params))
        return [tuple(row) for row in cursor.fetchall()]

    def run(self, sql: str, params: Params = ()) -> int:
        """Run a statement; the number of rows it changed."""
        return int(self._raw.execute(self._sql(sql), tuple(params)).rowcount)

    def run_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for each parameter row."""
        if rows:
            self._raw.cursor().executemany(self._sql(sql), [tuple(r) for r in rows])


class SqliteDatabase:
    """A SQLite file in WAL mode; one connection per transaction (thread- and process-safe)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        """A transaction (``BEGIN IMMEDIATE`` when ``write``, so writers queue instead of failing)."""
        try:
            raw = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the catalog {self.path}: {exc}") from exc
        try:
            raw.execute("PRAGMA foreign_keys=ON")
            if write:
                raw.execute("BEGIN IMMEDIATE")
            try:
                yield Connection(raw, "?")
            except BaseException:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
                raise
            if raw.in_transaction:
                raw.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"catalog {self.path}: {exc}") from exc
        finally:
            raw.close()

    def create_schema(self, statements: list[str]) -> None:
        self._enable_wal()
        with self.transaction(write=True) as db:
            for statement in statements:
                db.run(statement)


    def _enable_wal(self, timeout: float = 60.0) -> None:
        """Switch the file to WAL mode once (it persists), retrying while another process holds it.

        SQLite answers a journal-mode change with "database is locked" at once, without waiting
        on its busy timeout, when several processes (e.g. DDP ranks) open a new catalog together.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                with closing(sqlite3.connect(self.path, timeout=timeout, isolation_level=None)) as raw:
                    if raw.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        raw.execute("PRAGMA journal_mode=WAL")
                    return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError(f"catalog {self.path}: {exc}") from exc
                time.sleep(random.uniform(0.01, 0.05))


class PostgresDatabase:
    """A PostgreSQL database reached with psycopg 3 through a small pool of connections."""

    dialect = "postgresql"
    _SCHEMA_LOCK = 0x6D6C6462  # pg_advisory_xact_lock key: one schema creation at a time

    def __init__(self, url: str, pool_size: int = 8) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ImportError(
                "a PostgreSQL catalog needs psycopg 3: pip install 'psycopg[binary]'"
            ) from exc
        self._psycopg = psycopg
        self.url = url
        self.description = _redact(url)
        self._idle: queue.LifoQueue = queue.LifoQueue(maxsize=pool_size)

    def _checkout(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        try:
            return self._psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as exc:
            raise StoreError(f"cannot connect to the catalog database {self.description}: {exc}") from exc

    def _checkin(self, raw: Any) -> None:
        healthy = not raw.closed and raw.info.transaction_status == self._psycopg.pq.TransactionStatus.IDLE
        if healthy:
            try:
                self._idle.put_nowait(raw)
                return
            except queue.Full:
                pass
        raw.close()

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        """A transaction on a pooled connection (``write`` needs nothing extra on PostgreSQL)."""
        raw = self._checkout()
        try:
            with raw.transaction():
                yield Connection(raw, "%s")
        except self._psycopg.Error as exc:
            raise StoreError(f"catalog database {self.description}: {exc}") from exc
        finally:
            self._checkin(raw)

    def create_schema(self, statements: list[str]) -> None:
        with self.transaction(write=True) as db:
            db.query("SELECT pg_advisory_xact_lock(?)", (self._SCHEMA_LOCK,))
            for statement in statements:
                db.run(statement)

    def close(self) -> None:
        """Close the idle pooled connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


Database = SqliteDatabase | PostgresDatabase


def open_database(target: str | Path) -> Database:
    """A PostgreSQL database for a ``postgresql://`` / ``postgres://`` URL, else a SQLite file path."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(text)
    if "://" in text:
        raise StoreError(f"unsupported database URL {_redact(text)!r}; expected postgresql://... or a file path")
    return SqliteDatabase(Path(target))


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':', 1)[0]}:***@{host}"
