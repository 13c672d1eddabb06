"""The Compare page's data: the shared comparison arranged per dataset, on the known regression."""

from __future__ import annotations

import pytest

from ml_debugger.server.dashboard.compare_page import compare_view, direction
from ml_debugger.server.dashboard.results import ResultReader, ResultRef
from ml_debugger.store import LocalStore
from tests.dashboard.data import MODEL, StoreData


@pytest.fixture(scope="module")
def reader(store_data: StoreData) -> ResultReader:
    return ResultReader(LocalStore(store_data.home))


def refs(data: StoreData) -> list[ResultRef]:
    return [ResultRef(MODEL, "v2", data.v2_latest), ResultRef(MODEL, "v1", data.v1_all)]


def test_the_oldest_is_the_baseline_and_the_regression_shows(reader: ResultReader, store_data: StoreData) -> None:
    view = compare_view(reader, refs(store_data), dataset=None)
    assert [r.version for r in view.refs] == ["v1", "v2"] and view.dataset == "val"
    accuracy = next(row for row in view.metrics if (row["dataset"], row["name"]) == ("val", "accuracy"))
    (cell,) = accuracy["values"]
    assert cell["delta"] < 0 and cell["better"] < 0
    (other,) = view.others
    assert other["broken"]["total"] > other["fixed"]["total"]
    assert other["overview"][0]["newly_broken"] == other["broken"]["total"]
    broken = other["broken"]["rows"]
    assert sum(u["baseline_label"] == 3 and u["candidate_prediction"] == 8 for u in broken) > len(broken) / 2
    assert other["transitions"] is not None and "dataset" not in other["broken"]["columns"]
    shares = [row for row in view.categories if row["dataset"] == "val"]
    assert sum(row["baseline"] for row in shares) == pytest.approx(1)


def test_another_dataset_and_the_picker(reader: ResultReader, store_data: StoreData) -> None:
    view = compare_view(reader, refs(store_data), dataset="train")
    assert view.dataset == "train" and view.datasets == ["train", "val"]
    assert {c["ref"] for c in view.choices} >= {str(r) for r in refs(store_data)}
    alone = compare_view(reader, refs(store_data)[:1], dataset=None)
    assert alone.others == [] and alone.choices


def test_metric_directions() -> None:
    assert [direction(m) for m in ("accuracy", "net_entropy_loss", "net_entropy", "counts", "map", "mate", "nds",
                                   "error_proba_auroc")] == [1, -1, -1, 0, 1, -1, 1, 1]
