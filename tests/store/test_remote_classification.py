"""The reference classification sample against a real server equals the embedded mode."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.evaluator import Evaluator
from ml_debugger.exceptions import ConfigurationError, NoDataError, ResultExistsError, StoreError
from ml_debugger.store import open_store
from ml_debugger.store.remote import RemoteStore
from tests.server.live import LiveServer
from tests.server.parts import make_batch

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'ml-debugger[server]'")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reference_classification.py"


def run_example() -> None:
    spec = importlib.util.spec_from_file_location("reference_classification", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()


@pytest.fixture
def remote_env(live_server: LiveServer, api_key: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    monkeypatch.setenv("MLD_API_ENDPOINT", live_server.url)
    monkeypatch.setenv("MLD_API_KEY", api_key)
    yield live_server


def assert_same_result(remote, local) -> None:
    assert sorted(remote.tables) == sorted(local.tables)
    for name in local.tables:
        pd.testing.assert_frame_equal(remote.tables[name], local.tables[name], check_exact=True, obj=name)
    ignored = {"created_at", "result_name"}
    assert {k: v for k, v in remote.meta.items() if k not in ignored} == {
        k: v for k, v in local.meta.items() if k not in ignored
    }


@pytest.mark.slow
def test_reference_sample_on_a_server_gives_the_embedded_numbers(
    remote_env: LiveServer, mld_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_example()  # unchanged: MLD_API_ENDPOINT / MLD_API_KEY point it at the server
    assert "Metrics" in capsys.readouterr().out
    assert isinstance(open_store(), RemoteStore)
    remote_results = Evaluator("my_model", "v1").list_results()
    assert len(remote_results) == 1
    remote = Evaluator("my_model", "v1").get_result(remote_results["result_name"][0])
    assert remote_env.store().list_results("my_model", "v1")["result_name"].tolist() == [remote.name]
    assert not any((mld_home / "spool").rglob("*.parquet")), "the spool is empty once everything is uploaded"

    monkeypatch.delenv("MLD_API_ENDPOINT")
    monkeypatch.delenv("MLD_API_KEY")
    monkeypatch.setenv("MLD_HOME", str(mld_home.parent / "embedded"))
    run_example()
    local_results = Evaluator("my_model", "v1").list_results()
    local = Evaluator("my_model", "v1").get_result(local_results["result_name"][0])

    assert_same_result(remote, local)
    pd.testing.assert_frame_equal(remote.metrics_summary(), local.metrics_summary())
    pd.testing.assert_frame_equal(remote.issue_category_summary(), local.issue_category_summary())
    pd.testing.assert_frame_equal(remote.get_view(), local.get_view())
    assert list(remote_results.columns) == list(local_results.columns)
    pd.testing.assert_frame_equal(remote_results.drop(columns=["result_name", "created_at"]),
                                  local_results.drop(columns=["result_name", "created_at"]))


def test_remote_evaluator_errors_are_the_embedded_ones(remote_env: LiveServer, tmp_path: Path) -> None:
    session = TraceSession("errs", "v1", "classification")
    for epoch in (0, 1):
        session.record(make_batch(np.arange(120), seed=epoch), dataset_type="val", n_epoch=epoch)
    session.wait_for_save()
    evaluator = Evaluator("errs", "v1")
    with pytest.raises(ConfigurationError, match="unknown n_epoch 'lastest'"):
        evaluator.request_evaluation(n_epoch="lastest")
    with pytest.raises(ConfigurationError, match="unknown analysis option 'k_neighbours'"):
        evaluator.request_evaluation(k_neighbours=3)
    with pytest.raises(NoDataError, match=r"epoch 7 has no committed traces; committed epochs: \[0, 1\]"):
        evaluator.request_evaluation(n_epoch=7)
    with pytest.raises(NoDataError, match="has no version 'v9'"):
        Evaluator("errs", "v9").request_evaluation()
    with pytest.raises(NoDataError, match="unknown model 'nobody'"):
        Evaluator("nobody", "v1").list_results()

    first = evaluator.request_evaluation(result_name="first", n_epoch=None, k_neighbors=5)
    assert first.epochs == [0, 1] and first.meta["config"]["k_neighbors"] == 5
    with pytest.raises(ResultExistsError, match="a result named 'first' already exists"):
        evaluator.request_evaluation(result_name="first")
    with pytest.raises(NoDataError, match="no result named 'second'"):
        evaluator.get_result("second")
    with pytest.raises(StoreError, match="a server stores the results"):
        evaluator.store.save_result("errs", "v1", "x", first)
    assert evaluator.list_results()["result_name"].tolist() == ["first"]
    traces = evaluator.store.read_traces("errs", "v1", [1])
    assert traces.num_rows == 120 and set(traces.column("epoch").to_pylist()) == {1}
