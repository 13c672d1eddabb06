"""Signing in to the dashboard, sessions, the local-only mode and the models API (in process)."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ml_debugger.evaluator import Evaluator
from ml_debugger.server import ServerConfig, create_app
from ml_debugger.server.dashboard.auth import COOKIE, SECRET_FILE, SESSION_SECONDS, Sessions, server_secret
from ml_debugger.server.keys import KeyRing
from ml_debugger.store import LocalStore
from tests.dashboard.data import StoreData
from tests.dashboard.servers import copy_home

LOOPBACK = ("127.0.0.1", 50000)
SAMPLES = "/dashboard/api/samples/digits/v1/v1-all"


@pytest.fixture(scope="module")
def keyed_home(store_data: StoreData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_home(store_data, tmp_path_factory.mktemp("auth") / "home")


@pytest.fixture(scope="module")
def keyed_app(keyed_home: Path) -> FastAPI:
    return create_app(ServerConfig(home=keyed_home))


@pytest.fixture
def client(keyed_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(keyed_app, client=LOOPBACK, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def key(keyed_home: Path) -> str:
    return KeyRing(LocalStore(keyed_home).catalog).create("dashboard-test")[1]


def sign_in(client: TestClient, key: str, next: str = "/dashboard/") -> object:
    return client.post("/dashboard/sign-in", data={"key": key, "next": next})


def test_models_api_lists_task_versions_epochs_and_the_latest_headline(
    client: TestClient, key: str, keyed_home: Path
) -> None:
    assert client.get("/api/v1/models").status_code == 401
    models = client.get("/api/v1/models", headers={"Authorization": f"Bearer {key}"}).json()["models"]
    assert {(m["name"], m["task"]) for m in models} == {
        ("digits", "classification"), ("boxes", "detection2d"), ("lidar", "detection3d")}
    model = next(m for m in models if m["name"] == "digits")
    assert [(v["name"], v["epochs"], v["results"]) for v in model["versions"]] == [("v1", [0, 1, 2], 1),
                                                                                   ("v2", [0, 1, 2], 1)]
    latest = model["latest_result"]
    assert (latest["version_name"], latest["result_name"]) == ("v2", "v2-latest")
    summary = Evaluator("digits", "v2", store=LocalStore(keyed_home)).get_result("v2-latest").metrics_summary()
    val = next(row for row in latest["headline"] if row["dataset"] == "val")
    assert val["metrics"]["accuracy"] == pytest.approx(summary.set_index("dataset").loc["val", "accuracy"])
    assert model["last_activity"] >= max(v["last_activity"] for v in model["versions"])


def test_pages_redirect_to_sign_in_and_data_requests_get_401(client: TestClient) -> None:
    page = client.get("/dashboard/models/digits/versions/v1?x=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/dashboard/sign-in?next=%2Fdashboard%2Fmodels%2Fdigits%2Fversions%2Fv1%3Fx%3D1"
    data = client.get(SAMPLES)
    assert data.status_code == 401 and data.json()["error"]["type"] == "AuthenticationError"
    assert client.get(SAMPLES, headers={"HX-Request": "true"}).headers["hx-redirect"] == "/dashboard/sign-in"
    assert client.get("/").headers["location"] == "/dashboard/"


def test_sign_in_sets_a_hardened_session_cookie_and_the_api_still_wants_bearer(client: TestClient, key: str) -> None:
    refused = sign_in(client, "mldbg_000000000000_" + "x" * 43)
    assert refused.status_code == 401 and COOKIE not in refused.cookies
    answer = sign_in(client, key, next="/dashboard/models/digits/versions/v1")
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/models/digits/versions/v1"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert f"max-age={SESSION_SECONDS}" in cookie and "secure" not in cookie  # plain HTTP here
    assert client.get("/dashboard/").status_code == 200
    assert client.get(SAMPLES).status_code == 200
    assert client.get("/api/v1/models").status_code == 401  # the cookie is not an API key
    assert client.post("/dashboard/sign-out").status_code == 303
    assert client.get(SAMPLES).status_code == 401


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/api/v1/models", "/dashboard/\\\\evil.example"]
)
def test_sign_in_only_returns_to_dashboard_pages(client: TestClient, key: str, target: str) -> None:
    assert sign_in(client, key, next=target).headers["location"] == "/dashboard/"


def test_cross_site_posts_are_refused(client: TestClient, key: str) -> None:
    sign_in(client, key)
    foreign = {"Origin": "http://evil.example"}
    answer = client.post("/dashboard/api/evaluations/digits/v1", data={"n_epoch": "latest"}, headers=foreign)
    assert answer.status_code == 403
    assert client.post("/dashboard/sign-in", data={"key": key}, headers=foreign).status_code == 403


def test_a_revoked_key_ends_its_sessions(client: TestClient, keyed_home: Path) -> None:
    ring = KeyRing(LocalStore(keyed_home).catalog)
    key_id, key = ring.create("to-revoke")
    sign_in(client, key)
    assert client.get(SAMPLES).status_code == 200
    ring.revoke(key_id)
    assert client.get(SAMPLES).status_code == 401


def test_session_tokens_are_signed_expire_and_follow_their_key(tmp_path: Path) -> None:
    active = {"abc123abc123"}
    sessions = Sessions(server_secret(tmp_path), lambda key_id: key_id in active)
    token = sessions.issue("abc123abc123", now=1000.0)
    assert sessions.verify(token, now=1001.0) == "abc123abc123"
    assert sessions.verify(token, now=1000.0 + SESSION_SECONDS + 1) is None
    key_id, expiry, signature = token.split(".")
    assert sessions.verify(f"{key_id}.{int(expiry) + 999}.{signature}", now=1001.0) is None
    assert sessions.verify(f"fff000fff000.{expiry}.{signature}", now=1001.0) is None
    other = Sessions(bytes(32), lambda key_id: True)
    assert other.verify(token, now=1001.0) is None
    active.clear()
    assert sessions.verify(token, now=1001.0) is None


def test_the_session_secret_is_private_and_kept(tmp_path: Path) -> None:
    first = server_secret(tmp_path)
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert server_secret(tmp_path) == first and len(first) == 32


def test_local_only_lets_loopback_in_without_a_key_and_refuses_the_rest(keyed_home: Path) -> None:
    app = create_app(ServerConfig(home=keyed_home, local_only=True))
    with TestClient(app, client=LOOPBACK, follow_redirects=False) as local:
        assert local.get("/dashboard/").status_code == 200
        assert local.get(SAMPLES).status_code == 200
        assert local.get("/api/v1/models").status_code == 200
        assert "Sign out" not in local.get("/dashboard/").text
    with TestClient(app, client=("192.0.2.7", 50000), follow_redirects=False) as remote:
        assert remote.get("/dashboard/").status_code == 401
        assert remote.get(SAMPLES).status_code == 401
        assert remote.get("/api/v1/models").status_code == 401
