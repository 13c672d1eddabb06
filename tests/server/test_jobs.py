"""Evaluation jobs on a real server: idempotent submission, polling, and jobs cut short by a restart."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.store.remote import RemoteStore
from tests.server.parts import commit, make_batch, put_part, real_part

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")


def poll(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.1)
    return job


def test_jobs_are_idempotent_and_survive_only_as_failed_after_a_restart(make_server, tmp_path: Path) -> None:
    server = make_server()
    key = server.create_key()
    server.home.mkdir(parents=True, exist_ok=True)
    stale, _ = server.store().catalog.add_job("ab" * 8, "m", "v1", {"result_name": None, "n_epoch": "latest",
                                                                     "thresholds": {}})
    server.start()
    session = TraceSession("jobs", "v1", "classification", store=RemoteStore(server.url, key, home=tmp_path / "c"))
    session.record(make_batch(np.arange(200)), dataset_type="val", n_epoch=0)
    session.wait_for_save()

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        interrupted = client.get(f"/api/v1/jobs/{stale['id']}").json()
        assert interrupted["status"] == "failed" and "request it again" in interrupted["error_message"]

        body = {"request_id": uuid.uuid4().hex, "result_name": "once", "n_epoch": 0, "thresholds": {"k_neighbors": 4}}
        first = client.post("/api/v1/models/jobs/versions/v1/evaluations", json=body)
        assert first.status_code == 202 and first.json()["status"] in ("queued", "running")
        second = client.post("/api/v1/models/jobs/versions/v1/evaluations", json=body)  # a retried submission
        assert second.json()["id"] == first.json()["id"]
        done = poll(client, first.json()["id"])
        assert done["status"] == "succeeded" and done["result_name"] == "once"
        third = client.post("/api/v1/models/jobs/versions/v1/evaluations", json=body)  # retried after it finished
        assert third.status_code == 202 and third.json()["status"] == "succeeded"
        assert [r["result_name"] for r in client.get("/api/v1/models/jobs/versions/v1/results").json()["results"]] \
            == ["once"]

        taken = client.post("/api/v1/models/jobs/versions/v1/evaluations", json={**body, "request_id": "cd" * 8})
        assert taken.status_code == 409 and taken.json()["error"]["type"] == "ResultExistsError"
        bad = client.post("/api/v1/models/jobs/versions/v1/evaluations",
                          json={**body, "request_id": "ef" * 8, "thresholds": {"k_neighbors": 0}})
        assert bad.status_code == 400 and "k_neighbors must be at least 1" in bad.json()["error"]["message"]
        failing = client.post("/api/v1/models/jobs/versions/v1/evaluations",
                              json={"request_id": "01" * 8, "n_epoch": 3})
        failed = poll(client, failing.json()["id"])
        assert failed["status"] == "failed" and failed["error_type"] == "NoDataError"
        assert "epoch 3 has no committed traces" in failed["error_message"]

        meta = client.get("/api/v1/models/jobs/versions/v1/results/once").json()
        assert meta["meta"]["config"]["k_neighbors"] == 4 and "samples" in meta["tables"]
        arrow = client.get("/api/v1/models/jobs/versions/v1/results/once/tables/metrics", params={"format": "arrow"})
        assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
        missing = client.get("/api/v1/models/jobs/versions/v1/results/once/tables/nothing")
        assert missing.status_code == 404 and "has no table 'nothing'" in missing.json()["error"]["message"]


def commit_traces(client: httpx.Client, tmp_path: Path, model: str) -> None:
    assert client.put(f"/api/v1/models/{model}/versions/v1", json={"task": "classification"}).status_code == 200
    part = real_part(tmp_path, model, "v1", rows=150)
    assert put_part(client, model, "v1", part).status_code == 201
    assert commit(client, model, "v1", part).status_code == 200


def submit(client: httpx.Client, model: str) -> str:
    response = client.post(f"/api/v1/models/{model}/versions/v1/evaluations", json={"request_id": uuid.uuid4().hex})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_a_dead_evaluation_worker_is_restarted_and_reported(make_server, tmp_path: Path) -> None:
    server = make_server(faults={"evaluation_exit": 2}).start()
    key = server.create_key()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        commit_traces(client, tmp_path, "dying")
        for _ in range(2):
            job = poll(client, submit(client, "dying"), timeout=30)
            assert job["status"] == "failed" and job["error_type"] == "InternalError"
            assert "the evaluation worker stopped unexpectedly (SystemExit: injected by the test)" in \
                job["error_message"]
        assert poll(client, submit(client, "dying"))["status"] == "succeeded"
        health = httpx.get(f"{server.url}/api/v1/health")
        assert health.status_code == 200
        evaluations = health.json()["evaluations"]
        assert evaluations["worker"] == "running" and evaluations["restarts"] == 2 and evaluations["queued"] == 0
        assert "SystemExit" in evaluations["last_error"]


def test_a_flood_of_failing_jobs_fails_each_job_and_logs_a_few_lines(make_server, tmp_path: Path) -> None:
    server = make_server(faults={"evaluation_emfile": 10_000}).start()
    key = server.create_key()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        commit_traces(client, tmp_path, "flood")
        ids = [submit(client, "flood") for _ in range(60)]
        for job_id in ids:
            job = poll(client, job_id, timeout=60)
            assert job["status"] == "failed" and "Too many open files" in job["error_message"]
        assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"
    log = server.log.read_text()
    assert log.count("Traceback") <= 5, f"{log.count('Traceback')} tracebacks for 60 identical failures"
    assert log.count("failed unexpectedly") <= 5


def test_queued_jobs_fail_with_the_reason_when_no_worker_can_be_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml_debugger.server import jobs
    from ml_debugger.store import EvaluationRequest, LocalStore

    def end_the_thread(*args, **kwargs):
        raise SystemExit("gone")

    monkeypatch.setattr(jobs, "evaluate_version", end_the_thread)
    store = LocalStore(tmp_path / "home")
    store.register_version("m", "v1", "classification")
    runner = jobs.JobRunner(store, watch_interval=0.05)
    runner.start()

    def no_threads() -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(runner, "_start_worker", no_threads)
    request = EvaluationRequest(result_name=None, n_epoch="latest", thresholds={})
    first, queued = (runner.submit(job_id, "m", "v1", request)["id"] for job_id in ("aa" * 8, "bb" * 8))
    deadline = time.monotonic() + 10
    while store.catalog.job(queued)["status"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert store.catalog.job(first)["error_message"].startswith("the evaluation worker stopped unexpectedly")
    failed = store.catalog.job(queued)
    assert failed["status"] == "failed" and "no new worker could be started: can't start new thread" in \
        failed["error_message"]
    assert not runner.healthy and runner.status()["worker"] == "stopped"
    runner.stop()
