"""Uploads survive a real server that is down, killed, slow or failing: every row lands exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.store.api import Backoff
from ml_debugger.store.remote import RemoteStore
from tests.server.live import LiveServer
from tests.server.parts import make_batch

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
FAST = Backoff(base=0.05, cap=0.5)
ROOT = Path(__file__).resolve().parents[2]


def remote(server: LiveServer, key: str, home: Path, **kwargs) -> RemoteStore:
    kwargs.setdefault("backoff", FAST)
    return RemoteStore(server.url, key, home=home, **kwargs)


def trace(session: TraceSession, epoch: int, n: int, batch: int = 50) -> None:
    for start in range(0, n, batch):
        session.record(make_batch(np.arange(start, start + batch), seed=start), dataset_type="val", n_epoch=epoch)


def assert_exactly_once(server: LiveServer, model: str, rows_per_epoch: dict[int, int]) -> None:
    store = server.store()
    assert store.committed_epochs(model, "v1") == sorted(rows_per_epoch)
    table = store.read_traces(model, "v1", None).to_pandas()
    for epoch, n in rows_per_epoch.items():
        ids = sorted(table.loc[table["epoch"] == epoch, "input_id"].astype(int))
        assert ids == list(range(n)), f"epoch {epoch}: {len(ids)} rows for {n} traced"


def spooled_parts(home: Path) -> list[Path]:
    return list((home / "spool").rglob("*.parquet"))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_server_down_when_tracing_starts_then_started(make_server, tmp_path: Path) -> None:
    server = make_server()
    key = server.create_key()
    session = TraceSession("late", "v1", "classification", store=remote(server, key, tmp_path / "c"),
                           rows_per_part=100)
    trace(session, 0, 1000)  # the server is down: registration and parts wait in the spool
    session.flush()
    assert len(spooled_parts(tmp_path / "c")) == 10
    starter = threading.Thread(target=server.start)
    starter.start()
    session.wait_for_save()  # returns once the epoch is committed on the server
    starter.join()
    assert_exactly_once(server, "late", {0: 1000})
    assert spooled_parts(tmp_path / "c") == []


def test_server_killed_and_restarted_mid_upload(make_server, tmp_path: Path) -> None:
    server = make_server(faults={"delay": 0.1, "delay_before": 1.0}).start()  # slow writes: uploads take a while
    key = server.create_key()
    session = TraceSession("killed", "v1", "classification", store=remote(server, key, tmp_path / "c"),
                           rows_per_part=50)
    trace(session, 0, 2000)
    session.flush()
    wait_until(lambda: len(list((server.home / "traces").rglob("*.parquet"))) >= 5, 60, "the first parts to land")
    server.kill()
    trace(session, 1, 500)  # training goes on while the server is gone
    server.start()
    session.wait_for_save()
    assert_exactly_once(server, "killed", {0: 2000, 1: 500})


@pytest.mark.parametrize("faults", [
    pytest.param({"error_before": 0.25, "error_after": 0.25, "seed": 1}, id="5xx"),
    pytest.param({"delay": 1.2, "delay_before": 0.1, "delay_after": 0.2, "seed": 2}, id="slow"),
])
def test_failing_or_slow_server(make_server, tmp_path: Path, faults: dict) -> None:
    server = make_server(faults=faults).start()
    key = server.create_key()
    store = remote(server, key, tmp_path / "c", request_timeout=1.0)  # slow answers time out and are retried
    session = TraceSession("flaky", "v1", "classification", store=store, rows_per_part=100)
    for epoch in (0, 1):
        trace(session, epoch, 1000)
        session.wait_for_save(epoch)
    assert_exactly_once(server, "flaky", {0: 1000, 1: 1000})
    assert spooled_parts(tmp_path / "c") == []
    assert not any((tmp_path / "c" / "spool").rglob("commits/*.json"))


def test_upload_timeout_warns_and_uploads_continue_in_the_background(make_server, tmp_path: Path) -> None:
    server = make_server()
    key = server.create_key()
    store = remote(server, key, tmp_path / "c", upload_timeout=0.5)
    session = TraceSession("patient", "v1", "classification", store=store, rows_per_part=200)
    trace(session, 0, 600)
    started = time.monotonic()
    with pytest.warns(UserWarning, match=r"patient/v1 epochs \[0\] \(600 rows\) is not yet committed") as caught:
        session.wait_for_save()
    assert time.monotonic() - started < 10
    message = str(caught[0].message)
    assert "3 part files" in message and str(store.spool.root) in message and "mldebugger sync" in message
    assert "cannot reach the ml-debugger server" in message
    trace(session, 1, 400)  # training never noticed
    with pytest.warns(UserWarning, match="not yet committed"):
        session.wait_for_save()
    server.start()
    wait_until(lambda: not store.pending_uploads(), 60, "the background uploads")
    assert_exactly_once(server, "patient", {0: 600, 1: 400})


CHILD = r"""
import sys, numpy as np
from ml_debugger.core import TraceSession
from tests.server.parts import make_batch

marker = sys.argv[1]
session = TraceSession("crashed", "v1", "classification", rows_per_part=100)
for epoch, n in ((0, 700), (1, 300)):
    for start in range(0, n, 50):
        session.record(make_batch(np.arange(start, start + 50), seed=start), dataset_type="val", n_epoch=epoch)
    if epoch == 0:
        session.wait_for_save()  # times out: the server is down
    else:
        session.flush()
open(marker, "w").write("ready")
import time; time.sleep(600)
"""


def test_sync_uploads_the_spool_of_a_killed_process(make_server, tmp_path: Path) -> None:
    server = make_server()
    key = server.create_key()
    marker, home = tmp_path / "marker", tmp_path / "client"
    env = dict(os.environ, MLD_HOME=str(home), MLD_API_ENDPOINT=server.url, MLD_API_KEY=key,
               MLD_UPLOAD_TIMEOUT="0.5", PYTHONPATH=os.pathsep.join(str(ROOT / d) for d in ("src", ".")))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(marker)], env=env, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: marker.exists() or child.poll() is not None, 120, "the tracing process")
        assert child.poll() is None, "the tracing process died on its own"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=30)
    assert "not yet committed" in stderr.decode()
    assert len(spooled_parts(home)) == 10

    server.start()
    result = subprocess.run(
        [sys.executable, "-m", "ml_debugger.cli", "sync", "--timeout", "60"], env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{server.url}: sent 12 of 12 spooled items (10 parts, 1 commits)" in result.stdout
    assert_exactly_once(server, "crashed", {0: 700})  # epoch 1 was written but never committed by the user
    assert spooled_parts(home) == []
    again = subprocess.run([sys.executable, "-m", "ml_debugger.cli", "sync"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert "sent 0 of 0" in again.stdout
