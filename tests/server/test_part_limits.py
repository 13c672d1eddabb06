"""Parts that could brick a version or the server: wrong or inconsistent types, decompression bombs.

A version stays readable and evaluable whatever a client sends, and a part that would decode to
gigabytes is refused from its footer: the server's peak memory (VmHWM) barely moves.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from ml_debugger.store.base import PartKey
from tests.server.live import LiveServer
from tests.server.parts import Part, commit, put_part, real_part
from tests.server.probes import parquet_bytes, status_mb

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
MiB = 2**20


@pytest.fixture
def client(live_server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as c:
        yield c


def register(client: httpx.Client, model: str) -> None:
    assert client.put(f"/api/v1/models/{model}/versions/v1", json={"task": "classification"}).status_code == 200


def replaced(part: Part, column: str, values: pa.Array | pa.ChunkedArray) -> bytes:
    table = part.table.set_column(part.table.schema.get_field_index(column), column, values)
    return parquet_bytes(table)


def evaluate(client: httpx.Client, model: str) -> dict:
    job = client.post(f"/api/v1/models/{model}/versions/v1/evaluations",
                      json={"request_id": uuid.uuid4().hex, "n_epoch": None}).json()
    deadline = time.monotonic() + 120
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
        job = client.get(f"/api/v1/jobs/{job['id']}").json()
    return job


def read_back(client: httpx.Client, model: str) -> pa.Table:
    response = client.get(f"/api/v1/models/{model}/versions/v1/traces")
    assert response.status_code == 200, response.text
    return ipc.open_stream(response.content).read_all()


def poisoned(part: Part) -> dict[str, tuple[bytes, str]]:
    n = part.table.num_rows
    scores64 = part.table.column("scores").cast(pa.list_(pa.float64()))
    return {
        "label as string": (replaced(part, "label", part.table.column("label").cast(pa.string())), "column 'label'"),
        "scores as doubles": (replaced(part, "scores", scores64), "column 'scores'"),
        "null ids": (replaced(part, "input_id", pa.nulls(n, pa.string())), "column 'input_id' has"),
        "negative labels": (replaced(part, "label", pa.array([-1] * n, pa.int64())), "column 'label' has values"),
        "null items in scores": (
            replaced(part, "scores", pa.FixedSizeListArray.from_arrays(pa.nulls(n * 4, pa.float32()), 4)),
            "column 'scores' has null items",
        ),
    }


def test_a_poisoned_part_is_refused_naming_the_column_and_the_version_stays_evaluable(
    client: httpx.Client, tmp_path: Path
) -> None:
    register(client, "poison")
    good = real_part(tmp_path, "poison", "v1", rows=120)
    assert put_part(client, "poison", "v1", good).status_code == 201
    assert commit(client, "poison", "v1", good).status_code == 200
    bad = real_part(tmp_path, "poison", "v1", rows=60, start=1000)
    for name, (body, column) in poisoned(bad).items():
        response = put_part(client, "poison", "v1", bad, body)
        assert response.status_code == 422, (name, response.text)
        assert column in response.json()["error"]["message"], name
    assert commit(client, "poison", "v1", bad).status_code == 409  # nothing was stored
    assert read_back(client, "poison").num_rows == 120
    assert evaluate(client, "poison")["status"] == "succeeded"


def test_a_part_whose_columns_differ_from_the_version_is_refused(client: httpx.Client, tmp_path: Path) -> None:
    register(client, "widths")
    first = real_part(tmp_path, "widths", "v1", rows=50)
    assert put_part(client, "widths", "v1", first).status_code == 201
    assert commit(client, "widths", "v1", first).status_code == 200
    other = real_part(tmp_path, "widths", "v1", rows=50, start=500)
    five_classes = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(50 * 5, np.float32)), 5)
    half_features = other.table.column("features").cast(pa.list_(pa.float16(), 8))
    cases = {
        "scores width": (replaced(other, "scores", five_classes), (
            "column 'scores' is fixed_size_list<item: float>[5] in this part but fixed_size_list<item: float>[4] "
            "in the parts committed to widths/v1"
        )),
        "feature dtype": (replaced(other, "features", half_features), (
            "column 'features' is fixed_size_list<item: halffloat>[8] in this part but "
            "fixed_size_list<item: float>[8]"
        )),
    }
    for name, (body, message) in cases.items():
        response = put_part(client, "widths", "v1", other, body)
        assert response.status_code == 422, (name, response.text)
        assert message in response.json()["error"]["message"], (name, response.text)
    # a dictionary-encoded string column is the same column: accepted, and read back as a string
    dictionary = replaced(other, "score_type", other.table.column("score_type").dictionary_encode())
    assert put_part(client, "widths", "v1", other, dictionary).status_code == 201
    assert commit(client, "widths", "v1", other).status_code == 200
    traces = read_back(client, "widths")
    assert traces.num_rows == 100 and traces.schema.field("score_type").type == pa.string()
    assert evaluate(client, "widths")["status"] == "succeeded"
    # an optional column missing from a part (no features traced there) reads as nulls
    bare = real_part(tmp_path, "widths", "v1", rows=50, start=900)
    assert put_part(client, "widths", "v1", bare, parquet_bytes(bare.table.drop_columns(["features"]))).status_code == 201
    assert commit(client, "widths", "v1", bare).status_code == 200
    traces = read_back(client, "widths")
    assert traces.num_rows == 150 and traces.column("features").null_count == 50
    assert evaluate(client, "widths")["status"] == "succeeded"


def test_parts_that_disagree_within_an_uncommitted_version_cannot_be_committed_together(
    client: httpx.Client, tmp_path: Path
) -> None:
    register(client, "racing-widths")
    first = real_part(tmp_path, "racing-widths", "v1", rows=30)
    other = real_part(tmp_path, "racing-widths", "v1", rows=30, start=100)
    five = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(30 * 5, np.float32)), 5)
    assert put_part(client, "racing-widths", "v1", first).status_code == 201
    assert put_part(client, "racing-widths", "v1", other, replaced(other, "scores", five)).status_code == 201
    response = commit(client, "racing-widths", "v1", first, other)
    assert response.status_code == 422 and "column 'scores'" in response.json()["error"]["message"]
    assert commit(client, "racing-widths", "v1", first).status_code == 200
    refused = commit(client, "racing-widths", "v1", other)  # the first commit fixed the version's columns
    assert refused.status_code == 422 and "[4] in the parts committed" in refused.json()["error"]["message"]
    assert read_back(client, "racing-widths").num_rows == 30


def test_inconsistent_parts_committed_behind_the_servers_back_are_a_clear_error_not_a_500(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "legacy")
    first = real_part(tmp_path, "legacy", "v1", rows=20)
    other = real_part(tmp_path, "legacy", "v1", rows=20, start=100)
    five = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(20 * 5, np.float32)), 5)
    store, key = live_server.store(), PartKey("legacy", "v1", "val", 0)
    infos = [
        store.write_part(key, first.table, first.part_name, first.run_id, first.rank),
        store.write_part(key, other.table.set_column(other.table.schema.get_field_index("scores"), "scores", five),
                         other.part_name, other.run_id, other.rank),
    ]
    store.catalog.commit_parts(infos)  # without the column check, as a server before it did
    response = client.get("/api/v1/models/legacy/versions/v1/traces")
    assert response.status_code == 422, response.text
    assert "column 'scores' is fixed_size_list<item: float>[" in response.json()["error"]["message"]
    job = evaluate(client, "legacy")
    assert job["status"] == "failed" and job["error_type"] == "TraceValidationError", job


def wide_zero_features_part(part: Part, path: Path, width: int, rows_per_group: int) -> None:
    """``part``'s rows with ``width`` zero features each, written a row group at a time (small in memory)."""
    table = part.table.drop_columns(["features"])
    features = pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(rows_per_group * width, np.float32)), width)
    schema = table.schema.append(pa.field("features", features.type))
    with pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=False) as writer:
        for start in range(0, table.num_rows, rows_per_group):
            writer.write_table(table.slice(start, rows_per_group).append_column("features", features))


def test_a_decompression_bomb_is_refused_from_its_footer_without_decoding(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "bombs")
    part = real_part(tmp_path, "bombs", "v1", rows=256)
    bomb = tmp_path / "bomb.parquet"
    wide_zero_features_part(part, bomb, width=2 * MiB, rows_per_group=8)  # 256 x 2M float32 = 2 GiB decoded
    assert bomb.stat().st_size < MiB  # within the server's 1 MiB part limit
    before = status_mb(live_server.pid, "VmHWM")
    started = time.monotonic()
    response = put_part(client, "bombs", "v1", part, bomb.read_bytes())
    elapsed = time.monotonic() - started
    assert response.status_code == 413, response.text
    assert "the part decoded is about" in response.json()["error"]["message"]
    assert "at most 1073741824 bytes" in response.json()["error"]["message"]
    grown = status_mb(live_server.pid, "VmHWM") - before
    assert grown < 100, f"the server's peak memory grew {grown:.0f} MB for a refused bomb"
    assert elapsed < 10
    print(f"bomb: {bomb.stat().st_size / 1e6:.2f} MB file decoding to 2 GiB, peak RSS +{grown:.0f} MB, "
          f"refused in {elapsed:.2f} s")


def test_dictionary_encoded_strings_are_counted_at_their_decoded_length(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "bombs")
    part = real_part(tmp_path, "bombs", "v1", rows=2048, start=10_000)
    one_mib = pa.DictionaryArray.from_arrays(pa.array(np.zeros(2048, np.int32)), pa.array(["x" * MiB]))
    body = replaced(part, "score_type", one_mib)  # a string column may be dictionary-encoded
    assert len(body) < MiB
    before = status_mb(live_server.pid, "VmHWM")
    response = put_part(client, "bombs", "v1", part, body)  # 2048 values of 1 MiB: 2 GiB of strings
    assert response.status_code == 413, response.text
    assert status_mb(live_server.pid, "VmHWM") - before < 100


def test_compressed_arrow_ipc_is_refused_before_decoding(client: httpx.Client, tmp_path: Path) -> None:
    import io

    register(client, "bombs")
    part = real_part(tmp_path, "bombs", "v1", rows=40, start=50_000)
    for new in (ipc.new_stream, ipc.new_file):
        sink = io.BytesIO()
        with new(sink, part.table.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
            writer.write_table(part.table)
        response = put_part(client, "bombs", "v1", part, sink.getvalue())
        assert response.status_code == 422, response.text
        assert "compressed buffers" in response.json()["error"]["message"]


def test_rows_per_part_are_bounded_from_the_footer(make_server, tmp_path: Path) -> None:
    server = make_server(options=("--max-part-rows", "100")).start()
    key = server.create_key()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        register(c, "rows")
        part = real_part(tmp_path, "rows", "v1", rows=300)
        response = put_part(c, "rows", "v1", part)
        assert response.status_code == 413
        assert response.json()["error"]["message"] == (
            "the part is 300 rows; this server accepts at most 100 rows"
        )
        for body in (part.arrow_stream(), part.arrow_file()):
            assert put_part(c, "rows", "v1", part, body).status_code == 413
        assert put_part(c, "rows", "v1", real_part(tmp_path, "rows", "v1", rows=100)).status_code == 201


def detection_part(scratch: Path, model: str, x2: float = 10.0) -> tuple[bytes, str, str]:
    """A detection part written by a real session: ``(parquet, part_name, run_id)``."""
    from ml_debugger.core import TraceSession
    from ml_debugger.store import LocalStore
    from ml_debugger.tasks.detection2d import make_detection_batch, predictions_from, targets_from

    preds = predictions_from([{"boxes": [[0, 0, 5, 5]], "scores": [0.9], "labels": [1],
                               "features": np.ones((1, 4), np.float32)},
                              {"boxes": [], "scores": [], "labels": [], "features": np.ones((0, 4), np.float32)}])
    targets = targets_from([{"boxes": [[0, 0, x2, 10]], "labels": [1]}, {"boxes": [], "labels": []}], 2)
    batch = make_detection_batch(preds, targets, input_hashes=np.array(["h0", "h1"], dtype=object),
                                 image_sizes=[[20, 20], [20, 20]], label_names=["cat", "dog"])
    session = TraceSession(model, "v1", "detection2d", store=LocalStore(scratch), rows_per_part=10**6)
    session.record(batch, dataset_type="val", n_epoch=0)
    session.flush()
    (path,) = scratch.rglob("*.parquet")
    return path.read_bytes(), path.stem, session.run_id


def test_detection_parts_are_checked_against_their_own_task_schema(client: httpx.Client, tmp_path: Path) -> None:
    assert client.put("/api/v1/models/boxes/versions/v1", json={"task": "detection2d"}).status_code == 200
    body, name, run_id = detection_part(tmp_path / "good", "boxes")
    url = f"/api/v1/models/boxes/versions/v1/parts/val/0/{name}"
    assert client.put(url, content=body, params={"run_id": run_id, "rank": 0}).status_code == 201
    table = pq.read_table(pa.BufferReader(body))
    flipped = pa.array([[[10.0, 0.0, 0.0, 10.0]], []], pa.list_(pa.list_(pa.float32(), 4)))
    bad = parquet_bytes(table.set_column(table.schema.get_field_index("gt_boxes"), "gt_boxes", flipped))
    response = client.put(url.replace(name, name + "-bad"), content=bad, params={"run_id": run_id, "rank": 0})
    assert response.status_code == 422 and "column 'gt_boxes' has boxes with x2 < x1" in response.text
    refs = [{"dataset_type": "val", "epoch": 0, "part_name": name, "run_id": run_id, "rank": 0}]
    assert client.post("/api/v1/models/boxes/versions/v1/commits", json={"parts": refs}).status_code == 200
    traces = ipc.open_stream(client.get("/api/v1/models/boxes/versions/v1/traces").content).read_all()
    assert traces.num_rows == 2 and traces.column("label_names").to_pylist() == [["cat", "dog"]] * 2
