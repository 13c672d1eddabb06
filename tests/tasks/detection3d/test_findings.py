"""Planted 3-D failures come out as the codes, categories and tables that name them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ml_debugger.evaluator import Evaluator
from ml_debugger.store import LocalStore
from ml_debugger.tasks.detection3d.frame_set import FrameSet
from tests.tasks.detection3d.recording import record

NAMES = {0: "car", 1: "truck", 2: "pedestrian"}
CAR = [10.0, 0.0, 0.0, 1.9, 4.5, 1.6, 0.3]


def box(x: float, y: float, yaw: float = 0.3, size=(1.9, 4.5, 1.6)) -> list[float]:
    return [x, y, 0.0, *size, yaw]


def scene(epoch: int) -> FrameSet:
    gt, dt = [], []  # (frame, box, label, points) / (frame, box, label, score)

    def frame(objects=(), detections=()) -> None:
        index = frame.n
        gt.extend((index, *o) for o in objects)
        dt.extend((index, *d) for d in detections)
        frame.n += 1

    frame.n = 0
    for _ in range(20):
        frame([(CAR, 0, 200)], [(CAR, 0, 0.9)])
    frame([(CAR, 0, 200)], [(box(10.1, 0.0, 0.3 + math.pi), 0, 0.9)])  # frame20: flipped heading
    frame([(box(45, 0), 0, 200)], [])  # frame21: far car, missed
    frame([(box(8, 3, size=(0.7, 0.7, 1.8)), 2, 2)], [])  # frame22: pedestrian with 2 points, missed
    frame([(CAR, 0, 200)], [(CAR, 0, 0.9), (box(20, 20), 0, 0.95)])  # frame23: unannotated car, every epoch
    frame([(CAR, 0, 200)], [(CAR, 1, 0.9)])  # frame24: labelled car, detected as a truck every epoch
    frame([(CAR, 0, 200)], [(CAR, 0, 0.9), (box(10.3, 0.1), 0, 0.85)])  # frame25: a duplicate
    frame([(CAR, 0, 200)], [(CAR, 0, 0.9)] if epoch == 0 else [])  # frame26: found, then lost
    return FrameSet(
        n_frames=frame.n,
        gt_frame=np.array([g[0] for g in gt]), gt_boxes=np.array([g[1] for g in gt]),
        gt_labels=np.array([g[2] for g in gt]), gt_num_points=np.array([g[3] for g in gt]),
        gt_velocities=np.zeros((len(gt), 2)),
        dt_frame=np.array([d[0] for d in dt]), dt_boxes=np.array([d[1] for d in dt]),
        dt_labels=np.array([d[2] for d in dt]), dt_scores=np.array([d[3] for d in dt]),
        dt_velocities=np.zeros((len(dt), 2)),
    )


def evaluated(store: LocalStore) -> tuple[pd.DataFrame, object]:
    for epoch in (0, 1):
        record(store, scene(epoch), NAMES, epoch=epoch)
    result = Evaluator("det3d", "v1", store=store).request_evaluation(n_epoch=None, operating_score=0.5)
    units = result.get_samples()
    return units[units["epoch"] == 1].set_index(["input_id", "unit_id"]), result


def codes(units: pd.DataFrame, frame: str, unit: str) -> set[str]:
    return set(units.loc[(frame, unit), "error_codes"])


def test_planted_3d_failures_get_the_codes_that_name_them(store: LocalStore) -> None:
    units, result = evaluated(store)
    assert "D3D012" in codes(units, "frame20", "gt:0") and units.loc[("frame20", "gt:0"), "category"] == "operational_coverage"
    assert units.loc[("frame20", "gt:0"), "orient_err"] > 3
    assert {"D3D005", "D3D006"} <= codes(units, "frame21", "gt:0")
    assert {"D3D005", "D3D007"} <= codes(units, "frame22", "gt:0")
    assert {"D3D014", "D3D004", "D3D016"} <= codes(units, "frame23", "pred:0@20,20")
    assert units.loc[("frame23", "pred:0@20,20"), "category"] == "aleatoric_hotspot"
    assert {"D3D015", "D3D001"} <= codes(units, "frame24", "gt:0")
    assert units.loc[("frame24", "gt:0"), "prediction"] == 1
    assert {"D3D003", "D3D016"} <= codes(units, "frame25", "pred:0@10.3,0.1")
    assert "D3D018" in codes(units, "frame26", "gt:0")
    assert (units.loc[[(f"frame{i}", "gt:0") for i in range(20)], "category"] == "stable_coverage").all()
    bev = result.get_heatmap("bev_errors", matrix=True, epoch=1)
    assert bev.loc[5.0, 45.0] == 1  # the far car, in the 40-50 m cell ahead
    by_range = result.tables["range"].set_index(["epoch", "range_bin"]).loc[1]
    assert by_range.loc["40-50m", "objects"] == 1 and by_range.loc["40-50m", "found"] == 0
