"""The pages and data requests in process: task-agnostic panels, escaping, previews and errors."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ml_debugger.evaluator import Evaluator
from ml_debugger.server import ServerConfig, create_app
from ml_debugger.store import LocalStore, StoredResult
from tests.dashboard.data import BOXES, HOSTILE_ID, MODEL, StoreData
from tests.dashboard.servers import copy_home
from tests.tasks.detection2d.recording import record as record_2d
from tests.tasks.detection2d.synthetic import random_detection_set

JPEG = b"\xff\xd8\xff\xe0" + bytes(64)
RESULT = "/dashboard/models/digits/versions/v1/results"


@pytest.fixture(scope="module")
def home(store_data: StoreData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the store plus a classification result with previews and a second 2-D detection version
    that never predicts class 3."""
    target = copy_home(store_data, tmp_path_factory.mktemp("pages") / "home")
    store = LocalStore(target)
    data = random_detection_set(0, n_images=30)
    keep = data.dt_labels != 3
    fewer = dataclasses.replace(data, dt_image=data.dt_image[keep], dt_boxes=data.dt_boxes[keep],
                                dt_scores=data.dt_scores[keep], dt_labels=data.dt_labels[keep])
    record_2d(store, fewer, model=BOXES, version="v2")
    Evaluator(BOXES, "v2", store=store).request_evaluation("r", progress=False)
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


def test_2d_detection_shows_its_own_metrics_heatmaps_and_tables(client: TestClient) -> None:
    page = client.get("/dashboard/models/boxes/versions/v1/results/r")
    assert page.status_code == 200
    for text in ("map_50", "DET0", "class × error_type", "size_bin × error_type", 'id="table-per_class_ap"',
                 'id="table-tide"', 'data-column="unit_id"', 'data-column="error_type"', 'data-column="iou"'):
        assert text in page.text


def test_3d_detection_shows_its_birds_eye_view_and_range_table(client: TestClient) -> None:
    page = client.get("/dashboard/models/lidar/versions/v1/results/r")
    assert page.status_code == 200
    for text in ("nds", "D3D0", "y × x", "range_bin × error_type", "points_bin × error_type", 'id="table-range"'):
        assert text in page.text
    assert '"scaleanchor": "x"' in page.text  # the bird's-eye view is a spatial grid with equal scales


def test_any_scalar_column_filters_the_samples(client: TestClient) -> None:
    url = "/dashboard/api/samples/lidar/v1/r"
    answer = client.get(url, params={"f.error_type": "miss", "f.range_bin": "30-40m", "page_size": 200})
    assert answer.status_code == 200 and 'data-column-filter="error_type"' in answer.text
    cells = re.findall(r'data-column="error_type">([^<]*)<', answer.text)
    assert cells and set(cells) == {"miss"}
    assert client.get(url, params={"f.nope": "1"}).status_code == 400
    assert client.get(url, params={"f.error_codes": "D3D005"}).status_code == 400  # a list column: use code=


def test_detection_results_compare_object_by_object(client: TestClient) -> None:
    page = client.get("/dashboard/compare", params=[("result", "boxes/v1/r"), ("result", "boxes/v2/r")])
    assert page.status_code == 200
    assert 'data-column="unit_id"' in page.text and 'class="broken-count"' in page.text
    mixed = client.get("/dashboard/compare", params=[("result", "boxes/v1/r"), ("result", "lidar/v1/r")])
    assert mixed.status_code == 400 and "cannot compare a detection2d result with a detection3d result" in mixed.text


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
