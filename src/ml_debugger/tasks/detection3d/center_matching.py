"""Centre-distance matching of 3-D detections to ground truth, as the nuScenes devkit's ``accumulate``.

For each class and distance threshold ``th``, the devkit visits the class's detections (over all
frames) in its order: descending score, and among equal scores the detection listed later first
(it sorts ``(score, index)`` pairs of the pooled list, frames in order, and reverses them). Each
takes the not-yet-taken GT of its class in its frame with the smallest centre distance
``sqrt(dx^2 + dy^2)`` (ties: the GT listed first), if that distance is ``< th``. Only detections
and GT boxes that pass the filters (``EvaluatedClasses``) take part.

Frames and classes never share a GT, so the greedy assignment runs as a loop over a detection's
position within its (frame, class) group, all groups and thresholds at once
(``detection2d.matching.greedy_match``, shared with the COCO metrics). Pairwise distances are
computed in padded per-frame blocks, which also give every box its nearest box of the same
class and of any class, for the error analysis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection2d.matching import greedy_match, segment_starts
from ml_debugger.tasks.detection3d.frame_set import FrameSet
from ml_debugger.tasks.detection3d.nuscenes_config import (
    NUSCENES_DEFAULTS,
    EvaluatedClasses,
    NuScenesConfig,
    stable_argsort,
)

__all__ = ["CenterMatching", "box_pair_errors", "match_centers", "match_classes"]

_BLOCK = 1 << 18  # bounds the padded (frames x detections x GTs) distance block built at once
_FAR = 1e300  # x of padding rows


@dataclass(frozen=True, eq=False)
class CenterMatching:
    """Per-object outcome of the devkit's matching, at ``dist_th`` and at every threshold of ``dist_ths``.

    - Classes: ``gt_class`` / ``dt_class`` index ``class_names`` (sorted by label).
    - Filters: ``gt_in_range``, ``gt_has_points``, ``gt_evaluated`` (both), ``dt_evaluated``
      (in range). Rows that are not evaluated are never matched.
    - At ``dist_th``: ``dt_match`` (GT row or -1), ``gt_match`` (detection row or -1) and, for a
      matched detection, its errors against that GT as the devkit defines them (NaN when
      unmatched): ``dt_trans_err`` (centre distance, m), ``dt_scale_err`` (1 - IoU of the boxes
      aligned at one centre and heading), ``dt_orient_err`` (smallest heading difference modulo
      the class's period, radians in [0, pi]; near pi a flipped heading), ``dt_vel_err``
      (``|v_dt - v_gt|``, NaN if either is unknown), ``dt_attr_err`` (0 same attribute, 1
      different, NaN if the GT has none). Per pair, errors exist for every class; the class
      rules (``undefined_tp_errors``) apply only to the aggregated TP errors.
    - ``dt_match_at`` / ``gt_match_at`` ``(n, T)``: the matches at each of ``dist_ths``.
    - Nearest boxes in the same frame by centre distance, over all rows (evaluated or not; -1 and
      ``inf`` when there is none; ties in squared distance go to the lowest row):
      ``dt_nearest_gt`` / ``dt_nearest_gt_dist`` (same class), ``dt_nearest_gt_any`` /
      ``dt_nearest_gt_any_dist`` (any class), and ``gt_nearest_dt``, ``gt_nearest_dt_dist``,
      ``gt_nearest_dt_any``, ``gt_nearest_dt_any_dist``.
    """

    dist_th: float
    dist_ths: np.ndarray  # (T,)
    class_names: tuple[str, ...]
    gt_class: np.ndarray  # (n_gt,) int64
    dt_class: np.ndarray  # (n_dt,) int64
    gt_in_range: np.ndarray  # (n_gt,) bool
    gt_has_points: np.ndarray  # (n_gt,) bool
    gt_evaluated: np.ndarray  # (n_gt,) bool
    dt_evaluated: np.ndarray  # (n_dt,) bool
    dt_match: np.ndarray  # (n_dt,) int64
    gt_match: np.ndarray  # (n_gt,) int64
    dt_trans_err: np.ndarray  # (n_dt,) float64
    dt_scale_err: np.ndarray
    dt_orient_err: np.ndarray
    dt_vel_err: np.ndarray
    dt_attr_err: np.ndarray
    dt_match_at: np.ndarray  # (n_dt, T) int64
    gt_match_at: np.ndarray  # (n_gt, T) int64
    dt_nearest_gt: np.ndarray  # (n_dt,) int64
    dt_nearest_gt_dist: np.ndarray  # (n_dt,) float64
    dt_nearest_gt_any: np.ndarray
    dt_nearest_gt_any_dist: np.ndarray
    gt_nearest_dt: np.ndarray  # (n_gt,) int64
    gt_nearest_dt_dist: np.ndarray  # (n_gt,) float64
    gt_nearest_dt_any: np.ndarray
    gt_nearest_dt_any_dist: np.ndarray

    def detections(self) -> pd.DataFrame:
        """One row per detection: class, ``evaluated``, ``match``, the five errors, nearest GTs."""
        return pd.DataFrame({
            "class_name": np.array(self.class_names, dtype=object)[self.dt_class] if len(self.dt_class) else [],
            "evaluated": self.dt_evaluated, "match": self.dt_match,
            "trans_err": self.dt_trans_err, "scale_err": self.dt_scale_err, "orient_err": self.dt_orient_err,
            "vel_err": self.dt_vel_err, "attr_err": self.dt_attr_err,
            "nearest_gt": self.dt_nearest_gt, "nearest_gt_dist": self.dt_nearest_gt_dist,
            "nearest_gt_any": self.dt_nearest_gt_any, "nearest_gt_any_dist": self.dt_nearest_gt_any_dist,
        })  # fmt: skip

    def ground_truth(self) -> pd.DataFrame:
        """One row per GT box: class, filters, ``match``, nearest detections."""
        return pd.DataFrame({
            "class_name": np.array(self.class_names, dtype=object)[self.gt_class] if len(self.gt_class) else [],
            "in_range": self.gt_in_range, "has_points": self.gt_has_points, "evaluated": self.gt_evaluated,
            "match": self.gt_match,
            "nearest_dt": self.gt_nearest_dt, "nearest_dt_dist": self.gt_nearest_dt_dist,
            "nearest_dt_any": self.gt_nearest_dt_any, "nearest_dt_any_dist": self.gt_nearest_dt_any_dist,
        })  # fmt: skip


def match_centers(
    frames: FrameSet,
    *,
    class_names: Mapping[int, str],
    config: NuScenesConfig = NUSCENES_DEFAULTS,
    dist_th: float | None = None,
) -> CenterMatching:
    """The devkit's matches at ``dist_th`` (default ``config.dist_th_tp``) and at ``config.dist_ths``."""
    return match_classes(frames, EvaluatedClasses.resolve(frames, class_names, config), config, dist_th)


def match_classes(
    frames: FrameSet, classes: EvaluatedClasses, config: NuScenesConfig, dist_th: float | None
) -> CenterMatching:
    """``match_centers`` with the classes and filters already resolved."""
    dist_th = config.dist_th_tp if dist_th is None else float(dist_th)
    if not (dist_th > 0 and np.isfinite(dist_th)):
        raise ConfigurationError(f"dist_th must be a finite distance > 0; got {dist_th}")
    ths = np.array(config.dist_ths if dist_th in config.dist_ths else (*config.dist_ths, dist_th))
    dt_eval, gt_eval = classes.dt_evaluated, classes.gt_evaluated
    near, pairs = _pairwise(frames, classes, float(ths.max()))
    pair_dt, pair_gt, dist = pairs
    step = _group_position(frames, classes)
    # Eligible iff dist < th, i.e. -dist >= -(largest float below th); the nearest first, ties by GT row.
    order = np.lexsort((pair_gt, dist, pair_dt))
    starts = segment_starts(pair_dt[order])
    lengths = np.diff(np.r_[starts, len(order)])
    within = np.empty(len(order), np.int64)
    within[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    span = int(lengths.max()) if len(lengths) else 0
    found = greedy_match(
        pair_dt, pair_gt, -dist, (span - within)[:, None], -np.nextafter(ths, -np.inf), step, np.zeros(frames.n_gt, bool)
    )
    dt_match_at = np.full((frames.n_dt, len(ths)), -1, np.int64)
    dt_match_at[found.dt, found.threshold] = found.gt
    gt_match_at = np.full((frames.n_gt, len(ths)), -1, np.int64)
    gt_match_at[found.gt, found.threshold] = found.dt
    t = int(np.flatnonzero(ths == dist_th)[0])
    dt_match, gt_match = dt_match_at[:, t].copy(), gt_match_at[:, t].copy()
    matched = np.flatnonzero(dt_match >= 0)
    errors = box_pair_errors(frames, matched, dt_match[matched], classes.periods[classes.dt_class[matched]])
    per_dt = {}
    for name, values in errors.items():
        column = np.full(frames.n_dt, np.nan)
        column[matched] = values
        per_dt[f"dt_{name}"] = column
    keep = slice(0, len(config.dist_ths))
    return CenterMatching(
        dist_th=dist_th,
        dist_ths=ths[keep],
        class_names=classes.names,
        gt_class=classes.gt_class,
        dt_class=classes.dt_class,
        gt_in_range=classes.gt_in_range,
        gt_has_points=classes.gt_has_points,
        gt_evaluated=gt_eval,
        dt_evaluated=dt_eval,
        dt_match=dt_match,
        gt_match=gt_match,
        **per_dt,
        dt_match_at=np.ascontiguousarray(dt_match_at[:, keep]),
        gt_match_at=np.ascontiguousarray(gt_match_at[:, keep]),
        **near,
    )


def box_pair_errors(
    frames: FrameSet, dt_rows: np.ndarray, gt_rows: np.ndarray, period: np.ndarray | float = 2 * np.pi
) -> dict[str, np.ndarray]:
    """The devkit's per-match errors of detection ``dt_rows[i]`` against GT ``gt_rows[i]``.

    ``trans_err``: ``center_distance``, xy distance of the centres. ``scale_err``:
    ``1 - scale_iou``, the IoU of the boxes translated and rotated onto each other,
    ``prod(min(size)) / (prod(size_gt) + prod(size_dt) - prod(min(size)))`` (an IoU of two
    empty boxes is taken as 0; the devkit refuses sizes <= 0). ``orient_err``: ``yaw_diff``,
    ``|(yaw_gt - yaw_dt + p / 2) mod p - p / 2|`` for period ``p`` (``period``, per pair or
    one for all), yaws first brought to (-pi, pi] as the devkit's quaternion round trip does.
    ``vel_err``: ``velocity_l2``, ``|v_dt - v_gt|`` (NaN when either is NaN). ``attr_err``:
    ``1 - attr_acc``: NaN when the GT has no attribute, else 0 if the names are equal, 1 if not.
    """
    dt_rows, gt_rows = np.asarray(dt_rows, np.int64), np.asarray(gt_rows, np.int64)
    d, g = frames.dt_boxes[dt_rows], frames.gt_boxes[gt_rows]
    dx, dy = d[:, 0] - g[:, 0], d[:, 1] - g[:, 1]
    inter = np.prod(np.minimum(d[:, 3:6], g[:, 3:6]), axis=1)
    union = np.prod(g[:, 3:6], axis=1) + np.prod(d[:, 3:6], axis=1) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    yaw_gt, yaw_dt = (np.arctan2(np.sin(b[:, 6]), np.cos(b[:, 6])) for b in (g, d))
    period = np.broadcast_to(np.asarray(period, np.float64), dt_rows.shape)
    diff = (yaw_gt - yaw_dt + period / 2) % period - period / 2
    diff = np.where(diff > np.pi, diff - 2 * np.pi, diff)
    v = frames.dt_velocities[dt_rows] - frames.gt_velocities[gt_rows]
    gt_attr, dt_attr = frames.gt_attributes[gt_rows], frames.dt_attributes[dt_rows]
    same_attr = (gt_attr == dt_attr).astype(np.float64) if len(gt_rows) else np.zeros(0)
    return {
        "trans_err": np.sqrt(dx * dx + dy * dy),
        "scale_err": 1 - iou,
        "orient_err": np.abs(diff),
        "vel_err": np.sqrt(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1]),
        "attr_err": np.where(gt_attr == "", np.nan, 1 - same_attr),
    }


def _group_position(frames: FrameSet, classes: EvaluatedClasses) -> np.ndarray:
    """Each evaluated detection's position in the devkit's order within its (frame, class); others -1."""
    rows = classes.dt_order[stable_argsort(frames.dt_frame[classes.dt_order], frames.n_frames)]  # groups, order kept
    key = frames.dt_frame[rows] * len(classes.names) + classes.dt_class[rows]
    starts = segment_starts(key)
    step = np.full(frames.n_dt, -1, np.int64)
    step[rows] = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
    return step


def _pairwise(
    frames: FrameSet, classes: EvaluatedClasses, max_dist: float
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Nearest boxes of every row, and the candidate pairs (same frame and class, both evaluated, dist < max_dist).

    Pieces (a frame's detections, or a slice of them when the frame alone exceeds the block
    size) are packed into padded blocks ``(pieces, detections, GTs)`` of bounded size, sorted
    by their number of detections so that blocks waste little padding.
    """
    near = {
        **{name: np.full(frames.n_dt, -1, np.int64) for name in ("dt_nearest_gt", "dt_nearest_gt_any")},
        **{name: np.full(frames.n_dt, np.inf) for name in ("dt_nearest_gt_dist", "dt_nearest_gt_any_dist")},
        **{name: np.full(frames.n_gt, -1, np.int64) for name in ("gt_nearest_dt", "gt_nearest_dt_any")},
        **{name: np.full(frames.n_gt, np.inf) for name in ("gt_nearest_dt_dist", "gt_nearest_dt_any_dist")},
    }
    dt_rows, dt_count = _rows_by_frame(frames.dt_frame, frames.n_frames)
    gt_rows, gt_count = _rows_by_frame(frames.gt_frame, frames.n_frames)
    busy = np.flatnonzero((dt_count > 0) & (gt_count > 0))
    # Pieces: (frame, first detection position, number of detections), rows in order.
    per_piece = np.maximum(_BLOCK // np.maximum(gt_count[busy], 1), 1)
    n_pieces = -(-dt_count[busy] // per_piece)
    frame = np.repeat(busy, n_pieces)
    first = (np.arange(len(frame)) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)) * np.repeat(per_piece, n_pieces)
    size = np.minimum(np.repeat(per_piece, n_pieces), dt_count[frame] - first)
    by_size = np.lexsort((gt_count[frame], size))  # similar pieces share a block: little padding
    dt_start, gt_start = np.cumsum(dt_count) - dt_count, np.cumsum(gt_count) - gt_count
    parts = []
    lo = 0
    while lo < len(by_size):
        hi, widest = lo + 1, gt_count[frame[by_size[lo]]]
        while hi < len(by_size):
            widest_next = max(widest, gt_count[frame[by_size[hi]]])
            if (hi + 1 - lo) * size[by_size[hi]] * widest_next > _BLOCK:
                break
            hi, widest = hi + 1, widest_next
        block = by_size[lo:hi]
        dt = _padded(dt_rows, dt_start[frame[block]] + first[block], size[block])
        gt = _padded(gt_rows, gt_start[frame[block]], gt_count[frame[block]])
        parts.append(_block(frames, classes, dt, gt, near, max_dist))
        lo = hi
    if not parts:
        return near, (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return near, tuple(np.concatenate(column) for column in zip(*parts))


def _block(
    frames: FrameSet,
    classes: EvaluatedClasses,
    dt: np.ndarray,
    gt: np.ndarray,
    near: dict[str, np.ndarray],
    max_dist: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared distances within one padded block; fills ``near`` and returns its candidate pairs.

    ``dx * dx + dy * dy`` are the operations of the matching distance, so ``sqrt`` of an entry is
    that distance exactly. Padding sits at x = -+1e300, whose squared distance to anything
    overflows to ``inf``: it is never a nearest box nor a candidate. The block is laid out
    ``(pieces, GTs, detections)``: the longest axis last, where numpy's loops are fastest.
    """
    dt_ok, gt_ok = dt >= 0, gt >= 0
    d, g = np.maximum(dt, 0), np.maximum(gt, 0)
    xd, xg = np.where(dt_ok, frames.dt_boxes[d, 0], -_FAR), np.where(gt_ok, frames.gt_boxes[g, 0], _FAR)
    with np.errstate(over="ignore", invalid="ignore"):
        sq = xd[:, None, :] - xg[:, :, None]
        np.multiply(sq, sq, out=sq)
        dy = frames.dt_boxes[d, 1][:, None, :] - frames.gt_boxes[g, 1][:, :, None]
        np.multiply(dy, dy, out=dy)
        sq += dy
    same_sq = np.where(classes.dt_class[d][:, None, :] == classes.gt_class[g][:, :, None], sq, np.inf)
    for values, kind in ((same_sq, ""), (sq, "_any")):
        for axis, side, other, mine, theirs in ((1, "dt", "gt", d, g), (2, "gt", "dt", g, d)):
            which = values.argmin(axis=axis)
            best = np.sqrt(np.take_along_axis(values, np.expand_dims(which, axis), axis).squeeze(axis))
            picked = np.take_along_axis(theirs, which, axis=1)
            # A frame split into pieces meets its GTs once per piece: keep the nearest, ties to the lower row.
            now, now_row = near[f"{side}_nearest_{other}{kind}_dist"][mine], near[f"{side}_nearest_{other}{kind}"][mine]
            ok = np.isfinite(best) & ((best < now) | ((best == now) & (picked < now_row)))
            near[f"{side}_nearest_{other}{kind}"][mine[ok]] = picked[ok]
            near[f"{side}_nearest_{other}{kind}_dist"][mine[ok]] = best[ok]
    flat = np.flatnonzero(same_sq < max_dist * max_dist * (1 + 1e-9))  # a superset; the exact test follows
    n_gt, n_dt = same_sq.shape[1:]
    piece, position = flat // (n_gt * n_dt), flat % n_dt
    pair_dt, pair_gt = d[piece, position], g[piece, flat // n_dt % n_gt]
    dist = np.sqrt(same_sq.ravel()[flat])
    keep = (dist < max_dist) & classes.dt_evaluated[pair_dt] & classes.gt_evaluated[pair_gt]
    return pair_dt[keep], pair_gt[keep], dist[keep]


def _rows_by_frame(frame: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    return np.argsort(frame, kind="stable"), np.bincount(frame, minlength=n_frames)


def _padded(rows: np.ndarray, start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``(len(start), max count)``: ``rows[start[i] : start[i] + count[i]]`` in row i, -1 padded."""
    local = np.repeat(np.arange(len(start)), count)
    position = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    out = np.full((len(start), int(count.max())), -1, np.int64)
    out[local, position] = rows[np.repeat(start, count) + position]
    return out
