"""The detection evaluation through the store and the Evaluator: metrics equal to pycocotools,
units that partition the objects and false positives, categories explained by their codes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ml_debugger.evaluator import Evaluator
from ml_debugger.evaluator.analysis.categories import RATIO_COLUMNS
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection2d.coco_metrics import coco_evaluate
from tests.tasks.detection2d.recording import as_stored, record
from tests.tasks.detection2d.synthetic import random_detection_set, run_pycocotools

STAT_KEYS = [
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
]


@pytest.mark.parametrize("seed", [0, 3])
def test_metrics_summary_equals_pycocotools(store: LocalStore, seed: int) -> None:
    data = random_detection_set(seed)
    record(store, data)
    result = Evaluator("det", "v1", store=store).request_evaluation()
    row = result.metrics_summary().iloc[0]
    reference = run_pycocotools(as_stored(data))
    np.testing.assert_allclose(row[STAT_KEYS].to_numpy(dtype=float), reference.stats, rtol=0, atol=1e-9)
    assert list(result.metrics_summary().columns) == [
        "dataset", "counts", "objects", "predictions", *STAT_KEYS, "error_proba_auroc", "error_proba_auprc"
    ]
    assert (row["counts"], row["predictions"]) == (data.n_images, data.n_dt)
    assert row["objects"] == int((~data.gt_iscrowd).sum())
    per_class = result.tables["per_class_ap"]
    expected = coco_evaluate(as_stored(data)).per_class
    pd.testing.assert_frame_equal(
        per_class[["label", "ap", "ap_50"]].reset_index(drop=True), expected[["label", "ap", "ap_50"]], check_dtype=False
    )


def test_units_are_every_object_and_every_false_positive_at_the_operating_score(store: LocalStore) -> None:
    data = random_detection_set(1)
    record(store, data)
    result = Evaluator("det", "v1", store=store).request_evaluation()
    units = result.get_samples()
    objects = units[units["unit_type"] == "object"]
    assert len(objects) == int((~data.gt_iscrowd).sum())
    assert objects.groupby("input_id").size().sum() == len(objects)
    operating = float(units["operating_score"].iloc[0])
    coco = coco_evaluate(as_stored(data))
    made = as_stored(data).dt_scores >= operating
    unmatched = (coco.matching.dt_match[:, 0] < 0) & ~coco.matching.dt_ignore[:, 0]
    assert (units["unit_type"] == "false_positive").sum() == int((made & unmatched).sum())
    found = (coco.matching.gt_match[:, 0] >= 0) & ~coco.matching.gt_ignore
    scores = np.where(found, as_stored(data).dt_scores[np.maximum(coco.matching.gt_match[:, 0], 0)], -1)
    assert objects["correct"].sum() == int((found & (scores >= operating)).sum())
    ratios = result.issue_category_summary()[list(RATIO_COLUMNS)].to_numpy()
    np.testing.assert_allclose(ratios.sum(axis=1), 1.0)


def test_categories_are_explained_by_codes(store: LocalStore) -> None:
    record(store, random_detection_set(2))
    units = Evaluator("det", "v1", store=store).request_evaluation().get_samples()
    codes = units["error_codes"].map(set)
    by = units["category"]
    assert codes[by == "aleatoric_hotspot"].map(lambda c: bool(c & {"DET010", "DET011"})).all()
    assert codes[by == "critical_hotspot"].map(lambda c: bool(c & {"DET001", "DET012"})).all()
    assert codes[by == "hotspot"].map(lambda c: "DET013" in c).all()
    assert codes[by == "operational_coverage"].map(lambda c: bool(c & {"DET013", "DET014", "DET015", "DET016"})).all()
    assert not codes[by == "stable_coverage"].map(lambda c: bool(c & {"DET013", "DET014", "DET015", "DET016"})).any()


@pytest.mark.parametrize("side", ["detections", "ground truth"])
def test_an_epoch_without_detections_or_ground_truth_evaluates(store: LocalStore, side: str) -> None:
    data = as_stored(random_detection_set(3, n_images=6))
    if side == "detections":  # an early epoch of a model that detects nothing above its threshold yet
        empty = dict(dt_image=data.dt_image[:0], dt_boxes=data.dt_boxes[:0], dt_scores=data.dt_scores[:0],
                     dt_labels=data.dt_labels[:0])
    else:
        empty = dict(gt_image=data.gt_image[:0], gt_boxes=data.gt_boxes[:0], gt_labels=data.gt_labels[:0],
                     gt_iscrowd=data.gt_iscrowd[:0], gt_area=data.gt_area[:0])
    data = dataclasses.replace(data, **empty)
    record(store, data)
    units = Evaluator("det", "v1", store=store).request_evaluation().get_samples()
    kind = "object" if side == "detections" else "false_positive"
    assert len(units) and (units["unit_type"] == kind).all()
    if side == "detections":
        assert set(units["error_type"]) == {"miss"}
