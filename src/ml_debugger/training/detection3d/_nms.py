"""Bird's-eye-view IoU of rotated boxes and the class-wise NMS that PointPillars tracers apply."""

from __future__ import annotations

import numpy as np


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """``(n, 4, 2)`` counter-clockwise BEV corners of ``[cx, cy, cz, w, l, h, yaw]`` boxes
    (``l`` along the heading ``yaw``, ``w`` across it)."""
    half_l, half_w = boxes[:, 4] / 2, boxes[:, 3] / 2
    local = np.stack(
        [
            np.stack([half_l, half_w], -1),
            np.stack([-half_l, half_w], -1),
            np.stack([-half_l, -half_w], -1),
            np.stack([half_l, -half_w], -1),
        ],
        axis=1,
    )
    cos, sin = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * cos - local[..., 1] * sin + boxes[:, None, 0]
    y = local[..., 0] * sin + local[..., 1] * cos + boxes[:, None, 1]
    return np.stack([x, y], axis=-1)


def _cross(o: np.ndarray, a: np.ndarray, p: np.ndarray) -> np.ndarray:
    """z of ``(a - o) x (p - o)``: positive when ``p`` is left of the directed edge ``o -> a``."""
    return (a[..., 0] - o[..., 0]) * (p[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (p[..., 0] - o[..., 0])


def _clip(
    polygons: np.ndarray, counts: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One Sutherland-Hodgman step for many pairs at once: keep the part of each convex polygon
    ``(k, v, 2)`` (first ``counts`` vertices valid) left of its edge ``start -> end`` ``(k, 2)``."""
    k, v = polygons.shape[:2]
    index = np.arange(v)
    valid = index[None] < counts[:, None]
    previous = polygons[np.arange(k)[:, None], (index[None] - 1) % np.maximum(counts[:, None], 1)]
    side_now = _cross(start[:, None], end[:, None], polygons) >= 0
    side_before = _cross(start[:, None], end[:, None], previous) >= 0
    d_now = _cross(start[:, None], end[:, None], polygons)
    d_before = _cross(start[:, None], end[:, None], previous)
    t = d_before / (d_before - d_now)  # NaN where the sides agree: those crossings are not kept
    crossing = previous + t[..., None] * (polygons - previous)
    # Each input vertex emits up to two output vertices: the crossing, then itself.
    out = np.stack([crossing, polygons], axis=2).reshape(k, 2 * v, 2)
    keep = np.stack([valid & (side_now != side_before), valid & side_now], axis=2).reshape(k, 2 * v)
    rank = np.argsort(~keep, axis=1, kind="stable")
    packed = np.take_along_axis(out, rank[..., None], axis=1)[:, :8]
    return packed, np.minimum(keep.sum(axis=1), 8)


def _area(polygons: np.ndarray, counts: np.ndarray) -> np.ndarray:
    index = np.arange(polygons.shape[1])
    following = polygons[np.arange(len(polygons))[:, None], (index[None] + 1) % np.maximum(counts[:, None], 1)]
    terms = polygons[..., 0] * following[..., 1] - polygons[..., 1] * following[..., 0]
    return 0.5 * np.abs(np.where(index[None] < counts[:, None], terms, 0.0).sum(axis=1))


def bev_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """``(n, m)`` IoU of the rotated BEV rectangles of two sets of ``[cx, cy, cz, w, l, h, yaw]`` boxes."""
    a, b = np.asarray(boxes_a, np.float64).reshape(-1, 7), np.asarray(boxes_b, np.float64).reshape(-1, 7)
    iou = np.zeros((len(a), len(b)))
    radius_a, radius_b = np.hypot(a[:, 3], a[:, 4]) / 2, np.hypot(b[:, 3], b[:, 4]) / 2
    distance = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    ia, ib = np.nonzero(distance < radius_a[:, None] + radius_b[None])  # pairs whose circles meet
    if len(ia) == 0:
        return iou
    clipper = bev_corners(b)[ib]
    polygons = np.zeros((len(ia), 8, 2))
    polygons[:, :4] = bev_corners(a)[ia]
    counts = np.full(len(ia), 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        for edge in range(4):
            polygons, counts = _clip(polygons, counts, clipper[:, edge], clipper[:, (edge + 1) % 4])
        inter = _area(polygons, counts)
    union = a[ia, 3] * a[ia, 4] + b[ib, 3] * b[ib, 4] - inter
    iou[ia, ib] = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou


def nms_bev(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices of the boxes kept by greedy class-wise NMS on BEV IoU, by descending score.

    A box is suppressed when its IoU with a higher-scoring kept box of the same class exceeds
    ``iou_thresh`` (as MMDetection3D's ``box3d_multiclass_nms`` and OpenPCDet's NMS do).
    """
    keep: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(-scores[members], kind="stable")]
        iou = bev_iou(boxes[members], boxes[members])
        suppressed = np.zeros(len(members), dtype=bool)
        for i in range(len(members)):
            if not suppressed[i]:
                suppressed[i + 1 :] |= iou[i, i + 1 :] > iou_thresh
        keep.append(members[~suppressed])
    kept = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return kept[np.argsort(-scores[kept], kind="stable")]
