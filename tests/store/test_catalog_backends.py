"""The catalog behaves the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ml_debugger.exceptions import NoDataError, ResultExistsError, StoreError
from ml_debugger.store.base import PartInfo, PartKey
from ml_debugger.store.catalog import Catalog


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "sqlite":
        return Catalog(tmp_path / "catalog.sqlite")
    return Catalog(request.getfixturevalue("database_url"))


def part(name: str, epoch: int = 0, rows: int = 10) -> PartInfo:
    key = PartKey("m", "v1", "val", epoch)
    path = f"traces/model=m/version=v1/dataset_type=val/epoch={epoch}/{name}.parquet"
    return PartInfo(key, path, rows, 100, "run", 0)


def test_versions_parts_and_results(catalog: Catalog) -> None:
    catalog.register_version("m", "v1", "classification")
    catalog.register_version("m", "v1", "classification")  # idempotent
    with pytest.raises(StoreError, match="registered for task 'classification'"):
        catalog.register_version("m", "v2", "detection")
    with pytest.raises(NoDataError, match=r"no version 'v2'; known versions: \['v1'\]"):
        catalog.require_version("m", "v2")
    assert catalog.model_task("m") == "classification"
    catalog.commit_parts([part("a"), part("b", epoch=3)])
    catalog.commit_parts([part("a"), part("b", epoch=3)])  # committing twice is a no-op
    assert catalog.committed_epochs("m", "v1") == [0, 3]
    assert len(catalog.committed_paths("m", "v1", None)) == 2
    meta = {"result_name": "r", "created_at": "2024-01-01T00:00:00+00:00", "epochs": [0]}
    catalog.add_result("m", "v1", "r", meta)
    with pytest.raises(ResultExistsError):
        catalog.add_result("m", "v1", "r", meta)
    assert catalog.results("m", "v1") == [meta] and catalog.result_meta("m", "v1", "r") == meta


def test_keys_and_jobs(catalog: Catalog) -> None:
    catalog.add_key("0123456789ab", "ci", "f" * 64)
    assert catalog.active_key_hash("0123456789ab") == "f" * 64
    assert catalog.revoke_key("0123456789ab") and not catalog.revoke_key("0123456789ab")
    assert catalog.active_key_hash("0123456789ab") is None
    assert catalog.keys()[0]["revoked_at"] is not None

    catalog.register_version("m", "v1", "classification")
    job, new = catalog.add_job("abcdef0123", "m", "v1", {"result_name": None, "n_epoch": "latest", "thresholds": {}})
    assert new and job["status"] == "queued" and job["request"]["n_epoch"] == "latest"
    assert catalog.add_job("abcdef0123", "m", "v1", {})[1] is False  # a retried submission
    catalog.update_job("abcdef0123", "running")
    assert catalog.interrupt_jobs("restarted") == 1
    assert catalog.job("abcdef0123")["error_message"] == "restarted"


def test_concurrent_registration_and_commits(catalog: Catalog) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            catalog.register_version("m", "v1", "classification")
            catalog.register_version("m", f"other{i % 3}", "classification")
            catalog.commit_parts([part(f"p{i}"), part("shared")])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(catalog.known_paths()) == 9
