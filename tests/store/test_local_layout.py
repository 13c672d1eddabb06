"""The embedded store's files are plain, hive-partitioned Parquet that other tools read as they are."""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as ds

from ml_debugger.core import TraceSession
from ml_debugger.store import LocalStore
from ml_debugger.tasks.classification import make_classification_batch


def test_traces_read_as_one_hive_partitioned_dataset(store: LocalStore) -> None:
    session = TraceSession("m", "v1", "classification", store=store)
    for epoch in (0, 1):
        for dataset in ("train", "val"):
            session.record(
                make_classification_batch(np.zeros((4, 2)), [0, 1, 1, 0], input_hashes=list("abcd")),
                dataset_type=dataset, n_epoch=epoch,
            )
    session.wait_for_save()
    dataset = ds.dataset(store.root / "traces", format="parquet", partitioning="hive", exclude_invalid_files=True)
    table = dataset.to_table(filter=(ds.field("epoch") == 1) & (ds.field("dataset_type") == "val"))
    assert table.num_rows == 4
    assert set(table.column("model").to_pylist()) == {"m"}


def test_results_are_stored_as_parquet_tables_with_metadata(store: LocalStore) -> None:
    from ml_debugger.evaluator import Evaluator

    session = TraceSession("m", "v1", "classification", store=store)
    rng = np.random.default_rng(0)
    session.record(
        make_classification_batch(rng.normal(size=(40, 3)), rng.integers(0, 3, 40),
                                  input_hashes=[str(i) for i in range(40)]),
        dataset_type="val",
    )
    session.wait_for_save()
    Evaluator("m", "v1", store=store).request_evaluation(result_name="r1")
    directory = store.root / "results" / "model=m" / "version=v1" / "r1"
    names = sorted(p.name for p in directory.iterdir())
    assert "meta.json" in names and "metrics.parquet" in names and "samples.parquet" in names
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")], "no staging directory left"
