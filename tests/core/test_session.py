"""TraceSession: epoch rules, commit visibility, back-pressure and writer failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import (
    ConfigurationError,
    InvalidNameError,
    NoDataError,
    StoreError,
    TraceValidationError,
    WriterError,
)
from ml_debugger.store import LocalStore, PartInfo, PartKey
from ml_debugger.tasks.classification import make_classification_batch


def make_batch(ids: range, n_classes: int = 3, nan_rows: int = 0):
    rng = np.random.default_rng(len(ids))
    scores = rng.normal(size=(len(ids), n_classes))
    scores[:nan_rows] = np.nan
    return make_classification_batch(
        scores, rng.integers(0, n_classes, len(ids)),
        input_hashes=np.array([f"h{i}" for i in ids], dtype=object),
        input_ids=np.array(list(ids)), features=rng.normal(size=(len(ids), 8)),
    )


def session(store: LocalStore, **kwargs) -> TraceSession:
    return TraceSession("model", "v1", "classification", store=store, **kwargs)


def test_rows_become_visible_only_after_commit(store: LocalStore) -> None:
    s = session(store)
    s.record(make_batch(range(10)), dataset_type="val", n_epoch=2)
    s.flush()
    assert store.committed_epochs("model", "v1") == []
    assert list(Path(store.root, "traces").rglob("*.parquet")), "flush writes part files"
    s.wait_for_save(n_epoch=2)
    assert store.committed_epochs("model", "v1") == [2]
    table = store.read_traces("model", "v1", [2])
    assert table.num_rows == 10
    assert table.column("epoch").to_pylist() == [2] * 10
    assert set(table.column("input_id").to_pylist()) == {str(i) for i in range(10)}
    assert table.column("run_id").to_pylist()[0] == s.run_id


def test_untagged_rows_are_epoch_zero_and_save_without_epoch_commits_all(store: LocalStore) -> None:
    s = session(store)
    s.record(make_batch(range(5)), dataset_type="train")
    s.record(make_batch(range(5)), dataset_type="val", n_epoch=3)
    s.wait_for_save()
    assert store.committed_epochs("model", "v1") == [0, 3]


def test_wait_for_save_with_another_epoch_than_traced_is_an_error(store: LocalStore) -> None:
    s = session(store)
    s.record(make_batch(range(5)), dataset_type="val", n_epoch=1)
    with pytest.raises(ConfigurationError, match=r"n_epoch=4.*epochs waiting to be saved: \[1\]"):
        s.wait_for_save(n_epoch=4)
    s.wait_for_save(n_epoch=1)
    s.wait_for_save(n_epoch=1)  # nothing new: a no-op
    assert store.committed_epochs("model", "v1") == [1]


def test_saving_one_epoch_leaves_the_other_pending(store: LocalStore) -> None:
    s = session(store)
    s.record(make_batch(range(5)), dataset_type="val", n_epoch=0)
    s.record(make_batch(range(5)), dataset_type="val", n_epoch=1)
    s.wait_for_save(n_epoch=1)
    assert store.committed_epochs("model", "v1") == [1]
    s.wait_for_save(n_epoch=0)
    assert store.committed_epochs("model", "v1") == [0, 1]


@pytest.mark.parametrize("n_epoch", [-1, 1.5, "3", True])
def test_bad_epoch_values_are_rejected(store: LocalStore, n_epoch: object) -> None:
    s = session(store)
    with pytest.raises(ConfigurationError, match="n_epoch must be a non-negative int or None"):
        s.record(make_batch(range(3)), dataset_type="val", n_epoch=n_epoch)
    with pytest.raises(ConfigurationError, match="n_epoch must be a non-negative int or None"):
        s.wait_for_save(n_epoch=n_epoch)


@pytest.mark.parametrize("name", ["../evil", "a/b", "", " v1", "x" * 129, "..", "a..b"])
def test_bad_names_are_rejected(store: LocalStore, name: str) -> None:
    with pytest.raises(InvalidNameError):
        TraceSession(name, "v1", "classification", store=store)
    with pytest.raises(InvalidNameError):
        TraceSession("model", name, "classification", store=store)
    with pytest.raises(InvalidNameError, match="dataset_type"):
        session(store).record(make_batch(range(3)), dataset_type=name or "a b")


def test_nonfinite_outputs_warn_once_and_are_recorded(store: LocalStore) -> None:
    s = session(store)
    with pytest.warns(UserWarning, match="2 of 5 rows .* NaN or infinite"):
        s.record(make_batch(range(5), nan_rows=2), dataset_type="val")
    s.record(make_batch(range(5, 10), nan_rows=1), dataset_type="val")  # no second warning
    s.wait_for_save()
    assert store.read_traces("model", "v1", None).num_rows == 10


def test_nonfinite_outputs_raise_when_strict(store: LocalStore) -> None:
    with pytest.raises(TraceValidationError, match="strict=True"):
        session(store, strict=True).record(make_batch(range(5), nan_rows=1), dataset_type="val")


def test_a_model_keeps_its_task(store: LocalStore) -> None:
    session(store)
    with pytest.raises(StoreError, match="registered for task 'classification'"):
        TraceSession("model", "v2", "detection2d", store=store)


def test_unknown_tasks_are_refused_with_the_valid_names(store: LocalStore) -> None:
    with pytest.raises(ConfigurationError, match="unknown task 'detection'; expected one of: classification, detection2d, detection3d"):
        TraceSession("model", "v1", "detection", store=store)


class SlowStore(LocalStore):
    """A real local store whose writes take a while, to make the writer fall behind."""

    def __init__(self, root: Path, delay: float) -> None:
        super().__init__(root)
        self.delay = delay
        self.writes = 0

    def write_part(self, key: PartKey, table, part_name: str, run_id: str, rank: int) -> PartInfo:
        time.sleep(self.delay)
        self.writes += 1
        return super().write_part(key, table, part_name, run_id, rank)


def test_back_pressure_bounds_the_queue_instead_of_memory(tmp_path: Path) -> None:
    store = SlowStore(tmp_path / "slow", delay=0.2)
    s = TraceSession("model", "v1", "classification", store=store, rows_per_part=1, max_queued_batches=2)
    started = time.monotonic()
    for i in range(6):
        s.record(make_batch(range(i * 2, i * 2 + 2)), dataset_type="val")
    elapsed = time.monotonic() - started
    # 6 batches, 2 may wait in the queue: the producer must have waited for about 3 writes.
    assert elapsed >= 0.4, elapsed
    s.wait_for_save()
    assert store.read_traces("model", "v1", None).num_rows == 12
    assert store.writes == 6


def test_a_writer_failure_is_raised_at_the_next_call(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "home")
    s = TraceSession("model", "v1", "classification", store=store)
    (tmp_path / "home" / "traces").write_text("not a directory")  # every part write now fails
    s.record(make_batch(range(4)), dataset_type="val")
    with pytest.raises(WriterError, match="trace writer failed"):
        s.wait_for_save()
    with pytest.raises(WriterError):
        s.record(make_batch(range(4)), dataset_type="val")


def test_parts_are_plain_hive_partitioned_parquet(store: LocalStore) -> None:
    s = session(store)
    s.record(make_batch(range(7)), dataset_type="val", n_epoch=1, global_step=40)
    s.wait_for_save()
    files = list(Path(store.root, "traces").rglob("*.parquet"))
    assert len(files) == 1
    rel = files[0].relative_to(store.root).parts
    assert rel[:5] == ("traces", "model=model", "version=v1", "dataset_type=val", "epoch=1")
    table = pq.read_table(files[0])
    assert table.column("global_step").to_pylist() == [40] * 7
    assert table.schema.field("features").type.list_size == 8


def test_concurrent_sessions_of_one_version_keep_every_row(store: LocalStore) -> None:
    def trace(rank: int) -> None:
        s = TraceSession("model", "v1", "classification", store=LocalStore(store.root), rank=rank)
        for i in range(5):
            s.record(make_batch(range(rank * 100 + i * 10, rank * 100 + i * 10 + 10)), dataset_type="val")
        s.wait_for_save()

    threads = [threading.Thread(target=trace, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    table = store.read_traces("model", "v1", None)
    assert table.num_rows == 150
    assert sorted(set(table.column("rank").to_pylist())) == [0, 1, 2]


def test_reading_an_unknown_model_or_version_is_a_clear_error(store: LocalStore) -> None:
    with pytest.raises(NoDataError, match="unknown model 'nope'"):
        store.committed_epochs("nope", "v1")
    session(store)
    with pytest.raises(NoDataError, match="has no version 'v9'; known versions: \\['v1'\\]"):
        store.committed_epochs("model", "v9")
