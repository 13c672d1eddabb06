"""The settings of the nuScenes detection evaluation, and how labels map to evaluated classes.

``NUSCENES_DEFAULTS`` is the devkit's ``detection_cvpr_2019`` configuration, the one every
published nuScenes detection number uses, plus the per-class special cases that
``DetectionEval.evaluate`` and ``accumulate`` hard-code by class name (barrier orientation
period pi; no orientation, velocity or attribute error for traffic cones; no velocity or
attribute error for barriers), made explicit here so that other class sets can state theirs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ml_debugger.exceptions import ConfigurationError
from ml_debugger.tasks.detection3d.frame_set import FrameSet

__all__ = ["NUSCENES_CLASS_RANGE", "NUSCENES_DEFAULTS", "TP_METRICS", "EvaluatedClasses", "NuScenesConfig", "devkit_order"]

TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")  # devkit order
NUSCENES_CLASS_RANGE: Mapping[str, float] = MappingProxyType({
    "car": 50.0, "truck": 50.0, "bus": 50.0, "trailer": 50.0, "construction_vehicle": 50.0,
    "pedestrian": 40.0, "motorcycle": 40.0, "bicycle": 40.0, "traffic_cone": 30.0, "barrier": 30.0,
})  # fmt: skip


@dataclass(frozen=True)
class NuScenesConfig:
    """Evaluation settings (the devkit's ``DetectionConfig`` plus its hard-coded class rules).

    - ``class_range``: a box (GT or detection) of class ``name`` is evaluated only if its xy
      distance from the ego origin is ``< class_range[name]`` metres. Classes not listed use
      ``default_range``; ``None`` means no range filter for them.
    - ``dist_ths``: centre-distance thresholds of AP (a match needs distance ``< th``);
      ``dist_th_tp``: the one whose matches give the TP errors (must be in ``dist_ths``).
    - ``min_recall`` / ``min_precision``: AP and TP errors ignore the operating points with
      recall ``<= min_recall``; AP clips precision at ``min_precision`` and rescales.
    - ``mean_ap_weight``: NDS = (w * mAP + sum of the 5 TP scores) / (w + 5).
    - ``orientation_period``: per class name, the period of the heading (default 2 pi).
    - ``undefined_tp_errors``: per class name, TP errors that are NaN for that class (left out
      of the class means).
    - ``remove_zero_point_gt``: drop GT boxes whose ``num_points`` is exactly 0.
    """

    class_range: Mapping[str, float] = field(default_factory=lambda: NUSCENES_CLASS_RANGE)
    default_range: float | None = None
    dist_ths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    dist_th_tp: float = 2.0
    min_recall: float = 0.1
    min_precision: float = 0.1
    mean_ap_weight: float = 5.0
    orientation_period: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({"barrier": math.pi}))
    undefined_tp_errors: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(
            {"traffic_cone": ("attr_err", "vel_err", "orient_err"), "barrier": ("attr_err", "vel_err")}
        )
    )
    remove_zero_point_gt: bool = True

    def __post_init__(self) -> None:
        ranges = dict(self.class_range)
        if any(not isinstance(v, numbers.Real) or not v > 0 for v in ranges.values()):
            raise ConfigurationError(f"class_range must map class names to ranges > 0; got {ranges}")
        if self.default_range is not None and not self.default_range > 0:
            raise ConfigurationError(f"default_range must be > 0 or None; got {self.default_range}")
        ths = tuple(float(t) for t in self.dist_ths)
        if not ths or not all(t > 0 and math.isfinite(t) for t in ths) or len(set(ths)) != len(ths):
            raise ConfigurationError(f"dist_ths must be distinct finite values > 0; got {list(self.dist_ths)}")
        if float(self.dist_th_tp) not in ths:
            raise ConfigurationError(f"dist_th_tp must be one of dist_ths {list(ths)}; got {self.dist_th_tp}")
        if not 0 <= self.min_recall <= 1:
            raise ConfigurationError(f"min_recall must be in [0, 1]; got {self.min_recall}")
        if not 0 <= self.min_precision < 1:
            raise ConfigurationError(f"min_precision must be in [0, 1); got {self.min_precision}")
        if not self.mean_ap_weight >= 0:
            raise ConfigurationError(f"mean_ap_weight must be >= 0; got {self.mean_ap_weight}")
        periods = dict(self.orientation_period)
        if any(not v > 0 for v in periods.values()):
            raise ConfigurationError(f"orientation_period must map class names to periods > 0; got {periods}")
        undefined = {name: tuple(metrics) for name, metrics in self.undefined_tp_errors.items()}
        unknown = sorted({m for metrics in undefined.values() for m in metrics} - set(TP_METRICS))
        if unknown:
            raise ConfigurationError(f"undefined_tp_errors names unknown TP metrics {unknown}; they are {list(TP_METRICS)}")
        object.__setattr__(self, "class_range", MappingProxyType(ranges))
        object.__setattr__(self, "dist_ths", ths)
        object.__setattr__(self, "dist_th_tp", float(self.dist_th_tp))
        object.__setattr__(self, "orientation_period", MappingProxyType(periods))
        object.__setattr__(self, "undefined_tp_errors", MappingProxyType(undefined))

    def range_of(self, name: str) -> float:
        """The class range of ``name`` (``inf`` when it has none)."""
        value = self.class_range.get(name, self.default_range)
        return math.inf if value is None else float(value)


NUSCENES_DEFAULTS = NuScenesConfig()


@dataclass(frozen=True, eq=False)
class EvaluatedClasses:
    """The classes ``class_names`` names, sorted by label, and every row's class and filters.

    ``gt_class`` / ``dt_class`` index ``labels`` / ``names``. Filters (the devkit's
    ``filter_eval_boxes``): a box is *in range* if its ``distance`` from the ego origin is
    ``< range`` of its class; a GT box *has points* unless ``num_points == 0`` (or
    ``remove_zero_point_gt`` is off). Detections never have points removed (the devkit loads
    them with ``num_pts = -1``). The devkit's bike-rack filter (bicycles and motorcycles whose
    centre lies inside a ``static_object.bicycle_rack`` annotation) is not reproduced: those
    annotations are not detection classes and are not in a trace; drop such rows beforehand.
    """

    labels: np.ndarray  # (K,) int64, sorted
    names: tuple[str, ...]
    ranges: np.ndarray  # (K,) float64, inf = none
    periods: np.ndarray  # (K,) float64 orientation period
    gt_class: np.ndarray  # (n_gt,) int64
    dt_class: np.ndarray  # (n_dt,) int64
    gt_in_range: np.ndarray  # (n_gt,) bool
    gt_has_points: np.ndarray  # (n_gt,) bool
    dt_in_range: np.ndarray  # (n_dt,) bool
    dt_order: np.ndarray  # evaluated detection rows by class, each class in the devkit's visiting order

    @property
    def gt_evaluated(self) -> np.ndarray:
        return self.gt_in_range & self.gt_has_points

    @property
    def dt_evaluated(self) -> np.ndarray:
        return self.dt_in_range

    @classmethod
    def resolve(cls, frames: FrameSet, class_names: Mapping[int, str], config: NuScenesConfig) -> EvaluatedClasses:
        """Check ``class_names`` (label -> unique name) against the rows and apply the filters."""
        if not isinstance(class_names, Mapping) or not class_names:
            raise ConfigurationError("class_names must be a non-empty mapping of label -> class name")
        labels = np.array(sorted(int(label) for label in class_names), dtype=np.int64)
        names = tuple(str(class_names[label]) for label in labels.tolist())
        if len(set(names)) != len(names):
            raise ConfigurationError(f"class_names must give each label its own name; got {dict(class_names)}")
        classes = {}
        for side in ("gt", "dt"):
            row_labels = getattr(frames, f"{side}_labels")
            index = np.minimum(np.searchsorted(labels, row_labels), len(labels) - 1)
            unknown = np.unique(row_labels[labels[index] != row_labels])
            if len(unknown):
                raise ConfigurationError(
                    f"{side}_labels has labels {unknown[:10].tolist()} that class_names does not name "
                    f"(it names {labels.tolist()})"
                )
            classes[side] = index
        ranges = np.array([config.range_of(name) for name in names])
        periods = np.array([config.orientation_period.get(name, 2 * math.pi) for name in names], dtype=np.float64)
        has_points = frames.gt_num_points != 0 if config.remove_zero_point_gt else np.ones(frames.n_gt, bool)
        dt_in_range = frames.dt_distance_from_ego < ranges[classes["dt"]]
        return cls(
            labels=labels,
            names=names,
            ranges=ranges,
            periods=periods,
            gt_class=classes["gt"],
            dt_class=classes["dt"],
            gt_in_range=frames.gt_distance_from_ego < ranges[classes["gt"]],
            gt_has_points=has_points,
            dt_in_range=dt_in_range,
            dt_order=devkit_order(frames, classes["dt"], dt_in_range),
        )


def devkit_order(frames: FrameSet, dt_class: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The rows where ``keep`` holds, sorted by class, then in the order ``accumulate`` visits them.

    ``accumulate`` pools a class's detections frame by frame (rows of a frame in order) and
    visits them by ``sorted((score, index))[::-1]``: descending score, then descending pooled
    index (a later frame first, and within a frame a later row first).
    """
    rows = np.flatnonzero(keep)
    rows = rows[stable_argsort(frames.dt_frame[rows], frames.n_frames)][::-1]  # descending pooled index
    rows = rows[np.argsort(-frames.dt_scores[rows], kind="stable")]
    return rows[stable_argsort(dt_class[rows], int(dt_class.max(initial=0)))]


def stable_argsort(values: np.ndarray, largest: int) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` of non-negative ints at most ``largest``; as 16-bit
    ints when they fit, which numpy sorts by radix (several times faster on millions of rows)."""
    small = values.astype(np.int16) if largest < 2**15 else values
    return np.argsort(small, kind="stable")
