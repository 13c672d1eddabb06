"""The framework-free parts shared by the callbacks: failure policy, scheduling, batch layouts."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from ml_debugger.exceptions import ConfigurationError, StoreError, TraceValidationError
from ml_debugger.integrations._common import (
    RowTag,
    TracingGuard,
    check_every_n,
    dataset_type_for,
    is_due,
    open_session,
    record_rows,
    split_batch,
)
from ml_debugger.store import LocalStore


def test_importing_integrations_imports_no_framework() -> None:
    code = (
        "import sys, ml_debugger.integrations, ml_debugger.integrations._common;"
        "print(','.join(m for m in ('torch', 'lightning', 'keras', 'transformers', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_guard_warns_once_and_keeps_going(caplog: pytest.LogCaptureFixture) -> None:
    guard = TracingGuard("test")

    def fail_three_times() -> None:
        for _ in range(3):
            with guard("writing"):
                raise StoreError("disk gone")

    with pytest.warns(RuntimeWarning, match=r"ml-debugger \(test\): writing failed: StoreError: disk gone") as record:
        fail_three_times()
    assert len(record) == 1
    assert guard.failures == 3
    assert any(r.exc_info for r in caplog.records), "the first failure is logged with its traceback"


def test_guard_strict_raises() -> None:
    with pytest.raises(StoreError), TracingGuard("test", strict=True)("writing"):
        raise StoreError("disk gone")


def test_guard_lets_success_through() -> None:
    guard = TracingGuard("test")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with guard("nothing"):
            value = 1
    assert value == 1 and guard.failures == 0


@pytest.mark.parametrize(("every", "traced"), [(1, [0, 1, 2, 3]), (2, [1, 3]), (3, [2]), (None, []), (0, [])])
def test_is_due(every: int | None, traced: list[int]) -> None:
    assert [e for e in range(4) if is_due(e, every)] == traced


def test_check_every_n_rejects_bad_values() -> None:
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ConfigurationError, match="every_n"):
            check_every_n(bad, "every_n_epochs")


def test_dataset_type_names() -> None:
    assert [dataset_type_for(i, None) for i in range(3)] == ["val", "val_1", "val_2"]
    assert dataset_type_for(1, ["val", "test"]) == "test"
    with pytest.raises(ConfigurationError, match="dataset_names has 1 names"):
        dataset_type_for(1, ["val"])


def test_split_batch_layouts() -> None:
    x, y, ids = np.zeros((2, 3)), np.array([0, 1]), np.array([7, 8])
    assert split_batch((x, y))[2] is None
    assert split_batch([x, y, ids])[2] is ids
    inputs, labels, got_ids = split_batch({"image": x, "target": y, "index": ids})
    assert inputs is x and labels is y and got_ids is ids
    tokens = {"input_ids": x, "attention_mask": x, "labels": y}
    inputs, labels, got_ids = split_batch(tokens)
    assert sorted(inputs) == ["attention_mask", "input_ids"] and labels is y and got_ids is None


def test_split_batch_says_what_it_got() -> None:
    with pytest.raises(TraceValidationError, match="no labels under any of"):
        split_batch({"x": 1})
    with pytest.raises(TraceValidationError, match="batch of type list with 4 items.*batch_to_trace"):
        split_batch([1, 2, 3, 4])


def test_open_session_needs_names(store: LocalStore) -> None:
    with pytest.raises(ConfigurationError, match="model_name and version_name"):
        open_session("m", None, store=store, strict=False)


def test_record_rows_hashes_inputs(store: LocalStore) -> None:
    session = open_session("m", "v1", store=store, strict=False)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    record_rows(session, RowTag("val", 2, 5), scores=np.eye(3), labels=np.arange(3), inputs=[x], ids=np.array([4, 5, 6]))
    session.wait_for_save()
    rows = store.read_traces("m", "v1", None).to_pandas()
    assert rows["input_id"].tolist() == ["4", "5", "6"]
    assert rows["epoch"].unique().tolist() == [2] and rows["global_step"].unique().tolist() == [5]
    assert rows["input_hash"].nunique() == 3
    session.close()
