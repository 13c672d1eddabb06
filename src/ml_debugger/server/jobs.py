"""Evaluation jobs: queued in the catalog, run one at a time on a supervised worker thread.

A job's id is the client's request id, so a retried submission finds the job it already made.
Jobs left queued or running by a previous server process are marked failed at start.

The worker outlives any failure of a job (the job is failed with the reason) and backs off while
every job fails (say, when the process has run out of file descriptors). A watchdog restarts the
worker if it dies all the same, fails the job it was running with the reason, writes job states the
catalog could not take when they ended, and fails the queued jobs if no worker can be started.
``/health`` reports all of this (see ``status``).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import asdict
from typing import Any

from ml_debugger.evaluator.evaluator import evaluate_version
from ml_debugger.exceptions import MLDebuggerError
from ml_debugger.store.base import EvaluationRequest
from ml_debugger.store.local import LocalStore

logger = logging.getLogger(__name__)

_STOP = None
MAX_BACKOFF = 30.0


def job_json(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": job["id"], "model_name": job["model"], "version_name": job["version"], "status": job["status"],
        "result_name": job["result_name"], "error_type": job["error_type"], "error_message": job["error_message"],
        "request": job["request"], "created_at": job["created_at"], "updated_at": job["updated_at"],
    }


class JobRunner:
    """Runs evaluation jobs against ``store`` on one worker thread, watched every ``watch_interval`` seconds."""

    def __init__(self, store: LocalStore, *, watch_interval: float = 1.0) -> None:
        self._store = store
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._watch_interval = watch_interval
        self._worker: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._current: str | None = None
        self._death: str | None = None
        self._unrecorded: dict[str, tuple[str, dict[str, str | None]]] = {}
        self.restarts = 0
        self.last_error: str | None = None

    def start(self) -> None:
        interrupted = self._store.catalog.interrupt_jobs(
            "the server stopped before this evaluation finished; request it again"
        )
        if interrupted:
            logger.warning("marked %d evaluation jobs of a previous server process as failed", interrupted)
        self._start_worker()
        self._watchdog = threading.Thread(target=self._watch, name="ml-debugger-evaluations-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the running job (waiting at most ``timeout`` seconds for it)."""
        self._stopping.set()
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join(timeout)
        if self._watchdog is not None:
            self._watchdog.join(timeout)

    def submit(self, job_id: str, model_name: str, version_name: str, request: EvaluationRequest) -> dict[str, Any]:
        """Queue a job (or find the one ``job_id`` already names); the job as stored."""
        job, new = self._store.catalog.add_job(job_id, model_name, version_name, asdict(request))
        if new:
            self._queue.put(job_id)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        return self._store.catalog.job(job_id)

    @property
    def healthy(self) -> bool:
        """Whether a worker is there to run queued jobs."""
        return self._worker is not None and self._worker.is_alive()

    def status(self) -> dict[str, Any]:
        """The worker's state for ``/health``."""
        return {
            "worker": "running" if self.healthy else "stopped", "restarts": self.restarts,
            "queued": self._queue.qsize(), "running": self._current, "unrecorded_jobs": len(self._unrecorded),
            "last_error": self.last_error,
        }

    def _start_worker(self) -> None:
        self._worker = threading.Thread(target=self._work, name="ml-debugger-evaluations", daemon=True)
        self._worker.start()

    def _work(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - recorded for the watchdog, which restarts the worker
            self._death = f"{type(exc).__name__}: {exc}"
            logger.critical("the evaluation worker stopped: %s", self._death, exc_info=True)

    def _run(self) -> None:
        failures = 0
        while (job_id := self._queue.get()) is not _STOP:
            self._current = job_id
            try:
                self._execute(job_id)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - the worker outlives any failure; the job gets the reason
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("evaluation job %s failed in the worker", job_id)
                self._finish(job_id, "failed", error_type="InternalError", error_message=self.last_error)
                self._stopping.wait(min(MAX_BACKOFF, 0.05 * 2**failures))  # everything failing: do not spin
            self._current = None

    def _execute(self, job_id: str) -> None:
        catalog = self._store.catalog
        job = catalog.job(job_id)
        catalog.update_job(job_id, "running")
        request = EvaluationRequest(**job["request"])
        try:
            stored = evaluate_version(self._store, job["model"], job["version"], request)
        except MLDebuggerError as exc:
            logger.info("evaluation job %s failed: %s", job_id, exc)
            self._finish(job_id, "failed", error_type=type(exc).__name__, error_message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one evaluation must not stop the worker; logged with traceback
            logger.exception("evaluation job %s failed unexpectedly", job_id)
            self._finish(job_id, "failed", error_type="InternalError", error_message=f"{type(exc).__name__}: {exc}")
        else:
            self._finish(job_id, "succeeded", result_name=str(stored.meta["result_name"]))
            logger.info("evaluation job %s stored result %s", job_id, stored.meta["result_name"])

    def _finish(self, job_id: str, status: str, **fields: str | None) -> None:
        """Record a job's end; kept for the watchdog to record later when the catalog refuses it now."""
        try:
            self._store.catalog.update_job(job_id, status, **fields)
        except Exception as exc:  # noqa: BLE001 - the catalog may fail for any reason (no file descriptors...); retried
            logger.error("could not record evaluation job %s as %s (%s); retrying later", job_id, status, exc)
            with self._lock:
                self._unrecorded[job_id] = (status, fields)

    def _watch(self) -> None:
        while not self._stopping.wait(self._watch_interval):
            try:
                self._record_unrecorded()
                if not self.healthy and not self._stopping.is_set():
                    self._replace_worker()
            except Exception:  # noqa: BLE001 - the watchdog must keep watching; logged (rate-limited)
                logger.exception("the evaluation watchdog failed; it goes on")

    def _record_unrecorded(self) -> None:
        with self._lock:
            pending = dict(self._unrecorded)
        for job_id, (status, fields) in pending.items():
            self._store.catalog.update_job(job_id, status, **fields)
            with self._lock:
                self._unrecorded.pop(job_id, None)

    def _replace_worker(self) -> None:
        reason = f"the evaluation worker stopped unexpectedly ({self._death or 'unknown cause'}); see the server log"
        self.last_error = reason
        job_id, self._current = self._current, None
        if job_id is not None:
            self._finish(job_id, "failed", error_type="InternalError", error_message=reason)
        try:
            self._start_worker()
        except RuntimeError as exc:  # no thread can be started (out of memory or threads)
            self.last_error = f"{reason}; no new worker could be started: {exc}"
            logger.error("%s; failing the queued evaluation jobs", self.last_error)
            self._fail_queued(self.last_error)
            return
        self.restarts += 1
        logger.error("%s; restarted it (restart %d)", reason, self.restarts)

    def _fail_queued(self, reason: str) -> None:
        while True:
            try:
                job_id = self._queue.get_nowait()
            except queue.Empty:
                return
            if job_id is not _STOP:
                self._finish(job_id, "failed", error_type="ServerUnavailableError", error_message=reason)
