"""2-D detection traces through a real server: uploaded, checked, evaluated as a server job, equal
to the same evaluation in embedded mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore, open_store
from ml_debugger.store.remote import RemoteStore
from tests.server.live import LiveServer
from tests.store.test_remote_classification import assert_same_result, remote_env  # noqa: F401 - fixture
from tests.tasks.detection2d.recording import record
from tests.tasks.detection2d.synthetic import random_detection_set

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")


def test_detection_on_a_server_gives_the_embedded_result(remote_env: LiveServer, tmp_path: Path) -> None:
    data = random_detection_set(4)
    remote = open_store()
    assert isinstance(remote, RemoteStore)
    record(remote, data)
    on_server = Evaluator("det", "v1", store=remote).request_evaluation(result_name="r")
    assert on_server.meta["task"] == "detection2d"
    assert remote_env.store().list_results("det", "v1")["result_name"].tolist() == ["r"]

    local = LocalStore(tmp_path / "embedded")
    record(local, data)
    Evaluator("det", "v1", store=local).request_evaluation(result_name="r")
    assert_same_result(on_server, Evaluator("det", "v1", store=local).get_result("r"))
