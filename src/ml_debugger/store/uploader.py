"""The uploader: sends what the spool holds to the server, in order, on a daemon thread.

Tasks (register a version, upload a part, commit a manifest) are sent one at a time in the order
they were queued. A task that fails with ServerUnavailableError or AuthenticationError is retried
with exponential backoff and jitter until it succeeds or the uploader is closed; a task the server
refuses (any other error) is moved to the spool's ``rejected/`` with the reason. Nothing raises
into the caller's thread: failures are logged (a warning once per outage) and kept in the spool.
Every request is idempotent (a part's id is its path), so a retry never stores anything twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from ml_debugger.exceptions import AuthenticationError, MLDebuggerError, ServerUnavailableError
from ml_debugger.store.api import ApiClient, Backoff
from ml_debugger.store.spool import CommitManifest, Spool, SpooledPart, part_to_json

logger = logging.getLogger(__name__)

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def version_path(model_name: str, version_name: str) -> str:
    return f"/models/{quote(model_name, safe='')}/versions/{quote(version_name, safe='')}"


def _sha256(file: BinaryIO) -> str:
    """The SHA-256 of an open file's contents; the file is left at its start."""
    digest = hashlib.sha256()
    while chunk := file.read(1 << 20):
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


@dataclass
class Task:
    """One unit of upload work; ``done`` is set when it is sent or rejected (``error`` then says why)."""

    kind: str
    registration: tuple[Path, dict[str, str]] | None = None
    part: SpooledPart | None = None
    manifest: CommitManifest | None = None
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def describe(self) -> str:
        if self.part is not None:
            return f"part {self.part.info.path}"
        if self.manifest is not None:
            return f"commit of {len(self.manifest.parts)} parts ({self.manifest.file.name})"
        return f"registration of {self.registration[1]['model_name']}/{self.registration[1]['version_name']}"


class Uploader:
    """Sends spooled work to the server through ``client``; start it by queueing work."""

    def __init__(self, client: ApiClient, spool: Spool, *, backoff: Backoff | None = None) -> None:
        self._client = client
        self._spool = spool
        self._backoff = backoff or Backoff()
        self._tasks: deque[Task] = deque()
        self._wakeup = threading.Condition()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.last_error: str | None = None

    def register(self, registration: tuple[Path, dict[str, str]]) -> Task:
        return self._put(Task("register", registration=registration))

    def upload(self, part: SpooledPart) -> Task:
        return self._put(Task("part", part=part))

    def commit(self, manifest: CommitManifest) -> Task:
        return self._put(Task("commit", manifest=manifest))

    def load_spool(self) -> list[Task]:
        """Queue everything the spool holds (registrations, parts, then commits); the queued tasks."""
        tasks = [Task("register", registration=r) for r in self._spool.registrations()]
        tasks += [Task("part", part=p) for p in self._spool.parts()]
        tasks += [Task("commit", manifest=m) for m in self._spool.commits()]
        for task in tasks:
            self._put(task)
        return tasks

    def pending(self) -> list[Task]:
        """Tasks not yet sent, in order."""
        with self._wakeup:
            return list(self._tasks)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every queued task is sent or rejected."""
        with self._wakeup:
            return self._wakeup.wait_for(lambda: not self._tasks, timeout=timeout)

    def close(self) -> None:
        """Stop sending; whatever is not sent stays in the spool."""
        self._closed.set()
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def _put(self, task: Task) -> Task:
        with self._wakeup:
            self._tasks.append(task)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ml-debugger-uploader", daemon=True)
                self._thread.start()
            self._wakeup.notify_all()
        return task

    def _run(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            with self._wakeup:
                self._wakeup.wait_for(lambda: self._tasks or self._closed.is_set())
                if self._closed.is_set():
                    return
                task = self._tasks[0]
            try:
                self._send(task)
            except (ServerUnavailableError, AuthenticationError) as exc:
                self._report_failure(task, exc)
                self._closed.wait(self._backoff.delay(attempt))
                attempt += 1
                continue
            except MLDebuggerError as exc:
                self._reject(task, exc)
            except OSError as exc:  # the spool itself (disk full, files removed by hand)
                self._reject(task, exc)
            else:
                self._report_success()
            attempt = 0
            with self._wakeup:
                self._tasks.popleft()
                task.done.set()
                self._wakeup.notify_all()

    def _send(self, task: Task) -> None:
        if task.registration is not None:
            path, reg = task.registration
            self._client.request(
                "PUT", version_path(reg["model_name"], reg["version_name"]), json={"task": reg["task"]}
            )
            path.unlink(missing_ok=True)
        elif task.part is not None:
            self._send_part(task.part)
        elif task.manifest is not None:
            first = task.manifest.parts[0].key
            self._client.request(
                "POST", version_path(first.model_name, first.version_name) + "/commits",
                json={"parts": [part_to_json(p) for p in task.manifest.parts]},
            )
            task.manifest.file.unlink(missing_ok=True)

    def _send_part(self, part: SpooledPart) -> None:
        key, info = part.info.key, part.info
        url = (
            f"{version_path(key.model_name, key.version_name)}/parts/{quote(key.dataset_type, safe='')}/{key.epoch}/"
            f"{quote(part.part_name, safe='')}"
        )
        try:
            body = part.file.open("rb")
        except FileNotFoundError:
            logger.debug("spooled part %s is gone (sent by another process)", info.path)
            return
        with body:
            digest = _sha256(body)
            self._client.request(
                "PUT", url, content=body, params={"run_id": info.run_id, "rank": info.rank, "rows": info.rows},
                headers={"Content-Type": PARQUET_MEDIA_TYPE, "X-Content-SHA256": digest},
            )
        self._spool.remove_part(part)

    def _report_failure(self, task: Task, exc: MLDebuggerError) -> None:
        self.last_error = str(exc)
        if not self._failing:
            self._failing = True
            logger.warning(
                "ml-debugger: cannot upload to %s (%s); the data stays in the spool %s and uploads are retried "
                "in the background", self._spool.endpoint, exc, self._spool.root,
            )
        else:
            logger.debug("upload of %s failed again: %s", task.describe(), exc)

    def _report_success(self) -> None:
        if self._failing:
            self._failing = False
            logger.warning("ml-debugger: uploads to %s resumed", self._spool.endpoint)

    def _reject(self, task: Task, exc: Exception) -> None:
        files: list[Path] = []
        if task.part is not None:
            files = [task.part.file, task.part.sidecar]
        elif task.manifest is not None:
            files = [task.manifest.file]
        elif task.registration is not None:
            files = [task.registration[0]]
        try:
            where = str(self._spool.reject(files, f"{task.describe()}: {exc}"))
        except OSError as move_error:
            where = f"the spool (could not move it aside: {move_error})"
        task.error = f"{exc} (kept in {where})"
        logger.error("ml-debugger: the server refused the %s: %s; kept in %s", task.describe(), exc, where)
