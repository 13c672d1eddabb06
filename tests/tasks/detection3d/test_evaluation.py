"""The 3-D evaluation through the store and the Evaluator: metrics equal to the nuScenes devkit,
units that partition the evaluated objects and false positives, categories explained by codes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ml_debugger.evaluator import Evaluator
from ml_debugger.evaluator.analysis.categories import RATIO_COLUMNS
from ml_debugger.store import LocalStore
from tests.tasks.detection3d.recording import as_stored, record
from tests.tasks.detection3d.synthetic import CLASS_NAMES, random_frame_set, run_devkit

MEAN_KEYS = {"mate": "trans_err", "mase": "scale_err", "maoe": "orient_err", "mave": "vel_err", "maae": "attr_err"}


@pytest.mark.parametrize("seed", [0, 2])
def test_metrics_summary_equals_the_nuscenes_devkit(store: LocalStore, seed: int) -> None:
    frames = as_stored(random_frame_set(seed))
    record(store, frames, CLASS_NAMES)
    result = Evaluator("det3d", "v1", store=store).request_evaluation()
    row = result.metrics_summary().iloc[0]
    assert list(result.metrics_summary().columns) == [
        "dataset", "counts", "objects", "predictions", "map", "nds", "mate", "mase", "maoe", "mave", "maae",
        "error_proba_auroc", "error_proba_auprc",
    ]
    metrics, _, gt, pred, _ = run_devkit(frames, CLASS_NAMES)
    summary = metrics.serialize()
    np.testing.assert_allclose(row["map"], summary["mean_ap"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(row["nds"], summary["nd_score"], rtol=0, atol=1e-9)
    for key, name in MEAN_KEYS.items():
        np.testing.assert_allclose(row[key], summary["tp_errors"][name], rtol=0, atol=1e-9)
    assert row["counts"] == frames.n_frames and row["predictions"] == frames.n_dt
    assert row["objects"] == len(gt.all)
    per_class = result.tables["per_class"].set_index("name")
    for name in ("car", "pedestrian", "barrier"):
        np.testing.assert_allclose(per_class.loc[name, "ap"], metrics.mean_dist_aps[name], rtol=0, atol=1e-9)


def test_units_partition_and_categories_are_explained(store: LocalStore) -> None:
    frames = as_stored(random_frame_set(1))
    record(store, frames, CLASS_NAMES)
    result = Evaluator("det3d", "v1", store=store).request_evaluation()
    units = result.get_samples()
    np.testing.assert_allclose(result.issue_category_summary()[list(RATIO_COLUMNS)].sum(axis=1), 1.0)
    codes = units["error_codes"].map(set)
    by = units["category"]
    assert codes[by == "aleatoric_hotspot"].map(lambda c: bool(c & {"D3D014", "D3D015"})).all()
    assert codes[by == "critical_hotspot"].map(lambda c: bool(c & {"D3D001", "D3D016"})).all()
    assert codes[by == "hotspot"].map(lambda c: "D3D017" in c).all()
    fragile = {"D3D017", "D3D018", "D3D019", "D3D020"}
    assert codes[by == "operational_coverage"].map(lambda c: bool(c & fragile)).all()
    assert not codes[by == "stable_coverage"].map(lambda c: bool(c & fragile)).any()
    assert set(units.loc[units["unit_type"] == "object", "error_type"]) <= {"none", "low_score", "cls", "loc", "miss"}
    assert set(units.loc[units["unit_type"] == "false_positive", "error_type"]) <= {"cls", "dupe", "loc", "bkg"}


@pytest.mark.parametrize("side", ["detections", "ground truth"])
def test_an_epoch_without_detections_or_ground_truth_evaluates(store: LocalStore, side: str) -> None:
    frames = as_stored(random_frame_set(2, n_frames=4))
    if side == "detections":  # an early epoch of a model that detects nothing above its threshold yet
        empty = dict(dt_frame=frames.dt_frame[:0], dt_boxes=frames.dt_boxes[:0], dt_scores=frames.dt_scores[:0],
                     dt_labels=frames.dt_labels[:0], dt_velocities=frames.dt_velocities[:0],
                     dt_attributes=None if frames.dt_attributes is None else frames.dt_attributes[:0])
    else:
        empty = dict(gt_frame=frames.gt_frame[:0], gt_boxes=frames.gt_boxes[:0], gt_labels=frames.gt_labels[:0],
                     gt_velocities=frames.gt_velocities[:0], gt_num_points=frames.gt_num_points[:0],
                     gt_attributes=None if frames.gt_attributes is None else frames.gt_attributes[:0])
    frames = dataclasses.replace(frames, **empty)
    record(store, frames, CLASS_NAMES)
    units = Evaluator("det3d", "v1", store=store).request_evaluation().get_samples()
    if side == "detections":
        assert len(units) and (units["unit_type"] == "object").all() and set(units["error_type"]) == {"miss"}
    else:
        assert len(units) and (units["unit_type"] == "false_positive").all() and (units["label"] == -1).all()
