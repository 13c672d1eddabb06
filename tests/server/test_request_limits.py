"""Requests that could exhaust a server: huge JSON bodies, stalled or trickling uploads, integers that
overflow the catalog, and evaluation requests with a bad n_epoch."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.live import LiveServer
from tests.server.parts import real_part
from tests.server.probes import open_fds, status_mb

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
MiB = 2**20


@pytest.fixture
def client(live_server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as c:
        yield c


def register(client: httpx.Client, model: str) -> None:
    assert client.put(f"/api/v1/models/{model}/versions/v1", json={"task": "classification"}).status_code == 200


class HealthWatch:
    """Times /health every 50 ms on a thread while a test runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self._stop.is_set():
                started = time.monotonic()
                c.get(f"{self.url}/api/v1/health")
                self.latencies.append(time.monotonic() - started)
                self._stop.wait(0.05)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def commit_body_chunks(total: int) -> Iterator[bytes]:
    """A commit list of about ``total`` bytes, sent in chunks (no Content-Length: the server must count)."""
    item = json.dumps({"dataset_type": "val", "epoch": 0, "part_name": "p" * 40, "run_id": "r", "rank": 0}) + ","
    chunk = (item * (MiB // len(item))).encode()
    yield b'{"parts": ['
    for _ in range(total // len(chunk)):
        yield chunk
    yield item[:-1].encode() + b"]}"


def test_a_huge_json_body_is_refused_quickly_and_health_stays_fast(
    client: httpx.Client, live_server: LiveServer
) -> None:
    register(client, "floods")
    url = "/api/v1/models/floods/versions/v1/commits"
    before = status_mb(live_server.pid, "VmHWM")
    with HealthWatch(live_server.url) as health:
        started = time.monotonic()
        streamed = client.post(url, content=commit_body_chunks(200 * MiB), headers={"content-type": "application/json"})
        elapsed = time.monotonic() - started
        declared = client.post(url, content=b"[" + b" " * (20 * MiB) + b"]", headers={"content-type": "application/json"})
    for response in (streamed, declared):
        assert response.status_code == 413, response.text
        assert "this server accepts at most 4194304 bytes" in response.json()["error"]["message"]
    assert elapsed < 30
    grown = status_mb(live_server.pid, "VmHWM") - before
    assert grown < 100, f"the server's peak memory grew {grown:.0f} MB"
    assert max(health.latencies) < 2.0
    print(f"200 MB JSON: 413 in {elapsed:.2f} s, peak RSS +{grown:.0f} MB, health max {max(health.latencies):.3f} s")


def test_a_commit_naming_too_many_parts_is_413(client: httpx.Client) -> None:
    register(client, "floods")
    parts = [{"dataset_type": "val", "epoch": 0, "part_name": f"p{i}", "run_id": "r", "rank": 0} for i in range(10_001)]
    response = client.post("/api/v1/models/floods/versions/v1/commits", json={"parts": parts})
    assert response.status_code == 413
    assert response.json()["error"]["message"] == "the commit is 10001 parts; this server accepts at most 10000 parts"


@pytest.mark.parametrize("method, path, body, field", [
    ("PUT", "/api/v1/models/ints/versions/v1/parts/val/99999999999/p?run_id=r", None, "epoch"),
    ("PUT", "/api/v1/models/ints/versions/v1/parts/val/2147483648/p?run_id=r", None, "epoch"),
    ("PUT", "/api/v1/models/ints/versions/v1/parts/val/0/p?run_id=r&rank=2147483648", None, "rank"),
    ("POST", "/api/v1/models/ints/versions/v1/commits",
     {"parts": [{"dataset_type": "val", "epoch": 0, "part_name": "p", "run_id": "r", "rank": 10**23}]}, "rank"),
    ("POST", "/api/v1/models/ints/versions/v1/commits",
     {"parts": [{"dataset_type": "val", "epoch": 2**31, "part_name": "p", "run_id": "r", "rank": 0}]}, "epoch"),
    ("POST", "/api/v1/models/ints/versions/v1/commits",
     {"parts": [{"dataset_type": "val", "epoch": 0, "part_name": "p", "run_id": "r", "rank": True}]}, "rank"),
    ("GET", "/api/v1/models/ints/versions/v1/traces?epochs=0,99999999999", None, "epochs"),
    ("POST", "/api/v1/models/ints/versions/v1/evaluations", {"request_id": "ab" * 8, "n_epoch": 2**40}, "n_epoch"),
])
def test_integers_that_overflow_are_client_errors_naming_the_field(
    client: httpx.Client, tmp_path: Path, method: str, path: str, body: dict | None, field: str
) -> None:
    register(client, "ints")
    content = real_part(tmp_path, "ints", "v1", rows=5).parquet if method == "PUT" else None
    response = client.request(method, path, json=body, content=content)
    assert response.status_code in (400, 422), response.text
    assert field in response.json()["error"]["message"]


@pytest.mark.parametrize("n_epoch", [True, False, -1, "2", 1.5])
def test_a_bad_n_epoch_is_refused_when_the_job_is_requested(client: httpx.Client, n_epoch: object) -> None:
    register(client, "epochs")
    response = client.post("/api/v1/models/epochs/versions/v1/evaluations",
                           json={"request_id": uuid.uuid4().hex, "n_epoch": n_epoch})
    assert response.status_code == 400, response.text
    assert "n_epoch" in response.json()["error"]["message"]


def stalled_upload(server: LiveServer, key: str, declared: int, sent: bytes) -> socket.socket:
    """A part upload that declares ``declared`` bytes, sends ``sent`` and then nothing."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        f"PUT /api/v1/models/stall/versions/v1/parts/val/0/p?run_id=r HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: {declared}\r\n\r\n".encode() + sent
    )
    return sock


def status_of(sock: socket.socket, timeout: float) -> int | None:
    sock.settimeout(timeout)
    try:
        head = sock.recv(64)
    except (TimeoutError, ConnectionError):
        return None
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1") else None


def test_stalled_uploads_are_bounded_and_dropped_after_the_body_timeout(make_server) -> None:
    server = make_server(options=("--body-timeout", "2", "--max-uploads", "8", "--max-connections", "64")).start()
    key = server.create_key()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        register(c, "stall")
    baseline = open_fds(server.pid)
    started = time.monotonic()
    sockets = [stalled_upload(server, key, 400_000_000, b"PAR1") for _ in range(300)]
    time.sleep(1.0)
    held = open_fds(server.pid) - baseline
    statuses = [status_of(s, 10.0) for s in sockets]
    answered = time.monotonic() - started
    for s in sockets:
        s.close()
    time.sleep(0.5)
    left = open_fds(server.pid) - baseline
    assert statuses.count(503) >= 300 - 8 and statuses.count(408) >= 1, statuses
    assert set(statuses) <= {503, 408}
    assert held <= 64 + 8 + 10, f"{held} file descriptors held by 300 stalled uploads"
    assert answered < 8, f"the stalled uploads were answered after {answered:.1f} s"
    assert left <= 5, f"{left} file descriptors still open"
    print(f"300 stalled uploads: {held} extra fds after 1 s, all answered in {answered:.1f} s, {left} left")

    trickle = stalled_upload(server, key, 1000, b"P")
    for _ in range(8):  # a byte every 0.4 s: far below the minimum rate
        time.sleep(0.4)
        try:
            trickle.sendall(b"A")
        except OSError:
            break
    assert status_of(trickle, 10.0) == 408
    trickle.close()
