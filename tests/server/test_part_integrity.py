"""What the catalog records about a part is what the part holds: forged commits, racing uploads,
file permissions, and parts that are never committed."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.live import LiveServer
from tests.server.parts import commit, put_part, real_part

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")


@pytest.fixture
def client(live_server: LiveServer, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as c:
        yield c


def register(client: httpx.Client, model: str) -> None:
    assert client.put(f"/api/v1/models/{model}/versions/v1", json={"task": "classification"}).status_code == 200


def committed_rows(server: LiveServer, model: str) -> list[tuple]:
    with server.store().catalog.db.transaction() as db:
        return db.query("SELECT path, run_id, rank FROM parts WHERE model = ?", (model,))


def test_a_commit_cannot_claim_another_run_or_rank_than_the_part_holds(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "forged")
    part = real_part(tmp_path, "forged", "v1", rows=10)
    assert put_part(client, "forged", "v1", part).status_code == 201
    for claim in ({"run_id": "forged"}, {"rank": 5}):
        response = commit(client, "forged", "v1", dataclasses.replace(part, **claim))
        assert response.status_code == 422, response.text
        message = response.json()["error"]["message"]
        assert f"holds run_id={part.run_id!r} rank={part.rank}" in message and "nothing was committed" in message
    assert committed_rows(live_server, "forged") == []
    assert commit(client, "forged", "v1", part).status_code == 200
    assert [(run, rank) for _, run, rank in committed_rows(live_server, "forged")] == [(part.run_id, part.rank)]


def test_racing_uploads_of_one_part_name_store_the_first_and_refuse_the_others(
    client: httpx.Client, live_server: LiveServer, api_key: str, tmp_path: Path
) -> None:
    register(client, "race")
    name = "part-shared-name"
    parts = [dataclasses.replace(real_part(tmp_path / str(i), "race", "v1", rows=2000, start=i * 10_000),
                                 part_name=name) for i in range(8)]
    barrier = threading.Barrier(len(parts))
    answers: dict[int, httpx.Response] = {}

    def upload(i: int) -> None:
        with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as c:
            barrier.wait()
            answers[i] = put_part(c, "race", "v1", parts[i])

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in answers.values())
    assert statuses == [201] + [409] * 7, [r.text for r in answers.values()]
    (winner,) = [i for i, r in answers.items() if r.status_code == 201]
    assert "already stored with other contents" in next(r for r in answers.values() if r.status_code == 409).text
    again = put_part(client, "race", "v1", parts[winner])
    assert again.status_code == 200 and again.json()["stored"] is False
    assert put_part(client, "race", "v1", parts[winner], parts[winner].arrow_stream()).status_code == 409
    assert commit(client, "race", "v1", parts[winner]).status_code == 200
    stored = live_server.store().read_traces("race", "v1", None)
    assert stored.column("run_id").unique().to_pylist() == [parts[winner].run_id]


def test_an_arrow_body_uploaded_again_is_recognised(client: httpx.Client, tmp_path: Path) -> None:
    register(client, "again")
    part = real_part(tmp_path, "again", "v1", rows=30)
    assert put_part(client, "again", "v1", part, part.arrow_file()).status_code == 201
    assert put_part(client, "again", "v1", part, part.arrow_file()).status_code == 200
    assert put_part(client, "again", "v1", part, part.parquet).status_code == 409


def test_stored_parts_are_readable_like_the_catalog(
    client: httpx.Client, live_server: LiveServer, tmp_path: Path
) -> None:
    register(client, "modes")
    parquet, arrow = (real_part(tmp_path, "modes", "v1", rows=10, start=s) for s in (0, 100))
    assert put_part(client, "modes", "v1", parquet).status_code == 201
    assert put_part(client, "modes", "v1", arrow, arrow.arrow_stream()).status_code == 201
    umask = os.umask(0)
    os.umask(umask)  # the server process was started with this test's umask
    catalog_mode = stat.S_IMODE((live_server.home / "catalog.sqlite").stat().st_mode)
    for path in (live_server.home / "traces" / "model=modes").rglob("*.parquet"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o666 & ~umask == catalog_mode & 0o666, f"{path.name}: {oct(mode)}"


def test_parts_never_committed_are_removed_after_the_grace_period(make_server, tmp_path: Path) -> None:
    grace = 6.0
    server = make_server(options=("--uncommitted-grace-hours", str(grace / 3600))).start()
    key = server.create_key()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        register(c, "janitor")
        kept, dropped, retried = (real_part(tmp_path, "janitor", "v1", rows=10, start=s) for s in (0, 100, 200))
        for part in (kept, dropped, retried):
            assert put_part(c, "janitor", "v1", part).status_code == 201
        assert commit(c, "janitor", "v1", kept).status_code == 200
        leftover = server.home / "traces" / "model=janitor" / ".part-crashed.parquet.1234.tmp"
        leftover.write_bytes(b"left by a crashed write")
        old = time.time() - 2 * grace
        os.utime(leftover, (old, old))
        time.sleep(grace / 2)
        assert put_part(c, "janitor", "v1", retried).status_code == 200  # a retry restarts its grace period
        deadline = time.monotonic() + 30
        traces = server.home / "traces" / "model=janitor"
        while any(p.name.startswith(dropped.part_name) for p in traces.rglob("*.parquet")) or leftover.exists():
            assert time.monotonic() < deadline, "the uncommitted part was not removed"
            time.sleep(0.2)
        names = {p.stem for p in traces.rglob("*.parquet")}
        assert kept.part_name in names and retried.part_name in names
        response = commit(c, "janitor", "v1", dropped)
        assert response.status_code == 409 and "never uploaded" in response.json()["error"]["message"]
        assert commit(c, "janitor", "v1", retried).status_code == 200
        assert server.store().read_traces("janitor", "v1", None).num_rows == 20
