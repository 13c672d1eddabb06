"""The remote store: the TraceStore operations over HTTP to an ml-debugger server.

Writes (parts and commits) go to the local spool first and are uploaded in the background (see
`uploader`), so they never wait on the network; ``wait_for_uploads`` waits for them, at most
``upload_timeout`` seconds, then warns with what is still spooled. Registering a version waits at
most ``REGISTER_TIMEOUT`` for the server's answer. Reads, results and evaluations are requests to
the server (an evaluation is a job that is polled).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import uuid
import warnings
import weakref
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from ml_debugger.config import Settings
from ml_debugger.exceptions import ConfigurationError, MLDebuggerError, RemoteError, ServerUnavailableError, StoreError
from ml_debugger.store.api import ApiClient, Backoff, exception_named, with_retries
from ml_debugger.store.base import EvaluationRequest, PartInfo, PartKey, StoredResult, TraceStore
from ml_debugger.store.spool import Spool
from ml_debugger.store.uploader import Task, Uploader, version_path

logger = logging.getLogger(__name__)

ENV_UPLOAD_TIMEOUT = "MLD_UPLOAD_TIMEOUT"
ENV_EVALUATION_TIMEOUT = "MLD_EVALUATION_TIMEOUT"
REGISTER_TIMEOUT = 1.0
"""Seconds a new tracer waits for the server to accept its version (a refused key or a model name taken
by another task fails at once); without an answer by then the registration is spooled like a part."""
READ_RETRY_WINDOW = 30.0  # seconds a read or a job submission is retried while the server is unavailable


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from environment variable ``name``."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds; got {raw!r}")
    return value


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars turned into Python ones (for JSON)."""
    return value.item() if hasattr(value, "item") else value


class RemoteStore(TraceStore):
    """A store on an ml-debugger server, with a local spool under ``home`` for uploads.

    Args:
        endpoint, api_key: the server (``MLD_API_ENDPOINT``) and the key (``MLD_API_KEY``).
        home: ``MLD_HOME``; the spool is ``<home>/spool/<endpoint id>``.
        upload_timeout: seconds ``wait_for_uploads`` (``tracer.wait_for_save``) waits for the uploads.
        evaluation_timeout: seconds ``submit_evaluation`` waits for the server's evaluation job.
        request_timeout: seconds for one HTTP request.
        backoff: the retry policy of uploads and reads.
        transport: an httpx transport instead of the network (tests, instrumentation).
    """

    def __init__(
        self,
        endpoint: str,
        api_key: str | None,
        *,
        home: str | os.PathLike[str],
        upload_timeout: float = 120.0,
        evaluation_timeout: float = 3600.0,
        request_timeout: float = 60.0,
        backoff: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = ApiClient(endpoint, api_key, timeout=request_timeout, transport=transport)
        self.endpoint = self._client.endpoint
        self.spool = Spool.for_endpoint(Path(home), self.endpoint)
        self._backoff = backoff or Backoff()
        self._uploader = Uploader(self._client, self.spool, backoff=self._backoff)
        self.upload_timeout = upload_timeout
        self.evaluation_timeout = evaluation_timeout
        self._commits: list[tuple[Task, list[PartInfo]]] = []
        self._commits_lock = threading.Lock()
        self._exit_hook = functools.partial(_report_pending, weakref.ref(self))
        atexit.register(self._exit_hook)

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteStore:
        """The store ``MLD_API_ENDPOINT`` / ``MLD_API_KEY`` / ``MLD_HOME`` (and the timeouts) select."""
        if not settings.api_key:
            logger.warning("ml-debugger: MLD_API_ENDPOINT is set but MLD_API_KEY is not; the server refuses that")
        return cls(
            str(settings.api_endpoint), settings.api_key, home=settings.home,
            upload_timeout=seconds_from_env(ENV_UPLOAD_TIMEOUT, 120.0),
            evaluation_timeout=seconds_from_env(ENV_EVALUATION_TIMEOUT, 3600.0),
        )

    def __repr__(self) -> str:
        return f"RemoteStore({self.endpoint!r})"

    def register_version(self, model_name: str, version_name: str, task: str) -> None:
        """Register on the server if it answers within REGISTER_TIMEOUT; else spool the registration and go on."""
        try:
            path = self.spool.add_registration(model_name, version_name, task)
        except OSError as exc:
            raise StoreError(f"cannot record the registration in the spool {self.spool.root}: {exc}") from exc
        try:
            self._client.request(
                "PUT", version_path(model_name, version_name), json={"task": task}, timeout=REGISTER_TIMEOUT
            )
        except ServerUnavailableError as exc:
            logger.warning(
                "ml-debugger: %s; tracing goes on and %s/%s is registered when the server answers", exc,
                model_name, version_name,
            )
            self._uploader.register((path, {"model_name": model_name, "version_name": version_name, "task": task}))
            return
        except MLDebuggerError:
            path.unlink(missing_ok=True)
            raise
        path.unlink(missing_ok=True)

    def write_part(self, key: PartKey, table: pa.Table, part_name: str, run_id: str, rank: int) -> PartInfo:
        """Write the part into the spool and queue its upload."""
        try:
            spooled = self.spool.add_part(key, table, part_name, run_id, rank)
        except OSError as exc:
            raise StoreError(f"cannot write trace part {part_name} into the spool {self.spool.root}: {exc}") from exc
        self._uploader.upload(spooled)
        return spooled.info

    def commit_parts(self, parts: list[PartInfo]) -> None:
        """Spool the commit and queue it after the parts' uploads; never waits (see ``wait_for_uploads``)."""
        if not parts:
            return
        try:
            manifest = self.spool.add_commit(parts)
        except OSError as exc:
            raise StoreError(f"cannot record a commit in the spool {self.spool.root}: {exc}") from exc
        with self._commits_lock:
            self._commits.append((self._uploader.commit(manifest), list(parts)))

    def wait_for_uploads(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is uploaded and committed, at most ``timeout`` (default ``upload_timeout``)
        seconds; warn (never raise) with what is still spooled, and about commits the server refused."""
        timeout = self.upload_timeout if timeout is None else timeout
        drained = self._uploader.drain(timeout)
        if not drained:
            warnings.warn(self._not_committed_message(timeout), stacklevel=3)
        with self._commits_lock:
            refused = [(task, parts) for task, parts in self._commits if task.done.is_set() and task.error]
            self._commits = [(task, parts) for task, parts in self._commits if not task.done.is_set()]
        for task, parts in refused:
            warnings.warn(f"ml-debugger: the server refused to commit {_describe(parts)}: {task.error}", stacklevel=3)
        return drained and not refused

    def _not_committed_message(self, timeout: float) -> str:
        pending = self._uploader.pending()
        files = [t.part for t in pending if t.part is not None]
        size = sum(p.info.bytes for p in files) / 1e6
        waiting = [p for t in pending if t.manifest is not None for p in t.manifest.parts]
        what = f"{_describe(waiting)} is not yet committed" if waiting else "the uploads are not finished"
        return (
            f"ml-debugger: {what} on {self.endpoint} after {timeout:g} s (MLD_UPLOAD_TIMEOUT; last error: "
            f"{self._uploader.last_error}); {len(files)} part files ({size:.1f} MB) and "
            f"{sum(1 for t in pending if t.kind == 'commit')} commits wait in the spool {self.spool.root}. Uploads go "
            "on in the background while this process runs; if it ends first, run `mldebugger sync` to send them."
        )

    def pending_uploads(self) -> list[Task]:
        """What this store's uploader has not sent yet."""
        return self._uploader.pending()

    def _get(self, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + READ_RETRY_WINDOW
        return with_retries(lambda: self._client.request("GET", path, **kwargs), deadline=deadline,
                            backoff=self._backoff)

    def _get_json(self, path: str, **kwargs: Any) -> Any:
        try:
            return self._get(path, **kwargs).json()
        except ValueError as exc:
            raise RemoteError(f"GET {path}: the server answered with invalid JSON") from exc

    def model_task(self, model_name: str) -> str:
        return str(self._get_json(f"/models/{quote(model_name, safe='')}")["task"])

    def committed_epochs(self, model_name: str, version_name: str) -> list[int]:
        return [int(e) for e in self._get_json(version_path(model_name, version_name) + "/epochs")["epochs"]]

    def read_traces(self, model_name: str, version_name: str, epochs: list[int] | None) -> pa.Table:
        params = {} if epochs is None else {"epochs": ",".join(str(int(e)) for e in epochs)}
        response = self._get(version_path(model_name, version_name) + "/traces", params=params)
        try:
            return ipc.open_stream(response.content).read_all()
        except (pa.ArrowInvalid, OSError) as exc:
            raise RemoteError(f"the server sent unreadable traces for {model_name}/{version_name}: {exc}") from exc

    def save_result(self, model_name: str, version_name: str, result_name: str, result: StoredResult) -> None:
        raise StoreError(
            "a server stores the results of the evaluations it runs; use Evaluator.request_evaluation() "
            "(or a LocalStore to save results computed here)"
        )

    def load_result(self, model_name: str, version_name: str, result_name: str) -> StoredResult:
        base = f"{version_path(model_name, version_name)}/results/{quote(result_name, safe='')}"
        payload = self._get_json(base)
        tables = {}
        for name in payload["tables"]:
            content = self._get(f"{base}/tables/{quote(name, safe='')}", params={"format": "parquet"}).content
            try:
                tables[name] = pq.read_table(pa.BufferReader(content)).to_pandas()
            except (pa.ArrowInvalid, OSError) as exc:
                raise RemoteError(f"the server sent an unreadable table {name!r} of {result_name!r}: {exc}") from exc
        return StoredResult(meta=payload["meta"], tables=tables)

    def list_results(self, model_name: str, version_name: str) -> pd.DataFrame:
        payload = self._get_json(version_path(model_name, version_name) + "/results")
        return pd.DataFrame(payload["results"], columns=payload["columns"])

    def submit_evaluation(
        self, model_name: str, version_name: str, request: EvaluationRequest, *, progress: bool = False
    ) -> StoredResult:
        """Run the evaluation as a job on the server, poll it, and fetch the stored result."""
        deadline = time.monotonic() + self.evaluation_timeout
        body = {
            "request_id": uuid.uuid4().hex,  # a retried submission finds the same job
            "result_name": request.result_name,
            "n_epoch": request.n_epoch,
            "thresholds": {k: _plain(v) for k, v in request.thresholds.items()},
        }
        submit = version_path(model_name, version_name) + "/evaluations"
        job = with_retries(lambda: self._client.json("POST", submit, json=body),
                           deadline=min(deadline, time.monotonic() + READ_RETRY_WINDOW), backoff=self._backoff)
        delay = 0.1
        while job["status"] in ("queued", "running"):
            if time.monotonic() + delay > deadline:
                raise RemoteError(
                    f"evaluation job {job['id']} of {model_name}/{version_name} is still {job['status']} after "
                    f"{self.evaluation_timeout:g} s (MLD_EVALUATION_TIMEOUT); see Evaluator.list_results() later"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            job = self._get_json(f"/jobs/{job['id']}")
            if progress:
                logger.info("evaluation job %s: %s", job["id"], job["status"])
        if job["status"] != "succeeded":
            raise exception_named(str(job["error_type"]), f"the server's evaluation failed: {job['error_message']}")
        return self.load_result(model_name, version_name, str(job["result_name"]))

    def close(self) -> None:
        """Stop uploading (the spool keeps what is not sent, and a warning says what) and close the connection."""
        self._uploader.close()
        self._client.close()
        atexit.unregister(self._exit_hook)
        self._exit_hook()


def _describe(parts: list[PartInfo]) -> str:
    versions = sorted({f"{p.key.model_name}/{p.key.version_name}" for p in parts})
    epochs = sorted({p.key.epoch for p in parts})
    return f"{', '.join(versions)} epochs {epochs} ({sum(p.rows for p in parts)} rows)"


def _report_pending(store_ref: weakref.ref) -> None:
    """Warn about what a store's uploader has not sent (at exit, or when the store is closed)."""
    store = store_ref()
    if store is None:
        return
    pending = store.pending_uploads()
    if pending:
        logger.warning(
            "ml-debugger: %d uploads to %s were not sent (%s); they are kept in %s: "
            "run `mldebugger sync` to send them", len(pending), store.endpoint,
            ", ".join(t.describe() for t in pending[:3]) + (", ..." if len(pending) > 3 else ""), store.spool.root,
        )
