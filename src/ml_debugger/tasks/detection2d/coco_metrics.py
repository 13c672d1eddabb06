"""COCO detection metrics: pycocotools' ``COCOeval`` (``iouType='bbox'``) on a ``DetectionSet``.

Exactly what ``COCOeval.evaluate(); accumulate(); summarize()`` computes, without a loop over
(image, class) pairs:

1. **Per image and class** (``evaluateImg``): detections are sorted by descending score with a
   stable sort (ties keep row order) and cut to the best ``max_dets[-1]``. A GT is *ignored* in an
   area range if it is a crowd or its ``area`` lies outside ``[lo, hi]`` (bounds included). For
   each IoU threshold ``t``, each detection in turn takes the still-unmatched GT with the highest
   IoU ``>= min(t, 1 - 1e-10)``, preferring any non-ignored GT to an ignored one and, among equal
   IoUs, the GT listed last. A crowd GT's IoU is intersection over the detection's area, and a
   crowd can be matched by any number of detections. A detection matched to an ignored GT is
   ignored, and so is an unmatched detection whose box area is outside the range.
2. **Per class, area range and max-dets** (``accumulate``): the first ``m`` detections of every
   image (in score order) are pooled, stably sorted by descending score (ties: image, then rank),
   ignored ones dropped; precision ``tp / (tp + fp + eps)`` and recall ``tp / n_gt`` (``n_gt``:
   GTs not ignored) along that order; precision is made non-increasing from the right and read
   at the 101 recall thresholds ``0, 0.01, ..., 1`` (first point with recall ``>=`` the
   threshold, 0 past the last one). Recall is the final recall. Both are -1 for a class without
   a non-ignored GT.
3. **Summary** (``summarize``): each stat is the mean of the entries that are not -1, or -1.

Matching is vectorised as a loop over a detection's score rank within its (image, class) group,
all groups, IoU thresholds and area ranges at once (see ``matching.greedy_match``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.matching import (
    Assignments,
    BoxPairs,
    best_per_segment,
    greedy_match,
    group_rank,
    overlapping_pairs,
    segment_starts,
)

__all__ = [
    "AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "CocoEvaluation",
    "CocoMatching",
    "DetectionSet",
    "coco_evaluate",
]

# pycocotools' Params.setDetParams, bit for bit.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0**2, 1e5**2),
    "small": (0.0**2, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


@dataclass(frozen=True, eq=False)
class CocoMatching:
    """Per-object outcome of COCO's matching in area range ``all`` with ``max_dets[-1]`` detections.

    Columns for each IoU threshold ``t`` (axis 1), as ``evaluateImg`` leaves them:

    - ``dt_match[d, t]``: GT row matched by detection ``d``, or -1.
    - ``dt_ignore[d, t]``: the detection does not count: it matched an ignored GT (a crowd), or it
      is beyond the first ``max_dets[-1]`` of its image and class (``dt_rank >= max_dets[-1]``;
      those are never matched).
    - ``gt_match[g, t]``: detection row matched to GT ``g`` (for a crowd, the last one), or -1.
    - ``gt_ignore[g]``: the GT is a crowd (or its area is outside ``[0, 1e10]``).

    A detection is a true positive at ``t`` iff ``dt_match >= 0 & ~dt_ignore``, a false positive
    iff ``dt_match < 0 & ~dt_ignore``. Best overlaps, for error analysis (IoU, not crowd IoU;
    -1 / 0.0 when nothing overlaps; ties go to the lowest row): ``dt_best_iou`` / ``dt_best_gt``
    over non-crowd GTs of the same image and class, ``dt_best_iou_any`` / ``dt_best_gt_any`` over
    non-crowd GTs of any class; ``gt_best_iou`` / ``gt_best_dt`` over every detection of the same
    image and class, ``gt_best_iou_any`` / ``gt_best_dt_any`` over detections of any class.
    """

    iou_thresholds: np.ndarray  # (T,)
    dt_rank: np.ndarray  # (n_dt,) int64 score rank within (image, label), 0 = best
    dt_match: np.ndarray  # (n_dt, T) int64
    dt_ignore: np.ndarray  # (n_dt, T) bool
    gt_match: np.ndarray  # (n_gt, T) int64
    gt_ignore: np.ndarray  # (n_gt,) bool
    dt_best_iou: np.ndarray  # (n_dt,) float64
    dt_best_gt: np.ndarray  # (n_dt,) int64
    dt_best_iou_any: np.ndarray  # (n_dt,) float64
    dt_best_gt_any: np.ndarray  # (n_dt,) int64
    gt_best_iou: np.ndarray  # (n_gt,) float64
    gt_best_dt: np.ndarray  # (n_gt,) int64
    gt_best_iou_any: np.ndarray  # (n_gt,) float64
    gt_best_dt_any: np.ndarray  # (n_gt,) int64


@dataclass(frozen=True, eq=False)
class CocoEvaluation:
    """Result of ``coco_evaluate``.

    ``stats``: the 12 numbers of ``COCOeval.stats`` in order, under torchmetrics' names ``map``,
    ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``, ``mar_{m0}``,
    ``mar_{m1}``, ``mar_{m2}`` (``m0 < m1 < m2`` the ``max_dets``; ``mar_1``, ``mar_10``,
    ``mar_100`` by default), ``mar_small``, ``mar_medium``, ``mar_large``; -1 where COCOeval gives
    -1 (no GT in that area range; ``map_50`` / ``map_75`` when 0.5 / 0.75 is not an IoU
    threshold; and, like pycocotools, ``map`` when 100 is not among ``max_dets``). All but
    ``mar_{m0}`` and ``mar_{m1}`` use ``m2`` detections.

    ``per_class``: one row per label seen in GT or detections, sorted: ``label``, ``n_gt``
    (non-ignored GTs), ``n_dt`` (all detections), ``ap`` (mean over IoU thresholds and recall
    thresholds, area ``all``, ``m2`` detections: the slice ``precision[:, :, k, 0, -1]``),
    ``ap_50``, ``ap_75``, ``ar_{m2}`` (mean recall over thresholds). NaN where the class has no
    non-ignored GT (where COCOeval stores -1), and for ``ap_50`` / ``ap_75`` without that
    threshold.

    ``precision`` (T, 101, K, 4, 3) and ``recall`` (T, K, 4, 3) are ``COCOeval.eval['precision']``
    and ``['recall']``, with classes ``labels`` (sorted), area ranges in ``AREA_RANGES`` order.
    """

    stats: dict[str, float]
    per_class: pd.DataFrame
    labels: np.ndarray
    iou_thresholds: np.ndarray
    max_dets: tuple[int, int, int]
    precision: np.ndarray
    recall: np.ndarray
    matching: CocoMatching


def coco_evaluate(
    data: DetectionSet,
    *,
    iou_thresholds: np.ndarray | list[float] = COCO_IOU_THRESHOLDS,
    max_dets: tuple[int, int, int] = (1, 10, 100),
) -> CocoEvaluation:
    """COCO bbox evaluation of ``data``, equal to pycocotools' ``COCOeval`` (see the module doc).

    ``iou_thresholds`` must lie in (0, 1]; ``max_dets`` holds three positive counts (sorted here,
    as COCOeval sorts them). Classes are the labels present in GT or detections.
    """
    thresholds = np.array(iou_thresholds, dtype=np.float64).reshape(-1)
    if thresholds.size == 0 or not np.all((thresholds > 0) & (thresholds <= 1)):
        raise ConfigurationError(f"iou_thresholds must be non-empty and in (0, 1]; got {thresholds.tolist()}")
    limits = tuple(sorted(int(m) for m in max_dets))
    if len(limits) != 3 or limits[0] < 1:
        raise ConfigurationError(f"max_dets must be three positive counts; got {max_dets!r}")
    labels = np.union1d(data.gt_labels, data.dt_labels)
    lo, hi = np.array(list(AREA_RANGES.values())).T
    gt_ignore = data.gt_iscrowd[:, None] | (data.gt_area[:, None] < lo) | (data.gt_area[:, None] > hi)
    dt_area = data.dt_xywh[:, 2] * data.dt_xywh[:, 3]
    dt_outside = (dt_area[:, None] < lo) | (dt_area[:, None] > hi)
    rank = group_rank((data.dt_image, data.dt_labels), data.dt_scores)
    evaluated = rank < limits[-1]

    pairs = overlapping_pairs(data)
    same_class = np.flatnonzero((data.dt_labels[pairs.dt] == data.gt_labels[pairs.gt]) & evaluated[pairs.dt])
    pair_dt, pair_gt = pairs.dt[same_class], pairs.gt[same_class]
    match_iou = np.where(data.gt_iscrowd[pair_gt], pairs.crowd_iou[same_class], pairs.iou[same_class])
    found = greedy_match(
        pair_dt,
        pair_gt,
        match_iou,
        _preference(pair_dt, pair_gt, match_iou, gt_ignore),
        np.minimum(thresholds, 1 - 1e-10),
        rank,
        data.gt_iscrowd,
    )
    # (area range, threshold, detection): each (area, threshold) slice is contiguous for accumulate.
    shape = (len(AREA_RANGES), len(thresholds), data.n_dt)
    matched = np.zeros(shape, bool)
    matched[found.variant, found.threshold, found.dt] = True
    ignored = np.zeros(shape, bool)
    ignored[found.variant, found.threshold, found.dt] = gt_ignore[found.gt, found.variant]
    ignored |= ~matched & dt_outside.T[:, None, :]

    gt_k = np.searchsorted(labels, data.gt_labels)
    n_gt_counted = np.zeros((len(labels), len(AREA_RANGES)), np.int64)
    for a in range(len(AREA_RANGES)):
        n_gt_counted[:, a] = np.bincount(gt_k[~gt_ignore[:, a]], minlength=len(labels))
    precision, recall = _accumulate(
        np.searchsorted(labels, data.dt_labels), data, rank, matched, ignored, n_gt_counted, limits
    )
    matching = _matching(
        data, pairs, thresholds, rank, found, ignored[0].T | ~evaluated[:, None], gt_ignore[:, 0]
    )
    return CocoEvaluation(
        stats=_summarize(precision, recall, thresholds, limits),
        per_class=_per_class(data, labels, precision, recall, thresholds, n_gt_counted[:, 0], limits[-1]),
        labels=labels,
        iou_thresholds=thresholds,
        max_dets=limits,
        precision=precision,
        recall=recall,
        matching=matching,
    )


def _preference(
    pair_dt: np.ndarray, pair_gt: np.ndarray, iou: np.ndarray, gt_ignore: np.ndarray
) -> np.ndarray:
    """(P, A) preference of each candidate GT of a detection: non-ignored first, then IoU, then later row.

    ``evaluateImg`` scans GTs sorted ignored-last and keeps the last one with the highest IoU
    (``>=`` replaces), stopping at the first ignored GT once it holds a non-ignored match.
    """
    order = np.lexsort((pair_gt, iou, pair_dt))
    starts = segment_starts(pair_dt[order])
    lengths = np.diff(np.r_[starts, len(order)])
    within = np.empty(len(order), np.int64)
    within[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    span = int(lengths.max()) if len(lengths) else 1
    return within[:, None] + span * (~gt_ignore[pair_gt]).astype(np.int64)


def _accumulate(
    dt_k: np.ndarray,
    data: DetectionSet,
    rank: np.ndarray,
    matched: np.ndarray,
    ignored: np.ndarray,
    n_gt_counted: np.ndarray,
    limits: tuple[int, int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """``COCOeval.accumulate``: precision (T, R, K, A, M) and recall (T, K, A, M)."""
    n_classes, n_areas = n_gt_counted.shape
    n_thr = matched.shape[1]
    precision = -np.ones((n_thr, len(RECALL_THRESHOLDS), n_classes, n_areas, len(limits)))
    recall = -np.ones((n_thr, n_classes, n_areas, len(limits)))
    # Pooled order of one class: descending score, stable over (image, rank within the image).
    order = np.lexsort((data.dt_image, -data.dt_scores, dt_k))
    for m, limit in enumerate(limits):
        rows = order[rank[order] < limit]
        for a in range(n_areas):
            counted = ~ignored[a][:, rows]
            precision[:, :, :, a, m], recall[:, :, a, m] = _precision_recall(
                matched[a][:, rows] & counted, counted, dt_k[rows], n_gt_counted[:, a]
            )
    return precision, recall


def _precision_recall(
    tp: np.ndarray, counted: np.ndarray, dt_k: np.ndarray, n_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision (T, R, K) and recall (T, K) of pooled detections sorted by class.

    ``tp`` and ``counted`` (not ignored) are (T, n). Only true positives are visited: the
    interpolated precision at recall threshold ``r`` is the largest precision at a true positive
    whose recall is ``>= r`` (precision only rises at true positives), which is what the
    right-to-left maximum and ``searchsorted`` give.
    """
    n_thr, n = tp.shape
    n_classes = len(n_gt)
    n_rec = len(RECALL_THRESHOLDS)
    starts = segment_starts(dt_k)
    first = np.repeat(starts, np.diff(np.r_[starts, n])) if n else np.zeros(0, np.int64)
    thr, pos = np.nonzero(tp)  # sorted by (threshold, class, order)
    k = dt_k[pos]
    segment = thr * n_classes + k
    seg_starts = segment_starts(segment)
    tp_n = np.arange(1, len(segment) + 1) - np.repeat(seg_starts, np.diff(np.r_[seg_starts, len(segment)]))
    cum_counted = np.cumsum(counted, axis=1, dtype=np.int32)
    before = first[pos] - 1
    counted_n = cum_counted[thr, pos] - np.where(before >= 0, cum_counted[thr, before], 0)
    tp_f = tp_n.astype(np.float64)
    fp_f = (counted_n - tp_n).astype(np.float64)
    precision_at = tp_f / (fp_f + tp_f + np.spacing(1))
    recall_at = tp_f / n_gt[k]
    # Number of recall thresholds each true positive reaches; nondecreasing within (threshold, class).
    reached = np.searchsorted(RECALL_THRESHOLDS, recall_at, side="right")
    key = segment * (n_rec + 1) + reached
    best = np.zeros(n_thr * n_classes * (n_rec + 1))
    key_starts = segment_starts(key)
    if len(key):
        best[key[key_starts]] = np.maximum.reduceat(precision_at, key_starts)
    best = best.reshape(n_thr, n_classes, n_rec + 1)
    interpolated = np.maximum.accumulate(best[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    n_tp = np.bincount(segment, minlength=n_thr * n_classes).reshape(n_thr, n_classes)
    absent = n_gt == 0
    final_recall = n_tp / np.where(absent, 1, n_gt)
    interpolated[:, absent, :] = -1
    final_recall[:, absent] = -1
    return interpolated.transpose(0, 2, 1), final_recall


def _summarize(
    precision: np.ndarray, recall: np.ndarray, thresholds: np.ndarray, limits: tuple[int, int, int]
) -> dict[str, float]:
    """``COCOeval.summarize`` for bbox: means over entries that are not -1, else -1."""

    def mean(values: np.ndarray) -> float:
        values = values[values > -1]
        return float(np.mean(values)) if values.size else -1.0

    def ap(area: int, m: list[int], iou: float | None = None) -> float:
        s = precision if iou is None else precision[np.where(iou == thresholds)[0]]
        return mean(s[:, :, :, area, m])

    def ar(area: int, m: int) -> float:
        return mean(recall[:, :, area, m])

    last = [2]
    return {
        "map": ap(0, [i for i, limit in enumerate(limits) if limit == 100]),
        "map_50": ap(0, last, 0.5),
        "map_75": ap(0, last, 0.75),
        "map_small": ap(1, last),
        "map_medium": ap(2, last),
        "map_large": ap(3, last),
        f"mar_{limits[0]}": ar(0, 0),
        f"mar_{limits[1]}": ar(0, 1),
        f"mar_{limits[2]}": ar(0, 2),
        "mar_small": ar(1, 2),
        "mar_medium": ar(2, 2),
        "mar_large": ar(3, 2),
    }


def _per_class(
    data: DetectionSet,
    labels: np.ndarray,
    precision: np.ndarray,
    recall: np.ndarray,
    thresholds: np.ndarray,
    n_gt: np.ndarray,
    limit: int,
) -> pd.DataFrame:
    absent = n_gt == 0
    p = np.where(absent[None, None, :], np.nan, precision[:, :, :, 0, -1])

    def at(iou: float) -> np.ndarray:
        t = np.flatnonzero(thresholds == iou)
        return p[t].mean(axis=(0, 1)) if len(t) else np.full(len(labels), np.nan)

    return pd.DataFrame(
        {
            "label": labels,
            "n_gt": n_gt,
            "n_dt": np.bincount(np.searchsorted(labels, data.dt_labels), minlength=len(labels)),
            "ap": p.mean(axis=(0, 1)),
            "ap_50": at(0.5),
            "ap_75": at(0.75),
            f"ar_{limit}": np.where(absent, np.nan, recall[:, :, 0, -1].mean(axis=0)),
        }
    )


def _matching(
    data: DetectionSet,
    pairs: BoxPairs,
    thresholds: np.ndarray,
    rank: np.ndarray,
    found: Assignments,
    dt_ignore: np.ndarray,
    gt_ignore: np.ndarray,
) -> CocoMatching:
    n_thr = len(thresholds)
    whole = found.variant == 0
    dt_match = np.full((data.n_dt, n_thr), -1, np.int64)
    dt_match[found.dt[whole], found.threshold[whole]] = found.gt[whole]
    gt_match = np.full((data.n_gt, n_thr), -1, np.int64)
    # A crowd can be matched many times; like COCOeval, keep the last (assignments are in step order).
    flat = (found.gt[whole] * n_thr + found.threshold[whole])[::-1]
    flat, last = np.unique(flat, return_index=True)
    gt_match.reshape(-1)[flat] = found.dt[whole][::-1][last]

    not_crowd = ~data.gt_iscrowd[pairs.gt]
    same = not_crowd & (data.dt_labels[pairs.dt] == data.gt_labels[pairs.gt])
    dt_best_iou, dt_best_gt = best_per_segment(pairs.dt[same], pairs.iou[same], pairs.gt[same], data.n_dt)
    dt_any_iou, dt_any_gt = best_per_segment(
        pairs.dt[not_crowd], pairs.iou[not_crowd], pairs.gt[not_crowd], data.n_dt
    )
    by_gt = np.lexsort((pairs.dt, pairs.gt))
    g, d, iou = pairs.gt[by_gt], pairs.dt[by_gt], pairs.iou[by_gt]
    same = data.dt_labels[d] == data.gt_labels[g]
    gt_best_iou, gt_best_dt = best_per_segment(g[same], iou[same], d[same], data.n_gt)
    gt_any_iou, gt_any_dt = best_per_segment(g, iou, d, data.n_gt)
    return CocoMatching(
        iou_thresholds=thresholds,
        dt_rank=rank,
        dt_match=dt_match,
        dt_ignore=dt_ignore,
        gt_match=gt_match,
        gt_ignore=gt_ignore,
        dt_best_iou=dt_best_iou,
        dt_best_gt=dt_best_gt,
        dt_best_iou_any=dt_any_iou,
        dt_best_gt_any=dt_any_gt,
        gt_best_iou=gt_best_iou,
        gt_best_dt=gt_best_dt,
        gt_best_iou_any=gt_any_iou,
        gt_best_dt_any=gt_any_dt,
    )
