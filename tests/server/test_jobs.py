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
from tests.server.parts import make_batch

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
