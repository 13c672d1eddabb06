"""Each task's schema is the one its tracers write and the one uploads are checked against."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.store import LocalStore
from ml_debugger.tasks import get_task, task_names
from ml_debugger.tasks.classification import make_classification_batch
from ml_debugger.tasks.detection2d import (
    Thresholds,
    make_detection_batch,
    predictions_from,
    targets_from,
)
from ml_debugger.tasks.detection3d import make_detection3d_batch
from ml_debugger.tasks.detection3d import predictions_from as predictions3d_from
from ml_debugger.tasks.detection3d import targets_from as targets3d_from


def classification_batch(n: int = 6, features: bool = True):
    rng = np.random.default_rng(0)
    return make_classification_batch(
        rng.normal(size=(n, 3)), rng.integers(0, 3, n), input_hashes=np.array([f"h{i}" for i in range(n)]),
        features=rng.normal(size=(n, 5)) if features else None,
    )


def detection_batch(features: bool = True):
    rng = np.random.default_rng(0)
    preds = predictions_from([
        {"boxes": [[0, 0, 10, 10], [5, 5, 20, 30]], "scores": [0.9, 0.3], "labels": [1, 2],
         **({"features": rng.normal(size=(2, 4))} if features else {})},
        {"boxes": np.zeros((0, 4)), "scores": [], "labels": [],
         **({"features": np.zeros((0, 4))} if features else {})},
    ])
    targets = targets_from({"boxes": [[[1, 1, 9, 9]], np.zeros((0, 4))], "labels": [[1], []]}, 2)
    return make_detection_batch(
        preds, targets, input_hashes=np.array(["a", "b"]), image_sizes=[[32, 32], [40, 20]],
        thresholds=Thresholds(0.05, 0.5, 100), label_names=["bg", "cat", "dog"],
    )


def detection3d_batch(features: bool = True):
    rng = np.random.default_rng(0)
    preds = predictions3d_from([
        {"boxes_3d": [[1, 2, 0.5, 1.8, 4.2, 1.5, 0.3, 1.0, -0.5]], "scores_3d": [0.8], "labels_3d": [0],
         "num_points": [12], **({"features": rng.normal(size=(1, 4))} if features else {})},
        {"boxes_3d": np.zeros((0, 7)), "scores_3d": [], "labels_3d": [], "num_points": [],
         "velocities": np.zeros((0, 2)), **({"features": np.zeros((0, 4))} if features else {})},
    ])
    targets = targets3d_from({
        "boxes_3d": [[[1, 2, 0.5, 1.8, 4.0, 1.5, 0.2]], np.zeros((0, 7))], "labels_3d": [[0], []],
        "velocities": [[[np.nan, np.nan]], np.zeros((0, 2))],
    }, 2)
    return make_detection3d_batch(
        preds, targets, input_hashes=np.array(["a", "b"]), pc_range=[-50, -50, -5, 50, 50, 3],
        thresholds=Thresholds(0.1, None, 300), label_names=["car"],
    )


BATCHES = {"classification": classification_batch, "detection2d": detection_batch, "detection3d": detection3d_batch}


def written_part(store: LocalStore, task: str, batch) -> pa.Table:
    session = TraceSession("m", "v", task, store=store)
    session.record(batch, dataset_type="val", n_epoch=0)
    session.wait_for_save()
    session.close()
    [path] = (store.root / "traces").rglob("*.parquet")
    return pq.read_table(path)


def test_every_task_has_a_batch_fixture_here() -> None:
    assert sorted(BATCHES) == task_names()


@pytest.mark.parametrize("task", sorted(BATCHES))
@pytest.mark.parametrize("features", [True, False])
def test_written_parts_pass_their_task_schema(store: LocalStore, task: str, features: bool) -> None:
    table = written_part(store, task, BATCHES[task](features=features))
    get_task(task).schema.check(table)


def replaced(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, array)


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        (lambda t: replaced(t, "label", pc.cast(t.column("label"), pa.string())), "column 'label' is string"),
        (lambda t: replaced(t, "scores", pa.array(t.column("scores").to_pylist(), pa.list_(pa.float64()))),
         "column 'scores' is list<item: double>"),
        (lambda t: replaced(t, "input_id", pa.nulls(len(t), pa.string())), "column 'input_id' has 6 null values"),
        (lambda t: replaced(t, "input_id", pa.array([""] * len(t))), "column 'input_id' has empty strings"),
        (lambda t: replaced(t, "label", pa.array([0, 1, 2, 3, 0, 0], pa.int64())), "column 'label' has values in \\[0, 3\\]"),
        (lambda t: replaced(t, "score_type", pa.array(["odds"] * len(t))), "column 'score_type' has \\['odds'\\]"),
        (lambda t: t.append_column("colour", pa.array(["red"] * len(t))), "unknown column 'colour'"),
        (lambda t: t.drop_columns(["loss"]), "missing column 'loss'"),
        (lambda t: replaced(t, "rank", pa.array([-1] * len(t), pa.int32())), "column 'rank' has negative values"),
    ],
)
def test_poisoned_classification_parts_name_the_column(store: LocalStore, poison, message: str) -> None:
    table = poison(written_part(store, "classification", classification_batch()))
    with pytest.raises(TraceValidationError, match=message):
        get_task("classification").schema.check(table)


def boxes(rows: list[list[list[float]]]) -> pa.Array:
    return pa.array(rows, pa.list_(pa.list_(pa.float32(), 4)))


@pytest.mark.parametrize(
    ("poison", "message"),
    [
        (lambda t: replaced(t, "gt_boxes", boxes([[[5, 5, 1, 9]], []])), "'gt_boxes' has boxes with x2 < x1"),
        (lambda t: replaced(t, "pred_boxes", boxes([[[0, 0, 1, 1], [0, 0, float("nan"), 1]], []])),
         "'pred_boxes' has NaN"),
        (lambda t: replaced(t, "pred_scores", pa.array([[0.9], []], pa.list_(pa.float32()))),
         "'pred_scores' has a different number of items than 'pred_boxes'"),
        (lambda t: replaced(t, "gt_labels", pa.array([[-1], []], pa.list_(pa.int64()))), "'gt_labels' has negative"),
        (lambda t: replaced(t, "image_width", pa.array([0, 3], pa.int32())), "'image_width' has values <= 0"),
        (lambda t: replaced(t, "gt_labels", pa.array([[None], []], pa.list_(pa.int64()))),
         "'gt_labels' has null items inside its lists"),
    ],
)
def test_poisoned_detection_parts_name_the_column(store: LocalStore, poison, message: str) -> None:
    table = poison(written_part(store, "detection2d", detection_batch()))
    with pytest.raises(TraceValidationError, match=message):
        get_task("detection2d").schema.check(table)
