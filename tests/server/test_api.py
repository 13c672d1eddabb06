"""The HTTP API against a real server process: auth, uploads, commits, reads, bad requests."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from tests.server.live import LiveServer
from tests.server.parts import Part, commit, put_part, real_part

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")


@pytest.fixture
def client(live_server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as c:
        yield c


def register(client: httpx.Client, model: str, version: str = "v1", task: str = "classification") -> httpx.Response:
    return client.put(f"/api/v1/models/{model}/versions/{version}", json={"task": task})


def store_snapshot(server: LiveServer) -> tuple[set[str], dict]:
    """Every file under the server's traces/ and tmp/, and the committed epochs of every version."""
    files = {str(p.relative_to(server.home)) for d in ("traces", "tmp") for p in (server.home / d).rglob("*")
             if p.is_file()}
    catalog = server.store().catalog
    return files, {path: True for path in catalog.known_paths()}


def test_health_and_openapi_need_no_key(live_server: LiveServer) -> None:
    health = httpx.get(f"{live_server.url}/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    paths = httpx.get(f"{live_server.url}/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/models/{model}/versions/{version}/parts/{dataset_type}/{epoch}/{part_name}" in paths
    assert "/api/v1/jobs/{job_id}" in paths


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer mldbg_000000000000_" + "x" * 43},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer nonsense"}])
@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/models/m"), ("PUT", "/api/v1/models/m/versions/v1"),
    ("PUT", "/api/v1/models/m/versions/v1/parts/val/0/p?run_id=r"), ("POST", "/api/v1/models/m/versions/v1/commits"),
    ("GET", "/api/v1/models/m/versions/v1/results"), ("GET", "/api/v1/jobs/0123456789abcdef"),
    ("POST", "/api/v1/models/m/versions/v1/evaluations"), ("GET", "/api/v1/models/m/versions/v1/traces"),
])
def test_every_api_route_but_health_needs_a_valid_key(live_server: LiveServer, headers: dict, method: str,
                                                      path: str) -> None:
    response = httpx.request(method, live_server.url + path, headers=headers, json={})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "AuthenticationError" and "API key" in error["message"]
    assert "Traceback" not in response.text


def test_a_revoked_key_is_refused(live_server: LiveServer) -> None:
    from ml_debugger.server.keys import KeyRing

    ring = KeyRing(live_server.store().catalog)
    key_id, key = ring.create("short-lived")
    url = f"{live_server.url}/api/v1/models/nothing"
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(url, headers=auth).status_code == 404  # authenticated: the model is unknown
    assert ring.revoke(key_id)
    assert httpx.get(url, headers=auth).status_code == 401


def test_upload_commit_and_read_back_in_every_body_format(client: httpx.Client, tmp_path: Path) -> None:
    assert register(client, "formats").status_code == 200
    parts = [real_part(tmp_path, "formats", "v1", rows=30, start=i * 100) for i in range(3)]
    bodies = [parts[0].parquet, parts[1].arrow_stream(), parts[2].arrow_file()]
    for part, body in zip(parts, bodies, strict=True):
        response = put_part(client, "formats", "v1", part, body, rows=30)
        assert response.status_code == 201, response.text
        assert response.json()["stored"] is True
    assert client.get("/api/v1/models/formats/versions/v1/epochs").json() == {"epochs": []}  # not yet committed
    assert commit(client, "formats", "v1", *parts).json() == {"committed": 3, "rows": 90}
    assert client.get("/api/v1/models/formats/versions/v1/epochs").json() == {"epochs": [0]}
    traces = ipc.open_stream(client.get("/api/v1/models/formats/versions/v1/traces").content).read_all()
    assert sorted(traces.column("input_id").to_pylist(), key=int) == [str(i) for p in range(3) for i in
                                                                       range(p * 100, p * 100 + 30)]
    expected = pa.concat_tables([p.table for p in parts])
    assert traces.sort_by("input_id").column("scores").equals(expected.sort_by("input_id").column("scores"))


def test_uploads_and_commits_are_idempotent(client: httpx.Client, tmp_path: Path, live_server: LiveServer) -> None:
    register(client, "idem")
    part = real_part(tmp_path, "idem", "v1", rows=25)
    assert put_part(client, "idem", "v1", part).status_code == 201
    again = put_part(client, "idem", "v1", part)
    assert again.status_code == 200 and again.json()["stored"] is False
    for _ in range(2):
        assert commit(client, "idem", "v1", part).status_code == 200
    assert live_server.store().read_traces("idem", "v1", None).num_rows == 25


def test_registering_a_model_for_another_task_is_a_conflict(client: httpx.Client) -> None:
    assert register(client, "tasky").status_code == 200
    response = register(client, "tasky", "v2", task="detection2d")
    assert response.status_code == 409
    assert "registered for task 'classification'" in response.json()["error"]["message"]


def test_only_registered_tasks_are_accepted(client: httpx.Client) -> None:
    response = register(client, "bananas", task="banana")
    assert response.status_code == 400
    assert "unknown task 'banana'; expected one of: classification, detection2d, detection3d" in response.json()["error"]["message"]


def _truncated(part: Part) -> bytes:
    return part.parquet[: len(part.parquet) // 2]


def _corrupt(part: Part) -> bytes:
    body = bytearray(part.parquet)
    body[4:200] = b"\x00" * 196
    return bytes(body)


def _without_label(part: Part) -> bytes:
    sink = io.BytesIO()
    pq.write_table(part.table.drop_columns(["label"]), sink)
    return sink.getvalue()


def _wrong_type(part: Part) -> bytes:
    table = part.table.set_column(part.table.schema.get_field_index("epoch"), "epoch",
                                  part.table.column("epoch").cast(pa.int64()))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _other_model(part: Part) -> bytes:
    column = pa.array(["someone-else"] * part.table.num_rows)
    table = part.table.set_column(part.table.schema.get_field_index("model_name"), "model_name", column)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize("make_body, status, message", [
    (_truncated, 400, "truncated or corrupt"),
    (_corrupt, 400, "truncated or corrupt"),
    (lambda part: b"hello, not a table", 400, "not a Parquet or Arrow IPC file"),
    (lambda part: part.arrow_stream()[:-300], 400, "truncated or corrupt"),
    (_without_label, 422, "missing column 'label'"),
    (_wrong_type, 422, "column 'epoch' is int64, expected int32"),
    (_other_model, 422, "column 'model_name' holds ['someone-else']"),
    (lambda part: b"\x00" * (2 * 2**20), 413, "at most 1048576 bytes"),
])
def test_bad_part_bodies_are_refused_and_leave_the_store_unchanged(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path, make_body, status: int, message: str
) -> None:
    register(client, "bad")
    part = real_part(tmp_path, "bad", "v1", rows=300)
    before = store_snapshot(live_server)
    response = put_part(client, "bad", "v1", part, make_body(part))
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert store_snapshot(live_server) == before
    assert commit(client, "bad", "v1", part).status_code == 409  # nothing was stored to commit


def test_a_body_that_does_not_match_its_checksum_or_row_count_is_refused(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "sums")
    part = real_part(tmp_path, "sums", "v1", rows=20)
    before = store_snapshot(live_server)
    response = client.put(
        f"/api/v1/models/sums/versions/v1/parts/val/0/{part.part_name}", content=part.parquet,
        params={"run_id": part.run_id, "rank": 0}, headers={"X-Content-SHA256": "0" * 64},
    )
    assert response.status_code == 400 and "truncated or corrupted" in response.json()["error"]["message"]
    response = put_part(client, "sums", "v1", part, rows=21)
    assert response.status_code == 422 and "rows=21" in response.json()["error"]["message"]
    assert store_snapshot(live_server) == before


@pytest.mark.parametrize("path", [
    "/api/v1/models/%2E%2E/versions/v1/parts/val/0/p",
    "/api/v1/models/bad/versions/..%2F..%2Fetc/parts/val/0/p",
    "/api/v1/models/bad/versions/v1/parts/%2E%2E/0/p",
    "/api/v1/models/bad/versions/v1/parts/val/0/..",
    "/api/v1/models/bad/versions/v1/parts/val/0/%2E%2E%2Fcatalog",
    "/api/v1/models/bad/versions/v1/parts/val/-1/p",
    "/api/v1/models/bad/versions/v1/parts/val/0/.hidden",
])
def test_names_with_path_traversal_are_refused(live_server: LiveServer, api_key: str, tmp_path: Path,
                                                path: str) -> None:
    part = real_part(tmp_path, "bad", "v1")
    before = store_snapshot(live_server)
    # a raw request: httpx would normalise the dots away
    with httpx.Client(headers={"Authorization": f"Bearer {api_key}"}) as raw:
        request = raw.build_request("PUT", live_server.url, content=part.parquet)
        request.url = request.url.copy_with(raw_path=(path + f"?run_id={part.run_id}").encode())
        response = raw.send(request)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["message"]
    assert store_snapshot(live_server) == before


def test_uploading_to_an_unknown_model_or_version_is_not_found(client: httpx.Client, tmp_path: Path) -> None:
    part = real_part(tmp_path, "ghost", "v1")
    response = put_part(client, "ghost", "v1", part)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "type": "NoDataError", "message": "unknown model 'ghost': nothing was ever traced under that model_name"
    }
    register(client, "ghost", "v2")
    assert "has no version 'v1'" in put_part(client, "ghost", "v1", part).json()["error"]["message"]


def test_unknown_routes_and_bad_json_get_json_errors(client: httpx.Client) -> None:
    response = client.get("/api/v1/nowhere")
    assert response.status_code == 404 and response.json()["error"]["type"] == "NotFound"
    response = client.put("/api/v1/models/m/versions/v1", json={"tusk": "classification"})
    assert response.status_code == 422 and "task" in response.json()["error"]["message"]
    response = client.put("/api/v1/models/m/versions/v1", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_a_server_side_failure_is_a_json_500_without_a_traceback(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "broken")
    part = real_part(tmp_path, "broken", "v1")
    put_part(client, "broken", "v1", part)
    commit(client, "broken", "v1", part)
    (stored,) = (live_server.home / "traces" / "model=broken").rglob("*.parquet")
    stored.write_bytes(b"damaged on the server's disk")
    response = client.get("/api/v1/models/broken/versions/v1/traces")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "StoreError"
    assert "cannot read the traces of broken/v1" in response.json()["error"]["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
