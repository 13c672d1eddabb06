"""Edge cases of the remote store that a real server cannot easily produce (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InvalidNameError,
    NoDataError,
    RemoteError,
    ResultExistsError,
    ServerUnavailableError,
    StoreError,
)
from ml_debugger.store import EvaluationRequest, open_store
from ml_debugger.store.api import ApiClient, Backoff, error_from_response
from ml_debugger.store.remote import RemoteStore
from tests.server.parts import make_batch

Handler = Callable[[httpx.Request], httpx.Response]
FAST = Backoff(base=0.01, cap=0.05)


def error(status: int, kind: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"type": kind, "message": message}})


def store_with(handler: Handler, home: Path, **kwargs) -> RemoteStore:
    kwargs.setdefault("backoff", FAST)
    return RemoteStore("http://server.test", "mldbg_key", home=home, transport=httpx.MockTransport(handler), **kwargs)


@pytest.mark.parametrize("response, cls, text", [
    (error(404, "NoDataError", "no such model"), NoDataError, "no such model (HTTP 404 on GET /x)"),
    (error(409, "ResultExistsError", "taken"), ResultExistsError, "taken"),
    (error(400, "InvalidNameError", "bad name"), InvalidNameError, "bad name"),
    (error(409, "StoreError", "other task"), StoreError, "other task"),
    (error(401, "AuthenticationError", "revoked"), AuthenticationError, "refused the API key"),
    (error(418, "SomethingNew", "teapot"), RemoteError, "teapot"),
    (httpx.Response(502, text="<html>bad gateway</html>"), ServerUnavailableError, "bad gateway"),
    (httpx.Response(429, text=""), ServerUnavailableError, "Too Many Requests"),
])
def test_error_responses_become_ml_debugger_exceptions(response: httpx.Response, cls: type, text: str) -> None:
    response.request = httpx.Request("GET", "http://server.test/x")
    exc = error_from_response(response)
    assert type(exc) is cls and text in str(exc)


def test_a_refused_key_fails_the_tracer_at_once_and_spools_nothing(tmp_path: Path) -> None:
    store = store_with(lambda request: error(401, "AuthenticationError", "invalid or revoked API key"), tmp_path)
    with pytest.raises(AuthenticationError, match="invalid or revoked API key"):
        TraceSession("m", "v1", "classification", store=store)
    assert store.spool.registrations() == []


def test_an_unreachable_server_spools_the_registration(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = store_with(down, tmp_path, upload_timeout=0.2)
    session = TraceSession("m", "v1", "classification", store=store)
    assert [r for _, r in store.spool.registrations()] == [
        {"model_name": "m", "version_name": "v1", "task": "classification"}
    ]
    session.record(make_batch(np.arange(10)), dataset_type="val")
    with pytest.warns(UserWarning, match="connection refused"):
        session.wait_for_save()
    store.close()
    assert len(store.spool.parts()) == 1 and len(store.spool.commits()) == 1


def test_a_refused_part_is_set_aside_and_its_commit_warns(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/parts/" in request.url.path:
            return error(422, "TraceValidationError", "the part does not have the trace schema")
        if request.url.path.endswith("/commits"):
            return error(409, "StoreError", "1 parts were never uploaded")
        return httpx.Response(200, json={})

    store = store_with(handler, tmp_path)
    session = TraceSession("m", "v1", "classification", store=store)
    session.record(make_batch(np.arange(10)), dataset_type="val")
    with pytest.warns(UserWarning, match="the server refused to commit m/v1 epochs \\[0\\] \\(10 rows\\)"):
        session.wait_for_save()
    rejected = sorted((store.spool.root / "rejected").rglob("*"))
    reasons = [p.read_text() for p in rejected if p.name == "reason.txt"]
    assert any("trace schema" in r for r in reasons) and any("never uploaded" in r for r in reasons)
    assert any(p.suffix == ".parquet" for p in rejected), "the refused rows are kept"
    assert store.spool.is_empty()


def job_server(final: dict, polls_before_final: int = 2) -> Handler:
    calls = {"polls": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/evaluations"):
            body = json.loads(request.content)
            assert body["n_epoch"] is None and body["thresholds"] == {"k_neighbors": 3}
            return httpx.Response(202, json={"id": body["request_id"], "status": "queued"})
        calls["polls"] += 1
        if calls["polls"] <= polls_before_final:
            return httpx.Response(200, json={"id": "j", "status": "running"})
        return httpx.Response(200, json={"id": "j", **final})

    return handler


def test_a_failed_evaluation_job_raises_what_the_server_raised(tmp_path: Path) -> None:
    store = store_with(job_server({"status": "failed", "error_type": "NoDataError",
                                   "error_message": "no evaluable rows"}), tmp_path)
    with pytest.raises(NoDataError, match="the server's evaluation failed: no evaluable rows"):
        store.submit_evaluation("m", "v1", EvaluationRequest(None, None, {"k_neighbors": np.int64(3)}))


def test_an_evaluation_that_outlives_its_timeout_says_so(tmp_path: Path) -> None:
    store = store_with(job_server({"status": "running"}, polls_before_final=10**6), tmp_path, evaluation_timeout=0.5)
    with pytest.raises(RemoteError, match=r"still running after 0.5 s \(MLD_EVALUATION_TIMEOUT\)"):
        store.submit_evaluation("m", "v1", EvaluationRequest(None, None, {"k_neighbors": 3}))


def test_unreadable_answers_are_remote_errors(tmp_path: Path) -> None:
    store = store_with(lambda request: httpx.Response(200, content=b"not json or arrow"), tmp_path)
    with pytest.raises(RemoteError, match="invalid JSON"):
        store.committed_epochs("m", "v1")
    with pytest.raises(RemoteError, match="unreadable traces"):
        store.read_traces("m", "v1", None)


def test_reads_retry_a_briefly_failing_server(tmp_path: Path) -> None:
    answers = iter([httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"epochs": [2, 5]})])
    store = store_with(lambda request: next(answers), tmp_path)
    assert store.committed_epochs("m", "v1") == [2, 5]


def test_settings_select_the_remote_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLD_API_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("MLD_API_KEY", "mldbg_x")
    store = open_store()
    assert isinstance(store, RemoteStore) and store.endpoint == "http://127.0.0.1:9" and store.upload_timeout == 120
    monkeypatch.setenv("MLD_UPLOAD_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="MLD_UPLOAD_TIMEOUT must be a positive number of seconds; got 'soon'"):
        open_store()
    with pytest.raises(ConfigurationError, match="must be an http:// or https:// URL"):
        ApiClient("ftp://server", None)


def test_backoff_is_bounded_and_jittered() -> None:
    backoff = Backoff(base=0.5, cap=4.0)
    delays = [backoff.delay(attempt) for attempt in range(40) for _ in range(5)]
    assert all(0.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100


def test_commits_never_wait_on_the_server_and_wait_for_save_is_bounded(tmp_path: Path) -> None:
    import threading
    import time

    released = threading.Event()

    def stalled(request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/parts/" not in request.url.path:
            return httpx.Response(200, json={})  # the registration
        released.wait(30)  # parts and commits: a server that does not answer
        return httpx.Response(201 if "/parts/" in request.url.path else 200, json={})

    store = store_with(stalled, tmp_path, upload_timeout=0.3)
    session = TraceSession("m", "v1", "classification", store=store)
    session.record(make_batch(np.arange(10)), dataset_type="val", n_epoch=0)
    started = time.monotonic()
    session.commit()  # what the framework callbacks call at each epoch end
    assert time.monotonic() - started < 0.2
    assert [t.kind for t in store.pending_uploads()] == ["part", "commit"]
    started = time.monotonic()
    with pytest.warns(UserWarning, match=r"m/v1 epochs \[0\] \(10 rows\) is not yet committed .* after 0.3 s"):
        assert not store.wait_for_uploads()
    assert time.monotonic() - started < 1.0
    released.set()
    assert store.wait_for_uploads(10)
    store.close()
