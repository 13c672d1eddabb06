"""The pages and data requests in process: task-agnostic panels, escaping, previews and errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ml_debugger.evaluator import Evaluator
from ml_debugger.server import ServerConfig, create_app
from ml_debugger.store import LocalStore, StoredResult
from tests.dashboard.data import HOSTILE_ID, MODEL, StoreData
from tests.dashboard.servers import copy_home

JPEG = b"\xff\xd8\xff\xe0" + bytes(64)
RESULT = "/dashboard/models/digits/versions/v1/results"


def detection_like_result(rows: int = 60) -> StoredResult:
    """A result of a task the dashboard has no code for: its own metrics, codes and heatmaps."""
    rng = np.random.default_rng(0)
    classes = np.array(["car", "person", "bike"])
    samples = pd.DataFrame({
        "dataset": "val", "epoch": 0, "input_id": [f"img{i // 3}#{i % 3}" for i in range(rows)],
        "gt_class": classes[rng.integers(0, 3, rows)], "pred_class": classes[rng.integers(0, 3, rows)],
        "iou": rng.random(rows), "category": rng.choice(["stable_coverage", "hotspot"], rows),
        "error_codes": [["DET002"] if i % 2 else [] for i in range(rows)],
    })
    ratios = {f"{c}_ratio": [0.5 if c in ("stable_coverage", "hotspot") else 0.0] for c in (
        "stable_coverage", "operational_coverage", "hotspot", "recessive_hotspot", "critical_hotspot",
        "aleatoric_hotspot")}
    tables = {
        "metrics": pd.DataFrame({"dataset": ["val"], "epoch": [0], "objects": [rows], "map50": [0.61]}),
        "categories": pd.DataFrame({"dataset": ["val"], "epoch": [0], **ratios}),
        "issues": pd.DataFrame({
            "dataset": ["val"], "epoch": [0], "code": ["DET002"], "name": ["mislocalized"], "category": ["hotspot"],
            "count": [rows // 2], "ratio": [0.5], "description": ["IoU with the matched box <b>below</b> 0.5"],
            "recommended_action": ["Check box annotations"],
        }),
        "samples": samples,
        "codes": pd.DataFrame({"code": ["DET002"], "name": ["mislocalized"], "description": ["x"],
                               "category": ["hotspot"], "recommended_action": ["y"]}),
        "heatmap_class_by_error_type": pd.DataFrame({"dataset": "val", "epoch": 0, "gt_class": ["car", "bike"],
                                                     "error_type": ["loc", "cls"], "count": [4, 2]}),
        "heatmap_bev": pd.DataFrame({"dataset": "val", "epoch": 0, "x_bin": ["0-10", "10-20"],
                                     "y_bin": ["-5-0", "0-5"], "count": [3, 1]}),
    }
    meta = {"result_name": "det-0", "model_name": "boxes", "version_name": "v1", "task": "detection2d",
            "epochs": [0], "datasets": ["val"], "created_at": "2026-12-01T00:00:00+00:00", "n_epoch": "0"}
    return StoredResult(meta=meta, tables=tables)


@pytest.fixture(scope="module")
def home(store_data: StoreData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the store plus a detection-like result and a classification result with previews."""
    target = copy_home(store_data, tmp_path_factory.mktemp("pages") / "home")
    store = LocalStore(target)
    store.register_version("boxes", "v1", "detection2d")
    store.save_result("boxes", "v1", "det-0", detection_like_result())
    original = Evaluator(MODEL, "v1", store=store).get_result(store_data.v1_all)
    samples = original.get_samples()
    previews = samples[["dataset", "input_id"]].drop_duplicates().assign(preview=JPEG)
    previews.loc[previews.index[1], "preview"] = b"<svg>not a jpeg</svg>"
    meta = {**original.meta, "result_name": "with-previews"}
    store.save_result(MODEL, "v1", "with-previews", StoredResult(meta, {**original.tables, "previews": previews}))
    return target


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[TestClient]:
    app = create_app(ServerConfig(home=home, local_only=True))
    with TestClient(app, client=("127.0.0.1", 50000), follow_redirects=False) as test_client:
        yield test_client


def test_a_task_without_dashboard_code_shows_its_own_metrics_codes_and_heatmaps(client: TestClient) -> None:
    page = client.get("/dashboard/models/boxes/versions/v1/results/det-0")
    assert page.status_code == 200
    for text in ("map50", "objects", "DET002", "gt_class × error_type", "x_bin × y_bin", "Check box annotations"):
        assert text in page.text
    assert "IoU with the matched box &lt;b&gt;below&lt;/b&gt; 0.5" in page.text
    assert "No hotspot cluster" in page.text
    fragment = client.get("/dashboard/api/samples/boxes/v1/det-0", params={"label": "car", "prediction": "bike"})
    assert fragment.status_code == 200 and 'data-column="gt_class">car<' in fragment.text
    assert 'data-column="gt_class">person<' not in fragment.text and 'data-column="pred_class">bike<' in fragment.text


def test_user_strings_are_escaped(client: TestClient, store_data: StoreData) -> None:
    page = client.get(f"{RESULT}/{store_data.v1_all}", params={"page_size": 200})
    assert HOSTILE_ID not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_previews_are_served_when_the_result_stores_them(client: TestClient) -> None:
    page = client.get(f"{RESULT}/with-previews", params={"dataset": "val"})
    assert 'class="preview"' in page.text
    image = client.get("/dashboard/api/preview/digits/v1/with-previews", params={"dataset": "val", "input_id": "5"})
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg" and image.content == JPEG
    missing = client.get("/dashboard/api/preview/digits/v1/with-previews", params={"dataset": "val", "input_id": "x"})
    assert missing.status_code == 404


def test_results_without_previews_show_ids(client: TestClient, store_data: StoreData) -> None:
    assert 'class="preview"' not in client.get(f"{RESULT}/{store_data.v1_all}").text
    answer = client.get(f"/dashboard/api/preview/digits/v1/{store_data.v1_all}", params={"dataset": "val",
                                                                                         "input_id": "5"})
    assert answer.status_code == 404 and "no previews" in answer.json()["error"]["message"]


@pytest.mark.parametrize(("url", "status", "text"), [
    ("/dashboard/models/nope", 404, "unknown model"),
    ("/dashboard/models/digits/versions/v9", 404, "no version"),
    (f"{RESULT}/nope", 404, "no result named"),
    (f"{RESULT}/v1-all?epoch=7", 404, "no epoch 7"),
    (f"{RESULT}/v1-all?epoch=x", 400, "epoch must be"),
    (f"{RESULT}/v1-all?dataset=test", 404, "no dataset"),
    (f"{RESULT}/v1-all?sort=nope", 400, "cannot sort by"),
    ("/dashboard/compare?result=a/b", 400, "model/version/result"),
])
def test_bad_page_requests_get_an_error_page(client: TestClient, url: str, status: int, text: str) -> None:
    answer = client.get(url)
    assert answer.status_code == status and text in answer.text and "<html" in answer.text


def test_bad_data_requests_get_a_json_error(client: TestClient) -> None:
    answer = client.get("/dashboard/api/samples/digits/v1/v1-all", params={"cluster": "many"})
    assert answer.status_code == 400 and "cluster must be an integer" in answer.json()["error"]["message"]
    assert client.get("/dashboard/api/samples/digits/v1/v1-all", params={"page_size": 7}).status_code == 400
    assert client.get("/dashboard/api/jobs/not-hex").status_code == 400


def test_evaluation_requests_run_as_jobs(client: TestClient) -> None:
    started = client.post("/dashboard/api/evaluations/digits/v2", data={"n_epoch": "0", "result_name": "v2-e0"})
    assert started.status_code == 202 and 'hx-trigger="every 1s"' in started.text
    job_id = started.text.split('id="job-')[1].split('"')[0]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = client.get(f"/dashboard/api/jobs/{job_id}")
        if 'data-status="succeeded"' in answer.text or 'data-status="failed"' in answer.text:
            break
        time.sleep(0.1)
    assert 'data-status="succeeded"' in answer.text and "v2-e0" in answer.text and "hx-trigger" not in answer.text
    again = client.post("/dashboard/api/evaluations/digits/v2", data={"n_epoch": "0", "result_name": "v2-e0"})
    assert again.status_code == 409
