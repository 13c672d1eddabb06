"""Removing parts that were uploaded but never committed, once their grace period has passed.

A part's grace period starts when it is stored, and again whenever it is uploaded once more (a
client retrying before its commit). Files a crashed write left behind (hidden ``.*.tmp`` files under
``traces/``) go the same way. The removal of each file and the check that it is not committed happen
under the server's part lock, which commits also hold, so a commit never names a removed part.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ml_debugger.store.local import LocalStore

logger = logging.getLogger(__name__)

MIN_INTERVAL, MAX_INTERVAL = 1.0, 600.0


class Janitor:
    """Sweeps ``store``'s traces every ``grace / 4`` seconds (between 1 s and 10 min) on a daemon thread."""

    def __init__(self, store: LocalStore, part_lock: threading.Lock, grace: float) -> None:
        self._store = store
        self._lock = part_lock
        self.grace = grace
        self.interval = min(MAX_INTERVAL, max(MIN_INTERVAL, grace / 4))
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ml-debugger-janitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep (catalog or disk trouble) is retried at the next one
                logger.exception("removing uncommitted parts failed; trying again in %g s", self.interval)

    def _candidates(self, older_than: float) -> list[Path]:
        traces = self._store.root / "traces"
        found = []
        for path in traces.rglob("*"):
            is_part = path.suffix == ".parquet" and not path.name.startswith(".")
            is_leftover = path.name.startswith(".") and path.name.endswith(".tmp")
            if not (is_part or is_leftover):
                continue
            try:
                if path.stat().st_mtime < older_than:
                    found.append(path)
            except FileNotFoundError:
                continue
        return found

    def sweep(self) -> int:
        """Remove the uncommitted parts older than the grace period now; how many were removed."""
        older_than = time.time() - self.grace
        committed = self._store.catalog.known_paths()
        removed = 0
        for path in self._candidates(older_than):
            relative = path.relative_to(self._store.root).as_posix()
            if relative in committed:
                continue
            with self._lock:
                if self._store.catalog.is_committed(relative) or not path.exists():
                    continue
                if path.stat().st_mtime >= older_than:  # uploaded again meanwhile
                    continue
                path.unlink()
            removed += 1
            logger.info("removed %s: uploaded more than %g s ago and never committed", relative, self.grace)
        return removed
