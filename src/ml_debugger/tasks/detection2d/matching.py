"""Box overlaps within images and greedy detection-to-GT matching, vectorised across groups.

The building blocks that COCO's ``evaluateImg`` and TIDE's matching share:

- ``overlapping_pairs``: every (detection, GT) pair of the same image whose boxes intersect,
  with IoU computed exactly as pycocotools' ``bbIou`` does (same floating-point operations on
  the COCO ``[x, y, w, h]`` boxes), so that thresholds decide ties the same way.
- ``greedy_match``: the greedy assignment in which each detection, in decreasing score order,
  takes its preferred still-available GT among those above an IoU threshold. It runs as a loop
  over the rank of a detection within its group (its ``step``), vectorised over all groups,
  all IoU thresholds and all preference variants at once.
- ``group_rank`` and segment reductions used by both metrics.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ml_debugger.tasks.detection2d.detection_set import DetectionSet

_PAIRS_PER_CHUNK = 2_000_000  # bounds the dense (detection x GT-of-its-image) block built at once


@dataclass(frozen=True, eq=False)
class BoxPairs:
    """Detection-GT pairs of the same image whose boxes intersect, grouped by detection, GT ascending.

    ``iou`` is intersection over union (pycocotools with ``iscrowd=0``); ``crowd_iou`` is
    intersection over the detection's area (pycocotools' rule for a crowd GT). Pairs that do not
    intersect have IoU 0 and are left out.
    """

    dt: np.ndarray  # (P,) int64 detection row
    gt: np.ndarray  # (P,) int64 GT row
    iou: np.ndarray  # (P,) float64
    crowd_iou: np.ndarray  # (P,) float64


@dataclass(frozen=True, eq=False)
class Assignments:
    """The matches made by ``greedy_match``, in the order they were made (by step)."""

    dt: np.ndarray  # (n,) int64 detection row
    gt: np.ndarray  # (n,) int64 GT row
    variant: np.ndarray  # (n,) int64 index into the preference variants
    threshold: np.ndarray  # (n,) int64 index into the thresholds


def overlapping_pairs(data: DetectionSet, dt_rows: np.ndarray | None = None) -> BoxPairs:
    """All intersecting (detection, GT) pairs within images, for ``dt_rows`` (default: every detection).

    Pairs come grouped by detection in the order of ``dt_rows`` (sorted rows give sorted ``dt``,
    as ``best_per_segment`` needs), GTs ascending within a detection.

    Computes, as pycocotools' ``bbIou`` on ``d = [x, y, w, h]`` and ``g``:
    ``iw = min(d.x + d.w, g.x + g.w) - max(d.x, g.x)`` (likewise ``ih``), intersection
    ``iw * ih`` when both are positive, ``iou = inter / (d.w * d.h + g.w * g.h - inter)`` and
    ``crowd_iou = inter / (d.w * d.h)``.
    """
    rows = np.arange(data.n_dt) if dt_rows is None else np.asarray(dt_rows, dtype=np.int64)
    gt_order = np.argsort(data.gt_image, kind="stable")
    gt_count = np.bincount(data.gt_image, minlength=data.n_images)
    gt_start = np.cumsum(gt_count) - gt_count
    per_dt = gt_count[data.dt_image[rows]]
    ends = np.cumsum(per_dt)
    cuts = np.searchsorted(ends, np.arange(_PAIRS_PER_CHUNK, ends[-1] if len(ends) else 0, _PAIRS_PER_CHUNK))
    parts = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(rows)]):
        counts = per_dt[lo:hi]
        total = int(counts.sum())
        if total == 0:
            continue
        pair_dt = np.repeat(rows[lo:hi], counts)
        offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        pair_gt = gt_order[np.repeat(gt_start[data.dt_image[rows[lo:hi]]], counts) + offset]
        parts.append(_intersections(data, pair_dt, pair_gt))
    if not parts:
        empty_int, empty_float = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return BoxPairs(empty_int, empty_int, empty_float, empty_float)
    return BoxPairs(*(np.concatenate(column) for column in zip(*parts)))


def _intersections(
    data: DetectionSet, pair_dt: np.ndarray, pair_gt: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d, g = data.dt_xywh, data.gt_xywh
    iw = np.minimum(d[pair_dt, 2] + d[pair_dt, 0], g[pair_gt, 2] + g[pair_gt, 0])
    iw -= np.maximum(d[pair_dt, 0], g[pair_gt, 0])
    keep = np.flatnonzero(iw > 0)
    pair_dt, pair_gt, iw = pair_dt[keep], pair_gt[keep], iw[keep]
    ih = np.minimum(d[pair_dt, 3] + d[pair_dt, 1], g[pair_gt, 3] + g[pair_gt, 1])
    ih -= np.maximum(d[pair_dt, 1], g[pair_gt, 1])
    keep = np.flatnonzero(ih > 0)
    pair_dt, pair_gt, inter = pair_dt[keep], pair_gt[keep], iw[keep] * ih[keep]
    dt_area = d[pair_dt, 2] * d[pair_dt, 3]
    gt_area = g[pair_gt, 2] * g[pair_gt, 3]
    return pair_dt, pair_gt, inter / (dt_area + gt_area - inter), inter / dt_area


def group_rank(keys: tuple[np.ndarray, ...], scores: np.ndarray) -> np.ndarray:
    """Rank (0 = highest score) of each row within the group of rows sharing ``keys``.

    Ties keep row order: this is the order of a stable (mergesort) sort by descending score, as
    COCOeval and tidecv sort each image's detections.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((-scores, *reversed(keys)))
    same_group = np.ones(n - 1, bool)
    for key in keys:
        sorted_key = key[order]
        same_group &= sorted_key[1:] == sorted_key[:-1]
    positions = np.arange(n)
    starts = np.maximum.accumulate(np.where(np.r_[True, ~same_group], positions, 0))
    rank = np.empty(n, np.int64)
    rank[order] = positions - starts
    return rank


def segment_starts(sorted_ids: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in ``sorted_ids``."""
    if len(sorted_ids) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])


def best_per_segment(
    ids: np.ndarray, values: np.ndarray, candidates: np.ndarray, n: int, fill: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """For ids ``0..n-1``: the maximum of ``values`` and the smallest candidate attaining it (else -1).

    ``ids`` must be sorted. Equals ``argmax`` over a dense row in which the candidates appear in
    increasing order (first maximum wins).
    """
    best = np.full(n, fill, np.float64)
    which = np.full(n, -1, np.int64)
    if len(ids) == 0:
        return best, which
    starts = segment_starts(ids)
    seg_max = np.maximum.reduceat(values, starts)
    lengths = np.diff(np.r_[starts, len(ids)])
    at_max = values == np.repeat(seg_max, lengths)
    first = np.minimum.reduceat(np.where(at_max, candidates, np.iinfo(np.int64).max), starts)
    best[ids[starts]] = seg_max
    which[ids[starts]] = first
    return best, which


def greedy_match(
    pair_dt: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    priority: np.ndarray,
    thresholds: np.ndarray,
    dt_step: np.ndarray,
    gt_reusable: np.ndarray,
) -> Assignments:
    """Greedy matching of detections to GTs for every preference variant and IoU threshold.

    Candidate pairs (``pair_dt``, ``pair_gt``, ``pair_iou``) must only join a detection to GTs of
    its own group (same image, and class when matching by class). Detections are processed in
    increasing ``dt_step`` (their score rank within the group); two detections of one group must
    not share a step, detections of different groups never share a GT, so every group advances
    by one detection per step, all groups at once. At its step, a detection takes, among its
    candidates with ``pair_iou >= threshold`` whose GT is still available, the one with the
    highest ``priority`` (``(P, V)``: one preference order per variant, distinct within a
    detection). A matched GT stops being available unless ``gt_reusable`` (COCO crowd regions).
    """
    n_variants, n_thresholds = priority.shape[1], len(thresholds)
    keep = np.flatnonzero(pair_iou >= thresholds.min()) if len(pair_iou) else np.zeros(0, np.int64)
    order = keep[np.lexsort((pair_dt[keep], dt_step[pair_dt[keep]]))]
    pair_dt, pair_gt, pair_iou, priority = pair_dt[order], pair_gt[order], pair_iou[order], priority[order]
    steps = dt_step[pair_dt]
    bounds = np.r_[segment_starts(steps), len(steps)]
    n_gt = len(gt_reusable)
    available = np.ones((n_gt, n_variants, n_thresholds), bool)
    found: list[tuple[np.ndarray, ...]] = []
    for lo, hi in itertools.pairwise(bounds):
        dt, gt = pair_dt[lo:hi], pair_gt[lo:hi]
        eligible = (pair_iou[lo:hi, None] >= thresholds[None, :])[:, None, :] & available[gt]
        score = np.where(eligible, priority[lo:hi, :, None], -1)
        starts = segment_starts(dt)
        best = np.maximum.reduceat(score, starts, axis=0)
        best = np.repeat(best, np.diff(np.r_[starts, len(dt)]), axis=0)
        pair, variant, threshold = np.nonzero((score == best) & (score >= 0))
        available[gt[pair], variant, threshold] = gt_reusable[gt[pair]]
        found.append((dt[pair], gt[pair], variant, threshold))
    if not found:
        return Assignments(*(np.zeros(0, np.int64) for _ in range(4)))
    return Assignments(*(np.concatenate(column).astype(np.int64) for column in zip(*found)))
