"""``FrameSet``: the ground truth and detections of a set of 3-D frames, one row per box.

Every metric of ``ml_debugger.tasks.detection3d.nuscenes_metrics`` reads this columnar form.
Rows keep the order they were given in; within a frame, that order is the order of the frame's
box list in the nuScenes devkit (``EvalBoxes``), which breaks its exact ties (equal scores,
equal centre distances), so results depend on it exactly as the devkit's do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection3d.batch import FrameBoxes

__all__ = ["DEFAULT_RANGE_EDGES", "FrameSet", "range_bins"]

BOX_COLUMNS = ("cx", "cy", "cz", "w", "l", "h", "yaw")
DEFAULT_RANGE_EDGES = (0.0, 20.0, 30.0, 40.0, 50.0, np.inf)  # metres from the ego origin


@dataclass(frozen=True, eq=False, kw_only=True)
class FrameSet:
    """Ground truth and detections of a set of frames, columnar (one row per box).

    Frames are ``0 .. n_frames - 1``; frames without any box still count. Boxes are
    ``[cx, cy, cz, w, l, h, yaw]``: the gravity centre and the size in metres, the heading in
    radians about z, in the frame the ego distance is measured in (LiDAR or ego). The nuScenes
    devkit's ``DetectionBox`` of a row has ``translation = (cx, cy, cz)``, ``size = (w, l, h)``
    (its ``wlh`` order) and ``rotation`` the quaternion of ``yaw`` about z.

    Optional columns and their defaults:

    - ``*_velocities`` ``(n, 2)`` ``[vx, vy]`` in m/s; NaN where unknown (nuScenes has GT boxes
      without a velocity). Default all NaN, which gives every class a velocity error of 1.
    - ``gt_num_points``: LiDAR (+ radar) points inside each GT box; -1 = unknown. GT boxes with
      exactly 0 points are not evaluated (the devkit's ``filter_eval_boxes``). Default all -1.
    - ``*_attributes``: nuScenes attribute names, ``None`` or ``""`` for none. Default none.
    - ``ego_xy`` ``(n_frames, 2)``: where the ego vehicle's origin is in each frame's box
      coordinates. ``gt_distance_from_ego`` / ``dt_distance_from_ego``, the xy distance from it
      (the devkit's ``ego_dist``), decide the class-range filter. Default the origin. The devkit
      measures from the ego pose on global boxes; with boxes in the LiDAR frame, pass the ego
      origin in LiDAR coordinates (the inverse of the sensor's calibrated translation, about 1 m
      in nuScenes) to filter as it does (up to the ego's small pitch and roll).

    Arrays are converted to the documented dtypes, validated (errors name the field) and made
    read-only.
    """

    n_frames: int
    gt_frame: np.ndarray  # (n_gt,) int64
    gt_boxes: np.ndarray  # (n_gt, 7) float64
    gt_labels: np.ndarray  # (n_gt,) int64
    gt_velocities: np.ndarray | None = None  # (n_gt, 2) float64, NaN = unknown
    gt_num_points: np.ndarray | None = None  # (n_gt,) int64, -1 = unknown
    gt_attributes: np.ndarray | Sequence[str | None] | None = None  # (n_gt,) object str, "" = none
    dt_frame: np.ndarray  # (n_dt,) int64
    dt_boxes: np.ndarray  # (n_dt, 7) float64
    dt_scores: np.ndarray  # (n_dt,) float64
    dt_labels: np.ndarray  # (n_dt,) int64
    dt_velocities: np.ndarray | None = None  # (n_dt, 2) float64, NaN = unknown
    dt_attributes: np.ndarray | Sequence[str | None] | None = None  # (n_dt,) object str, "" = none
    ego_xy: np.ndarray | None = None  # (n_frames, 2) float64
    gt_distance_from_ego: np.ndarray = field(init=False, repr=False)  # (n_gt,) xy distance from the ego origin
    dt_distance_from_ego: np.ndarray = field(init=False, repr=False)  # (n_dt,)

    def __post_init__(self) -> None:
        if isinstance(self.n_frames, bool) or not isinstance(self.n_frames, (int, np.integer)):
            raise ConfigurationError(f"n_frames must be an int; got {type(self.n_frames).__name__}")
        if self.n_frames < 0:
            raise ConfigurationError(f"n_frames must be >= 0; got {self.n_frames}")
        object.__setattr__(self, "n_frames", int(self.n_frames))
        ego = np.zeros((self.n_frames, 2)) if self.ego_xy is None else _floats(self.ego_xy, "ego_xy", (self.n_frames, 2))
        if not np.isfinite(ego).all():
            raise ConfigurationError("ego_xy must be finite")
        self._set("ego_xy", ego)
        for side in ("gt", "dt"):
            boxes = _boxes(getattr(self, f"{side}_boxes"), f"{side}_boxes")
            n = len(boxes)
            self._set(f"{side}_boxes", boxes)
            frame = _ints(getattr(self, f"{side}_frame"), f"{side}_frame", n)
            if n and (frame.min() < 0 or frame.max() >= self.n_frames):
                raise ConfigurationError(
                    f"{side}_frame must be in [0, n_frames={self.n_frames}); got values in [{frame.min()}, {frame.max()}]"
                )
            self._set(f"{side}_frame", frame)
            labels = _ints(getattr(self, f"{side}_labels"), f"{side}_labels", n)
            if n and labels.min() < 0:
                raise ConfigurationError(f"{side}_labels must be >= 0; got {labels.min()}")
            self._set(f"{side}_labels", labels)
            velocities = getattr(self, f"{side}_velocities")
            velocities = np.full((n, 2), np.nan) if velocities is None else _floats(velocities, f"{side}_velocities", (n, 2))
            if np.isinf(velocities).any():
                raise ConfigurationError(f"{side}_velocities must not be infinite (NaN marks an unknown velocity)")
            self._set(f"{side}_velocities", velocities)
            self._set(f"{side}_attributes", _attributes(getattr(self, f"{side}_attributes"), f"{side}_attributes", n))
            offset = boxes[:, :2] - ego[frame]
            # The devkit's EvalBox.ego_dist: sqrt(sum(ego_translation[:2] ** 2)), bit for bit.
            self._set(f"{side}_distance_from_ego", np.sqrt(offset[:, 0] ** 2 + offset[:, 1] ** 2))
        n_gt = len(self.gt_boxes)
        points = np.full(n_gt, -1, np.int64) if self.gt_num_points is None else _ints(self.gt_num_points, "gt_num_points", n_gt)
        if n_gt and points.min() < -1:
            raise ConfigurationError(f"gt_num_points must be >= 0 (or -1 for unknown); got {points.min()}")
        self._set("gt_num_points", points)
        scores = _floats(self.dt_scores, "dt_scores", (len(self.dt_boxes),))
        if not np.isfinite(scores).all():
            raise ConfigurationError("dt_scores must be finite")
        self._set("dt_scores", scores)

    def _set(self, name: str, value: np.ndarray) -> None:
        """Store ``value`` read-only; a copy when it may be (a view of) the caller's array."""
        given = getattr(self, name, None)  # what the caller passed (None for the derived fields)
        fresh = given is None or isinstance(given, (list, tuple)) or (
            isinstance(given, np.ndarray) and not np.may_share_memory(value, given)
        )
        value = value if fresh and value is not given else np.array(value, copy=True)
        value.setflags(write=False)
        object.__setattr__(self, name, value)

    @property
    def n_gt(self) -> int:
        return len(self.gt_boxes)

    @property
    def n_dt(self) -> int:
        return len(self.dt_boxes)

    @classmethod
    def from_per_frame(
        cls,
        targets: Sequence[Mapping[str, object] | FrameBoxes],
        predictions: Sequence[Mapping[str, object] | FrameBoxes],
        *,
        ego_xy: np.ndarray | None = None,
    ) -> FrameSet:
        """Build from one entry per frame: a ``FrameBoxes`` or a dict in MMDetection3D's layout.

        Dicts have ``boxes_3d`` (``(n, 7)``, or ``(n, 9)`` with ``[vx, vy]`` appended) and
        ``labels_3d``, predictions ``scores_3d``; optional ``velocities``, ``num_points`` (GT)
        and ``attributes``, given for every frame or for none. Both lists index the same frames.
        """
        if len(targets) != len(predictions):
            raise ConfigurationError(
                f"targets and predictions must list the same frames; got {len(targets)} and {len(predictions)}"
            )
        gt = _stack([_as_dict(t) for t in targets], ("labels_3d",), ("velocities", "num_points", "attributes"), "targets")
        dt = _stack([_as_dict(p) for p in predictions], ("labels_3d", "scores_3d"), ("velocities", "attributes"), "predictions")
        return cls(
            n_frames=len(targets),
            gt_frame=gt["frame"],
            gt_boxes=gt["boxes_3d"],
            gt_labels=gt["labels_3d"],
            gt_velocities=gt.get("velocities"),
            gt_num_points=gt.get("num_points"),
            gt_attributes=gt.get("attributes"),
            dt_frame=dt["frame"],
            dt_boxes=dt["boxes_3d"],
            dt_scores=dt["scores_3d"],
            dt_labels=dt["labels_3d"],
            dt_velocities=dt.get("velocities"),
            dt_attributes=dt.get("attributes"),
            ego_xy=ego_xy,
        )


def range_bins(distance: np.ndarray, edges: Sequence[float] = DEFAULT_RANGE_EDGES) -> pd.Categorical:
    """Distance bins ``[lo, hi)`` (labels like ``"10-20m"``, ``"50m+"``) of distances from the ego origin.

    ``edges`` are increasing; the last may be ``inf``. A distance outside every bin is NaN.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not (np.diff(edges) > 0).all():
        raise ConfigurationError(f"edges must be at least two increasing values; got {edges.tolist()}")
    labels = [f"{lo:g}m+" if np.isinf(hi) else f"{lo:g}-{hi:g}m" for lo, hi in pairwise(edges)]
    return pd.cut(np.asarray(distance, dtype=np.float64), edges, right=False, labels=labels)


def _as_dict(entry: Mapping[str, object] | FrameBoxes) -> Mapping[str, object]:
    if not isinstance(entry, FrameBoxes):
        return entry
    names = {"boxes_3d": entry.boxes, "labels_3d": entry.labels, "scores_3d": entry.scores, "velocities": entry.velocities,
             "num_points": entry.num_points, "attributes": entry.attributes}  # fmt: skip
    return {key: value for key, value in names.items() if value is not None}


def _stack(
    entries: Sequence[Mapping[str, object]], required: tuple[str, ...], optional: tuple[str, ...], name: str
) -> dict[str, np.ndarray]:
    """Concatenate per-frame dicts into columns plus a ``frame`` column; optional keys in all or none."""
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ("frame", "boxes_3d", *required, *optional)}
    for frame, entry in enumerate(entries):
        missing = [key for key in ("boxes_3d", *required) if key not in entry]
        if missing:
            raise ConfigurationError(f"{name}[{frame}] has no {missing}; it has {sorted(entry)}")
        boxes = np.asarray(entry["boxes_3d"], dtype=np.float64)
        boxes = boxes.reshape(0, 7) if boxes.size == 0 else boxes
        if boxes.ndim != 2 or boxes.shape[1] not in (7, 9):
            raise ConfigurationError(f"{name}[{frame}]['boxes_3d'] must have shape (n, 7) or (n, 9); got {boxes.shape}")
        present = dict(entry)
        if boxes.shape[1] == 9 and entry.get("velocities") is None:
            present["velocities"] = boxes[:, 7:9]
        parts["frame"].append(np.full(len(boxes), frame, np.int64))
        parts["boxes_3d"].append(boxes[:, :7])
        for key in (*required, *optional):
            if present.get(key) is None:
                continue
            values = np.asarray(present[key], dtype=object if key == "attributes" else None)
            values = values.reshape(len(boxes), 2) if key == "velocities" and values.size == 2 * len(boxes) else values
            if len(values) != len(boxes):
                raise ConfigurationError(f"{name}[{frame}][{key!r}] has {len(values)} values for {len(boxes)} boxes")
            parts[key].append(values)
    columns: dict[str, np.ndarray] = {}
    for key, arrays in parts.items():
        if key in optional and not arrays:
            continue
        if key in optional and len(arrays) != len(entries):
            raise ConfigurationError(f"{name}: {key!r} must be given for every frame or for none")
        empty = np.zeros((0, 7) if key == "boxes_3d" else (0, 2) if key == "velocities" else 0)
        columns[key] = np.concatenate(arrays) if arrays else empty
    return columns


def _column(values: object, name: str, n: int) -> np.ndarray:
    array = np.asarray(values)
    if array.shape != (n,):
        raise ConfigurationError(f"{name} must have shape ({n},); got {array.shape}")
    return array


def _ints(values: object, name: str, n: int) -> np.ndarray:
    array = _column(values, name, n)
    if array.dtype.kind not in "iu" and not (n == 0 or np.array_equal(array, np.round(array))):
        raise ConfigurationError(f"{name} must hold integers; got dtype {array.dtype}")
    return array.astype(np.int64)


def _floats(values: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 and np.prod(shape) == 0:
        array = array.reshape(shape)
    if array.shape != shape:
        raise ConfigurationError(f"{name} must have shape {shape}; got {array.shape}")
    return array


def _boxes(values: object, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        array = array.reshape(0, 7)
    if array.ndim != 2 or array.shape[1] != 7:
        raise ConfigurationError(f"{name} must have shape (n, 7) as [cx, cy, cz, w, l, h, yaw]; got {array.shape}")
    if not np.isfinite(array).all():
        raise ConfigurationError(f"{name} must be finite")
    if (array[:, 3:6] < 0).any():
        row = int(np.flatnonzero((array[:, 3:6] < 0).any(axis=1))[0])
        raise ConfigurationError(f"{name} must have sizes w, l, h >= 0; row {row} is {array[row].tolist()}")
    return array


def _attributes(values: object, name: str, n: int) -> np.ndarray:
    """Names as an object array, ``None`` as ``""``; checked on the distinct values (hashed)."""
    if values is None:
        return np.full(n, "", dtype=object)
    array = _column(np.asarray(values, dtype=object), name, n)
    none = np.equal(array, None)
    try:
        distinct = pd.unique(array[~none])
    except TypeError:  # an unhashable value: check them one by one
        distinct = array[~none]
    bad = [v for v in distinct if not isinstance(v, str)]
    if bad:
        raise ConfigurationError(f"{name} must hold strings or None; got {type(bad[0]).__name__}")
    return np.where(none, "", array)
