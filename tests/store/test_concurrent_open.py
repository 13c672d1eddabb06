"""Opening a new embedded store while another process is creating it (as DDP ranks do) succeeds."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ml_debugger.store import LocalStore


def test_opening_waits_for_another_writer_of_a_new_catalog(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Another process is mid-way through creating the catalog: it holds the write lock of a file
    # still in rollback-journal mode. SQLite refuses a journal-mode change then at once.
    other = sqlite3.connect(home / "catalog.sqlite", isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE IF NOT EXISTS scratch (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO scratch VALUES (1)")
    release = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    try:
        store = LocalStore(home)
        store.register_version("m", "v1", "classification")
    finally:
        release.join()
        other.close()
    assert time.monotonic() - started >= 0.4, "the store waited for the other writer"
    assert LocalStore(home).committed_epochs("m", "v1") == []
    with sqlite3.connect(home / "catalog.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
