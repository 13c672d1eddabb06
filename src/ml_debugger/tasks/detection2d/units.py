"""The units of a detection evaluation: every ground-truth object and every false positive.

Per dataset and epoch, detections count as made when they score at least the *operating score*
(F1-optimal at ``iou_threshold`` by default). Then:

- an **object** unit (a non-crowd ground-truth box) is correct when COCO's matching at
  ``iou_threshold`` gives it a detection of its class scoring at least the operating score. Its
  ``error_type`` is ``none`` (found), ``low_score`` (matched, but below the operating score), or
  TIDE's ``cls`` / ``loc`` (a detection of another class / a loose one would recover it) or
  ``miss``;
- a **false positive** unit is a detection at or above the operating score that COCO's matching
  leaves unmatched (and that no crowd region explains), with TIDE's error type ``cls``, ``loc``,
  ``both``, ``dupe`` or ``bkg``.

``label`` is the unit's true class: an object's class; for a false positive, the class of the
object it mistakes for another class (TIDE ``cls``), else -1 (background). ``prediction`` is the
class the model gave it (-1 when the object was missed); ``object_class`` the class the unit is
about (an object's label, a false positive's prediction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ml_debugger.tasks._object_signals import f1_operating_score
from ml_debugger.tasks._unit_ids import false_positive_ids, object_ids
from ml_debugger.tasks.detection2d.coco_metrics import CocoEvaluation
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.loading import ImageGroup
from ml_debugger.tasks.detection2d.matching import overlapping_pairs
from ml_debugger.tasks.detection2d.tide import TideAnalysis

BACKGROUND = -1
SIZE_BINS = ("small", "medium", "large")
MEDIUM_AREA = 96.0**2


@dataclass(frozen=True)
class GroupUnits:
    """The units of one dataset and epoch.

    Attributes:
        table: one row per unit (see the module doc for the columns).
        features: ``(len(table), d)`` one vector per unit (the box's own, else its image's), or None.
        operating_score: the score detections needed to count.
    """

    table: pd.DataFrame
    features: np.ndarray | None
    operating_score: float


def _at(values: np.ndarray, index: np.ndarray, fill: float | int) -> np.ndarray:
    """``values[index]`` where ``index >= 0``, else ``fill`` (also when ``values`` is empty: an epoch
    without detections)."""
    dtype = np.result_type(values.dtype, np.min_scalar_type(fill))
    out = np.full((len(index), *values.shape[1:]), fill, dtype=dtype)
    valid = index >= 0
    out[valid] = values[index[valid]]
    return out


def threshold_index(coco: CocoEvaluation, iou: float) -> int:
    """Position of ``iou`` among the IoU thresholds ``coco`` was evaluated at."""
    found = np.flatnonzero(np.isclose(coco.iou_thresholds, iou))
    if not len(found):
        raise ValueError(f"the COCO evaluation has no IoU threshold {iou}")
    return int(found[0])


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box ``a[i]`` with box ``b[i]`` (xyxy)."""
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def size_bins(area: np.ndarray, small_area: float) -> np.ndarray:
    """``small`` / ``medium`` / ``large`` by COCO's area ranges (``small_area`` = 32^2 by default)."""
    return np.array(SIZE_BINS, dtype=object)[np.digitize(area, [small_area, MEDIUM_AREA])]


def crowding(boxes: DetectionSet) -> np.ndarray:
    """Highest IoU of each ground-truth box with another non-crowd box of its image (0 if none)."""
    others = DetectionSet(
        n_images=boxes.n_images, gt_image=boxes.gt_image, gt_boxes=boxes.gt_boxes, gt_labels=boxes.gt_labels,
        gt_iscrowd=boxes.gt_iscrowd, dt_image=boxes.gt_image, dt_boxes=boxes.gt_boxes,
        dt_scores=np.zeros(boxes.n_gt), dt_labels=boxes.gt_labels,
    )
    pairs = overlapping_pairs(others)
    keep = (pairs.dt != pairs.gt) & ~boxes.gt_iscrowd[pairs.gt]
    best = np.zeros(boxes.n_gt)
    np.maximum.at(best, pairs.dt[keep], pairs.iou[keep])
    return best


def _within_image(image: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Position of each of ``rows`` among the rows of its image (rows are grouped by image)."""
    return rows - np.searchsorted(image, image[rows], side="left")


def _fallback_fp_type(coco: CocoEvaluation, rows: np.ndarray, config: DetectionConfig) -> np.ndarray:
    """TIDE's precedence from COCO's best overlaps, for the rare detection TIDE's own per-image
    matching leaves as a true positive while COCO's per-class matching does not."""
    m = coco.matching
    same, other = m.dt_best_iou[rows], m.dt_best_iou_any[rows]
    return np.select(
        [same >= config.iou_threshold, same >= config.background_iou, other >= config.iou_threshold,
         other <= config.background_iou],
        ["dupe", "loc", "cls", "bkg"], default="both",
    )


def build_units(group: ImageGroup, coco: CocoEvaluation, tide: TideAnalysis, config: DetectionConfig) -> GroupUnits:
    """The object and false-positive units of one dataset and epoch (see the module doc)."""
    boxes, m = group.boxes, coco.matching
    t = threshold_index(coco, config.iou_threshold)
    operating = config.operating_score
    if operating is None:
        counted = ~m.dt_ignore[:, t]
        operating = f1_operating_score(boxes.dt_scores[counted], m.dt_match[counted, t] >= 0, int((~m.gt_ignore).sum()))
    objects = _object_units(boxes, coco, tide, t, operating, config)
    made = boxes.dt_scores >= operating
    false_positive = np.flatnonzero(made & ~m.dt_ignore[:, t] & (m.dt_match[:, t] < 0))
    fps = _false_positive_units(boxes, coco, tide, false_positive, config)
    table = pd.concat([objects, fps], ignore_index=True)
    image = table.pop("_image").to_numpy(dtype=np.int64)
    head = pd.DataFrame({"dataset": group.dataset, "epoch": group.epoch}, index=table.index)
    for column in ("input_id", "input_hash", "global_step"):
        values = group.images[column]
        if len(image) and column != "global_step":  # strings taken by Arrow, without Python objects
            head[column] = pa.array(values.array).take(pa.array(image)).to_pandas()
        else:
            head[column] = values.to_numpy()[image]
    for column in ("image_width", "image_height"):
        table[column] = group.images[column].to_numpy(dtype=np.int64)[image]
    table = pd.concat([head, table], axis=1).astype({"epoch": np.int64, "global_step": "Int64"})
    features = _unit_features(group, np.flatnonzero(~m.gt_ignore), false_positive)
    return GroupUnits(table=table, features=features, operating_score=operating)


def _object_units(
    boxes: DetectionSet, coco: CocoEvaluation, tide: TideAnalysis, t: int, operating: float, config: DetectionConfig
) -> pd.DataFrame:
    m = coco.matching
    rows = np.flatnonzero(~m.gt_ignore)
    matched = m.gt_match[rows, t]
    matched_score = np.where(matched >= 0, _at(boxes.dt_scores, matched, np.nan), np.nan)
    found = (matched >= 0) & (matched_score >= operating)
    fixer = tide.gt_fixed_by[rows]
    tide_type = tide.gt_error[rows]
    error_type = np.where(
        found, "none",
        np.where(matched >= 0, "low_score", np.where(np.isin(tide_type, ("cls", "loc")), tide_type, "miss")),
    ).astype(object)
    related = np.where(matched >= 0, matched, np.where(error_type != "miss", fixer, -1))
    has = related >= 0
    iou = np.where(has, paired_iou(boxes.gt_boxes[rows], _at(boxes.dt_boxes, related, 0.0)), m.gt_best_iou_any[rows])
    labels = boxes.gt_labels[rows]
    prediction = np.where(found, labels, np.where(error_type == "cls", _at(boxes.dt_labels, fixer, BACKGROUND), BACKGROUND))
    area = boxes.gt_area[rows]
    return pd.DataFrame({
        "_image": boxes.gt_image[rows],
        "unit_id": object_ids(_within_image(boxes.gt_image, rows)),
        "unit_type": "object",
        "label": labels.astype(np.int64),
        "prediction": prediction.astype(np.int64),
        "object_class": labels.astype(np.int64),
        "correct": found,
        "error_type": error_type,
        "score": np.where(has, _at(boxes.dt_scores, related, 0.0), 0.0),
        "iou": iou,
        "area": area,
        "size_bin": size_bins(area, config.small_area),
        "crowding": crowding(boxes)[rows],
        **_box_columns(boxes.gt_boxes[rows]),
    })


def _false_positive_units(
    boxes: DetectionSet, coco: CocoEvaluation, tide: TideAnalysis, rows: np.ndarray, config: DetectionConfig
) -> pd.DataFrame:
    m = coco.matching
    tide_type = tide.dt_error[rows].astype(object)
    fallback = ~np.isin(tide_type, ("cls", "loc", "both", "dupe", "bkg"))
    tide_type[fallback] = _fallback_fp_type(coco, rows[fallback], config)
    related = tide.dt_gt[rows]
    label = np.where((related >= 0) & (tide_type == "cls"), _at(boxes.gt_labels, related, BACKGROUND), BACKGROUND)
    area = boxes.dt_xywh[rows, 2] * boxes.dt_xywh[rows, 3]
    return pd.DataFrame({
        "_image": boxes.dt_image[rows],
        "unit_id": false_positive_ids(boxes.dt_image[rows], boxes.dt_labels[rows], np.rint(boxes.dt_boxes[rows]).astype(np.int64)),
        "unit_type": "false_positive",
        "label": label.astype(np.int64),
        "prediction": boxes.dt_labels[rows].astype(np.int64),
        "object_class": boxes.dt_labels[rows].astype(np.int64),
        "correct": np.zeros(len(rows), bool),
        "error_type": tide_type,
        "score": boxes.dt_scores[rows],
        "iou": m.dt_best_iou_any[rows],
        "area": area,
        "size_bin": size_bins(area, config.small_area),
        "crowding": np.full(len(rows), np.nan),
        **_box_columns(boxes.dt_boxes[rows]),
    })


def _box_columns(boxes: np.ndarray) -> dict[str, np.ndarray]:
    return {name: boxes[:, i] for i, name in enumerate(("x1", "y1", "x2", "y2"))}


def _unit_features(group: ImageGroup, gt_rows: np.ndarray, fp_rows: np.ndarray) -> np.ndarray | None:
    """Each unit's own box feature when both sides have them, else its image's feature, else None."""
    gt, dt = group.gt_features, group.dt_features
    if gt is not None and dt is not None and gt.shape[1] == dt.shape[1]:
        return np.concatenate([gt[gt_rows], dt[fp_rows]])
    if group.image_features is not None:
        return group.image_features[np.concatenate([group.boxes.gt_image[gt_rows], group.boxes.dt_image[fp_rows]])]
    return None
