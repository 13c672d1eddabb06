"""Evaluation jobs: queued in the catalog, run one at a time on a background thread.

A job's id is the client's request id, so a retried submission finds the job it already made.
Jobs left queued or running by a previous server process are marked failed at start.
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


def job_json(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": job["id"], "model_name": job["model"], "version_name": job["version"], "status": job["status"],
        "result_name": job["result_name"], "error_type": job["error_type"], "error_message": job["error_message"],
        "request": job["request"], "created_at": job["created_at"], "updated_at": job["updated_at"],
    }


class JobRunner:
    """Runs evaluation jobs against ``store`` on one worker thread."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        interrupted = self._store.catalog.interrupt_jobs(
            "the server stopped before this evaluation finished; request it again"
        )
        if interrupted:
            logger.warning("marked %d evaluation jobs of a previous server process as failed", interrupted)
        self._thread = threading.Thread(target=self._run, name="ml-debugger-evaluations", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the running job (waiting at most ``timeout`` seconds for it)."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def submit(self, job_id: str, model_name: str, version_name: str, request: EvaluationRequest) -> dict[str, Any]:
        """Queue a job (or find the one ``job_id`` already names); the job as stored."""
        job, new = self._store.catalog.add_job(job_id, model_name, version_name, asdict(request))
        if new:
            self._queue.put(job_id)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        return self._store.catalog.job(job_id)

    def _run(self) -> None:
        while (job_id := self._queue.get()) is not _STOP:
            try:
                self._execute(job_id)
            except MLDebuggerError:  # the catalog failed while recording the job's state
                logger.exception("evaluation job %s could not be recorded", job_id)

    def _execute(self, job_id: str) -> None:
        catalog = self._store.catalog
        job = catalog.job(job_id)
        catalog.update_job(job_id, "running")
        request = EvaluationRequest(**job["request"])
        try:
            stored = evaluate_version(self._store, job["model"], job["version"], request)
        except MLDebuggerError as exc:
            logger.info("evaluation job %s failed: %s", job_id, exc)
            catalog.update_job(job_id, "failed", error_type=type(exc).__name__, error_message=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug in one evaluation must not stop the worker; logged with traceback
            logger.exception("evaluation job %s failed unexpectedly", job_id)
            message = f"{type(exc).__name__}: {exc}"
            catalog.update_job(job_id, "failed", error_type="InternalError", error_message=message)
        else:
            catalog.update_job(job_id, "succeeded", result_name=str(stored.meta["result_name"]))
            logger.info("evaluation job %s stored result %s", job_id, stored.meta["result_name"])
