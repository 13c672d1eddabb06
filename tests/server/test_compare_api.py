"""GET .../compare on a real server: the same tables as ``Evaluator.compare``, local or remote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml_debugger.evaluator import Evaluator
from ml_debugger.store.remote import RemoteStore
from tests.evaluator.test_evaluator import trace
from tests.server.live import LiveServer

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
URL = "/api/v1/models/clf/versions/v2/compare"


@pytest.fixture(scope="module")
def results(live_server: LiveServer, api_key: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """v1 traced at one epoch, v2 at three (a better model), each evaluated by the server."""
    store = RemoteStore(live_server.url, api_key, home=tmp_path_factory.mktemp("client"))
    trace(store, epochs=(0,), version="v1")
    trace(store, epochs=(0, 1, 2), version="v2")
    names = {v: Evaluator("clf", v, store=store).request_evaluation(result_name=f"{v}-r", progress=False).name
             for v in ("v1", "v2")}
    store.close()
    return names


@pytest.fixture
def client(live_server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as c:
        yield c


@pytest.fixture
def remote(live_server: LiveServer, api_key: str, tmp_path: Path) -> Iterator[RemoteStore]:
    store = RemoteStore(live_server.url, api_key, home=tmp_path / "client")
    yield store
    store.close()


def test_the_endpoint_serves_what_a_remote_evaluator_computes(
    client: httpx.Client, remote: RemoteStore, live_server: LiveServer, results: dict[str, str]
) -> None:
    response = client.get(URL, params={"baseline": "v1/v1-r", "candidate": "v2-r"})
    assert response.status_code == 200, response.text
    served = response.json()
    remote_side = Evaluator("clf", "v2", store=remote).compare("v1/v1-r", "v2-r")
    assert served == json.loads(json.dumps(remote_side.to_dict(limit=1000)))
    local_side = Evaluator("clf", "v2", store=live_server.store()).compare("v1/v1-r", "@latest")
    assert served == json.loads(json.dumps(local_side.to_dict(limit=1000)))
    overview = served["tables"]["overview"]
    assert [row["dataset"] for row in overview] == ["train", "val"] and overview[1]["matched"] == 120
    assert overview[1]["fixed"] > overview[1]["newly_broken"]
    assert {m["metric"] for m in served["tables"]["metrics"]} >= {"accuracy", "auroc", "counts"}


def test_options_and_the_limit(client: httpx.Client, results: dict[str, str]) -> None:
    response = client.get(URL, params={"baseline": "v2-r", "candidate": "clf/v2/v2-r", "baseline_epoch": "2",
                                       "dataset": "val", "limit": 3})
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["baseline"]["epochs"] == {"val": 2} and data["total_rows"]["changes"] > 3
    assert len(data["tables"]["changes"]) == 3 and all(r["change"] == "still_wrong" for r in data["tables"]["changes"])


@pytest.mark.parametrize("params, status, kind, message", [
    ({"baseline": "v1/nothing"}, 404, "NoDataError", "no result named 'nothing'"),
    ({"baseline": "a/b/c/d"}, 400, "ConfigurationError", "bad result reference"),
    ({"baseline": "v1/../x"}, 400, "InvalidNameError", "is not a valid name"),
    ({"baseline": "v1/v1-r", "candidate_epoch": "last"}, 400, "ConfigurationError", "an epoch must be"),
    ({"baseline": "v1/v1-r", "dataset": "test"}, 404, "NoDataError", "has no units at epoch 'latest' in datasets"),
    ({"baseline": "v1/v1-r", "limit": 10**9}, 422, "ConfigurationError", "limit"),
    ({}, 422, "ConfigurationError", "baseline"),
])
def test_bad_requests_get_json_errors(client: httpx.Client, results: dict[str, str], params: dict, status: int,
                                      kind: str, message: str) -> None:
    response = client.get(URL, params=params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == kind and message in error["message"]


def test_the_comparison_needs_a_key(live_server: LiveServer) -> None:
    assert httpx.get(f"{live_server.url}{URL}", params={"baseline": "v1/v1-r"}).status_code == 401
