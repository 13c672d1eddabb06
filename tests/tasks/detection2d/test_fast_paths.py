"""The vectorised paths of loading and units against the plain computations they replace, and the
COCO and TIDE engines run at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml_debugger.tasks._object_signals import DEFAULT_OPERATING_SCORE, f1_operating_score
from ml_debugger.tasks._unit_ids import false_positive_ids, object_ids
from ml_debugger.tasks.detection2d import evaluation
from ml_debugger.tasks.detection2d.coco_metrics import coco_evaluate
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection2d.loading import ImageGroup, _label_names, _rows
from ml_debugger.tasks.detection2d.tide import tide_errors
from ml_debugger.tasks.detection2d.units import _within_image
from tests.tasks.detection2d.synthetic import random_detection_set


def _f1_by_running_sums(data, coco, t: int) -> float:
    """F1 after every detection in descending score order (stable), read at the last of ties."""
    m = coco.matching
    counted = ~m.dt_ignore[:, t]
    n_objects = int((~m.gt_ignore).sum())
    scores = data.dt_scores[counted]
    hit = (m.dt_match[counted, t] >= 0).astype(np.float64)
    if n_objects == 0 or hit.sum() == 0:
        return DEFAULT_OPERATING_SCORE
    order = np.argsort(-scores, kind="stable")
    scores, hit = scores[order], hit[order]
    f1 = 2 * np.cumsum(hit) / (np.arange(1, len(scores) + 1) + n_objects)
    f1 = np.where(np.r_[scores[1:] != scores[:-1], True], f1, -1.0)
    return float(scores[int(np.argmax(f1))])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tied", [True, False])
def test_operating_score_equals_running_sums(seed: int, tied: bool) -> None:
    data = random_detection_set(seed, tied_scores=tied)
    coco = coco_evaluate(data)
    for t in range(len(coco.iou_thresholds)):
        m = coco.matching
        counted = ~m.dt_ignore[:, t]
        found = f1_operating_score(data.dt_scores[counted], m.dt_match[counted, t] >= 0, int((~m.gt_ignore).sum()))
        assert found == _f1_by_running_sums(data, coco, t)


def _names_by_rows(rows: list) -> dict[int, str]:
    names: dict[int, str] = {}
    for row in sorted({tuple(row) for row in rows if row}):
        for label, name in enumerate(row):
            if name:
                names[label] = str(name)
    return names


@pytest.mark.parametrize(
    "rows",
    [
        [["a", "b"]] * 5,
        [["a", "b"], None, [], ["b", "a", "c"], ["a", "b"]],
        [["x", "", "z"], ["x", "y"], ["x", "y"], None],
        [None, []],
        [],
    ],
)
def test_label_names_equal_those_of_every_row(rows: list) -> None:
    array = pa.array(rows, pa.list_(pa.string()))
    column = pa.chunked_array([array[:2], array[2:]]) if len(rows) > 2 else pa.chunked_array([array])
    assert _label_names(column) == _names_by_rows(rows)
    assert list(_label_names(column).items()) == list(_names_by_rows(rows).items())


def test_rows_slice_consecutive_rows_and_take_the_others() -> None:
    table = pa.table({"x": pa.chunked_array([pa.array([0, 1, 2]), pa.array([3, 4, 5])])})
    for rows in ([1, 2, 3, 4], [0, 2, 5], [4], [3, 1]):
        taken = _rows(table, np.array(rows))
        assert taken.column("x").to_pylist() == rows
    assert _rows(table, np.array([1, 2, 3])).column("x").chunk(0).to_pylist() == [1, 2]  # a slice, not a copy


def test_unit_ids_and_positions_within_image() -> None:
    image = np.array([0, 0, 0, 2, 2, 3, 5, 5, 5, 5])
    rows = np.array([1, 2, 4, 5, 9])
    within = _within_image(image, rows)
    assert within.tolist() == [1, 2, 1, 0, 3]
    assert object_ids(within).tolist() == [f"gt:{k}" for k in within]
    assert str(object_ids(within).dtype) == "str"


def test_false_positives_are_named_by_class_and_box() -> None:
    boxes = np.array([[10, 20, 50, 80], [10, 20, 50, 80], [1, 2, 3, 4], [10, 20, 50, 80]])
    ids = false_positive_ids(np.array([0, 0, 0, 1]), np.array([3, 3, 3, 3]), boxes)
    assert ids.tolist() == ["pred:3@10,20,50,80", "pred:3@10,20,50,80#1", "pred:3@1,2,3,4", "pred:3@10,20,50,80"]


def test_concurrently_returns_results_in_order_and_raises_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    for threads in (1, 2):
        monkeypatch.setattr(evaluation, "_threads", lambda threads=threads: threads)
        assert evaluation.concurrently(lambda: 1, lambda: 2, lambda: 3) == [1, 2, 3]
        with pytest.raises(ZeroDivisionError):
            evaluation.concurrently(lambda: 1, lambda: 1 / 0)


@pytest.mark.parametrize("iou_threshold", [0.5, 0.42])
def test_coco_and_tide_at_once_equal_them_one_after_the_other(iou_threshold: float) -> None:
    data = random_detection_set(4)
    group = ImageGroup("val", 0, pd.DataFrame(), data, None, None, None, {})
    config = DetectionConfig(iou_threshold=iou_threshold)
    coco, matching, tide = evaluation.coco_and_tide(group, config)
    assert coco.stats == coco_evaluate(data).stats
    expected = coco_evaluate(data, iou_thresholds=[iou_threshold]) if iou_threshold == 0.42 else coco
    np.testing.assert_array_equal(matching.matching.dt_match, expected.matching.dt_match)
    alone = tide_errors(data, pos_threshold=iou_threshold, background_threshold=config.background_iou)
    assert tide.dap == alone.dap
    np.testing.assert_array_equal(tide.dt_error, alone.dt_error)
