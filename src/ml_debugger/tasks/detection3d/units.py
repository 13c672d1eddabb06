"""The units of a 3-D detection evaluation: every evaluated ground-truth object and every false
positive, matched by centre distance as the nuScenes devkit matches them.

Per dataset and epoch, detections count when they score at least the *operating score*
(F1-optimal at ``match_distance`` by default). Objects are the ground-truth boxes the devkit
evaluates (within their class range, with LiDAR points when counts are known). Then:

- an **object** is correct when the devkit's matching at ``match_distance`` gives it a detection
  of its class scoring at least the operating score. Its ``error_type`` is ``none``,
  ``low_score`` (matched below the operating score), ``cls`` (a detection of another class is
  within ``match_distance``), ``loc`` (a detection of its class is within ``near_distance`` but
  not matched to it) or ``miss``;
- a **false positive** is a detection within its class range, at or above the operating score,
  that the matching leaves unmatched: ``cls`` (an object of another class within
  ``match_distance``), ``dupe`` (its class's object within ``match_distance`` was taken by a
  better detection), ``loc`` (its class's object within ``near_distance``) or ``bkg``.

A found object also carries its detection's nuScenes TP errors (``trans_err``, ``scale_err``,
``orient_err``, ``vel_err``, ``attr_err``). ``label``, ``prediction`` and ``object_class`` mean
what they mean for 2-D detection (-1 is the background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_debugger.tasks._object_signals import f1_operating_score
from ml_debugger.tasks._unit_ids import false_positive_ids, object_ids
from ml_debugger.tasks.detection3d.config import Detection3DConfig
from ml_debugger.tasks.detection3d.frame_set import BOX_COLUMNS, range_bins
from ml_debugger.tasks.detection3d.loading import FrameGroup
from ml_debugger.tasks.detection3d.nuscenes_metrics import CenterMatching, NuScenesEvaluation

BACKGROUND = -1
POINT_EDGES = (0, 5, 20, 100)
"""Points-in-box bins: ``0-4``, ``5-19``, ``20-99``, ``100+`` points (``unknown`` without counts)."""
TP_ERRORS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")


@dataclass(frozen=True)
class GroupUnits:
    """The units of one dataset and epoch, their features (own box, else frame; or None) and
    the operating score."""

    table: pd.DataFrame
    features: np.ndarray | None
    operating_score: float


def points_bins(points: np.ndarray) -> np.ndarray:
    """The ``POINT_EDGES`` bin of each points-in-box count (``unknown`` for -1)."""
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(POINT_EDGES[:-1], POINT_EDGES[1:])] + [f"{POINT_EDGES[-1]}+"]
    bins = np.array(labels, dtype=object)[np.clip(np.searchsorted(POINT_EDGES, points, side="right") - 1, 0, None)]
    return np.where(np.asarray(points) < 0, "unknown", bins).astype(object)


def _at(values: np.ndarray, index: np.ndarray, fill: float | int) -> np.ndarray:
    """``values[index]`` where ``index >= 0``, else ``fill`` (also when ``values`` is empty: an epoch
    without detections)."""
    out = np.full(len(index), fill, dtype=np.result_type(values.dtype, np.min_scalar_type(fill)))
    valid = index >= 0
    out[valid] = values[index[valid]]
    return out


def _within_frame(frame: np.ndarray) -> np.ndarray:
    """Position of each row among the rows of its frame (rows are grouped by frame)."""
    return np.arange(len(frame)) - np.searchsorted(frame, frame, side="left")


def build_units(group: FrameGroup, evaluation: NuScenesEvaluation, config: Detection3DConfig) -> GroupUnits:
    """The object and false-positive units of one dataset and epoch (see the module doc)."""
    boxes, m = group.boxes, evaluation.matching
    counted = m.dt_evaluated
    operating = config.operating_score
    if operating is None:
        operating = f1_operating_score(boxes.dt_scores[counted], m.dt_match[counted] >= 0, int(m.gt_evaluated.sum()))
    gt_rows = np.flatnonzero(m.gt_evaluated)
    fp_rows = np.flatnonzero(counted & (boxes.dt_scores >= operating) & (m.dt_match < 0))
    table = pd.concat([_objects(group, m, gt_rows, operating, config), _false_positives(group, m, fp_rows, config)],
                      ignore_index=True)
    frame = table.pop("_frame").to_numpy(dtype=np.int64)
    head = pd.DataFrame({"dataset": group.dataset, "epoch": group.epoch}, index=table.index)
    for column in ("input_id", "input_hash", "global_step"):
        head[column] = group.frames[column].to_numpy()[frame]
    table = pd.concat([head, table], axis=1).astype({"epoch": np.int64, "global_step": "Int64"})
    table["operating_score"] = operating
    return GroupUnits(table=table, features=_features(group, gt_rows, fp_rows), operating_score=operating)


def _objects(group: FrameGroup, m: CenterMatching, rows: np.ndarray, operating: float, config: Detection3DConfig) -> pd.DataFrame:
    boxes = group.boxes
    labels = boxes.gt_labels[rows]
    matched = m.gt_match[rows]
    has_match = matched >= 0
    score = np.where(has_match, _at(boxes.dt_scores, matched, 0.0), 0.0)
    found = has_match & (score >= operating)
    other = m.gt_nearest_dt_any[rows]
    other_close = (other >= 0) & (m.gt_nearest_dt_any_dist[rows] < config.match_distance)
    other_label = _at(boxes.dt_labels, other, BACKGROUND)
    confused = ~has_match & other_close & (other_label != labels)
    near = ~has_match & ~confused & (m.gt_nearest_dt_dist[rows] < config.near_distance)
    error_type = np.select([found, has_match, confused, near], ["none", "low_score", "cls", "loc"], "miss").astype(object)
    related = np.select([has_match, confused, near], [matched, other, m.gt_nearest_dt[rows]], -1)
    score = np.where(related >= 0, _at(boxes.dt_scores, related, 0.0), 0.0)
    distance = np.select(
        [has_match, confused, near],
        [_at(m.dt_trans_err, matched, np.nan), m.gt_nearest_dt_any_dist[rows], m.gt_nearest_dt_dist[rows]],
        np.where(np.isfinite(m.gt_nearest_dt_any_dist[rows]), m.gt_nearest_dt_any_dist[rows], np.nan),
    )
    tp_errors = {
        name: np.where(has_match, _at(getattr(m, f"dt_{name}"), matched, np.nan), np.nan) for name in TP_ERRORS
    }
    return pd.DataFrame({
        "_frame": boxes.gt_frame[rows],
        "unit_id": object_ids(_within_frame(boxes.gt_frame)[rows]),
        "unit_type": "object",
        "label": labels.astype(np.int64),
        "prediction": np.select([found, confused], [labels, other_label], BACKGROUND).astype(np.int64),
        "object_class": labels.astype(np.int64),
        "correct": found,
        "error_type": error_type,
        "score": score,
        "distance": distance,
        **tp_errors,
        "range": boxes.gt_distance_from_ego[rows],
        "range_bin": np.asarray(range_bins(boxes.gt_distance_from_ego[rows]).astype(str), dtype=object),
        "num_points": boxes.gt_num_points[rows],
        "points_bin": points_bins(boxes.gt_num_points[rows]),
        **{name: boxes.gt_boxes[rows, i] for i, name in enumerate(BOX_COLUMNS)},
    })


def _false_positives(group: FrameGroup, m: CenterMatching, rows: np.ndarray, config: Detection3DConfig) -> pd.DataFrame:
    boxes = group.boxes
    own = boxes.dt_labels[rows]
    nearest_any = m.dt_nearest_gt_any[rows]
    any_close = (nearest_any >= 0) & (m.dt_nearest_gt_any_dist[rows] < config.match_distance)
    confused = any_close & (_at(boxes.gt_labels, nearest_any, BACKGROUND) != own)
    same_dist = m.dt_nearest_gt_dist[rows]
    error_type = np.select(
        [confused, same_dist < config.match_distance, same_dist < config.near_distance], ["cls", "dupe", "loc"], "bkg"
    ).astype(object)
    return pd.DataFrame({
        "_frame": boxes.dt_frame[rows],
        "unit_id": false_positive_ids(
            boxes.dt_frame[rows], own, np.round(boxes.dt_boxes[rows, :2], 1)
        ),
        "unit_type": "false_positive",
        "label": np.where(confused, _at(boxes.gt_labels, nearest_any, BACKGROUND), BACKGROUND).astype(np.int64),
        "prediction": own.astype(np.int64),
        "object_class": own.astype(np.int64),
        "correct": np.zeros(len(rows), bool),
        "error_type": error_type,
        "score": boxes.dt_scores[rows],
        "distance": np.where(np.isfinite(m.dt_nearest_gt_any_dist[rows]), m.dt_nearest_gt_any_dist[rows], np.nan),
        **{name: np.full(len(rows), np.nan) for name in TP_ERRORS},
        "range": boxes.dt_distance_from_ego[rows],
        "range_bin": np.asarray(range_bins(boxes.dt_distance_from_ego[rows]).astype(str), dtype=object),
        "num_points": group.dt_num_points[rows],
        "points_bin": points_bins(group.dt_num_points[rows]),
        **{name: boxes.dt_boxes[rows, i] for i, name in enumerate(BOX_COLUMNS)},
    })


def geometry_features(table: pd.DataFrame) -> np.ndarray:
    """Box geometry as a feature vector per unit, for hotspots when no feature was traced: centre
    x and y, range, log size, heading as (cos, sin), and log(1 + points) (0 when unknown)."""
    size = np.log(np.maximum(table[["w", "l", "h"]].to_numpy(dtype=np.float64), 1e-3))
    yaw = table["yaw"].to_numpy(dtype=np.float64)
    points = np.log1p(np.maximum(table["num_points"].to_numpy(dtype=np.float64), 0))
    columns = [table["cx"], table["cy"], table["range"], *size.T, np.cos(yaw), np.sin(yaw), points]
    geometry = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    spread = geometry.std(axis=0)
    return ((geometry - geometry.mean(axis=0)) / np.where(spread > 0, spread, 1.0)).astype(np.float32)


def _features(group: FrameGroup, gt_rows: np.ndarray, fp_rows: np.ndarray) -> np.ndarray | None:
    """Each unit's own box feature when both sides have them, else its frame's feature, else None."""
    gt, dt = group.gt_features, group.dt_features
    if gt is not None and dt is not None and gt.shape[1] == dt.shape[1]:
        return np.concatenate([gt[gt_rows], dt[fp_rows]])
    if group.frame_features is not None:
        frames = np.concatenate([group.boxes.gt_frame[gt_rows], group.boxes.dt_frame[fp_rows]])
        return group.frame_features[frames]
    return None
