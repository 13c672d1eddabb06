"""nuScenes detection metrics: the devkit's ``DetectionEval.evaluate`` on a ``FrameSet``.

The same numbers as ``nuscenes.eval.detection`` (devkit 1.2.0) computes from the same boxes,
without its per-box Python loops:

1. **Filter** (``filter_eval_boxes``): GT and detections outside their class range (xy distance
   from the ego origin ``>= class_range``) are dropped, and GT boxes with ``num_points == 0``
   (see ``EvaluatedClasses`` for what is and is not reproduced).
2. **Match** (``accumulate``, per class and distance threshold): greedy, in descending score
   order over all frames, by xy centre distance ``< th`` (``center_matching``).
3. **Precision/recall** (``accumulate``): along that order ``tp`` and ``fp`` are cumulated,
   ``precision = tp / (tp + fp)``, ``recall = tp / n_gt``; precision and the detection score
   (``confidence``) are linearly interpolated (``np.interp``, 0 beyond the last recall) at the
   101 recalls ``0, 0.01, ..., 1``. A class without GT or without any match gets the devkit's
   ``no_predictions`` data: precision and confidence 0, every TP error 1.
4. **TP error curves** (at ``dist_th_tp`` only): for each error, the cumulative mean over the
   matches in visiting order (NaN values left out; all NaN gives 1 everywhere) is interpolated
   at the interpolated confidences (``np.interp`` on the reversed, ascending arrays).
5. **AP** (``calc_ap``): mean over the recall points above ``min_recall`` (indices from
   ``round(100 * min_recall) + 1``) of ``max(precision - min_precision, 0)``, divided by
   ``1 - min_precision``. **TP error** (``calc_tp``): mean of the error curve from that index
   to the last point with non-zero confidence (the maximum recall reached), or 1 if that point
   comes earlier. Errors in ``config.undefined_tp_errors`` are NaN for their class.
6. **Summary** (``DetectionMetrics``): ``map`` = mean over classes of the mean AP over
   thresholds; ``mate``, ``mase``, ``maoe``, ``mave``, ``maae`` = mean over classes of each TP
   error, NaN left out; TP score = ``max(0, 1 - error)`` (0 if the error is NaN); ``nds`` =
   ``(w * map + sum of the 5 TP scores) / (w + 5)`` with ``w = mean_ap_weight`` (5).

Every class of ``class_names`` counts, as every class of the devkit's configuration does: a
class with no GT has AP 0 and TP errors 1. Known difference: the devkit computes each centre
distance and velocity error with ``np.linalg.norm`` (a BLAS dot product, which may fuse the
multiply-add) and yaw through a quaternion; here they are ``sqrt(dx * dx + dy * dy)`` and an
``arctan2`` round trip. Values can differ in the last bit, which changes a match only when a
distance lies within one ulp of a threshold or of another candidate's distance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml_debugger.tasks.detection3d.center_matching import (
    CenterMatching,
    box_pair_errors,
    match_centers,
    match_classes,
)
from ml_debugger.tasks.detection3d.frame_set import DEFAULT_RANGE_EDGES, FrameSet, range_bins
from ml_debugger.tasks.detection3d.nuscenes_config import (
    NUSCENES_CLASS_RANGE,
    NUSCENES_DEFAULTS,
    TP_METRICS,
    EvaluatedClasses,
    NuScenesConfig,
)

__all__ = [
    "DEFAULT_RANGE_EDGES",
    "METRIC_NAMES",
    "NUSCENES_CLASS_RANGE",
    "NUSCENES_DEFAULTS",
    "RECALLS",
    "TP_METRICS",
    "CenterMatching",
    "FrameSet",
    "MetricCurves",
    "NuScenesConfig",
    "NuScenesEvaluation",
    "box_pair_errors",
    "match_centers",
    "nuscenes_evaluate",
    "range_bins",
]

RECALLS = np.linspace(0, 1, 101)  # DetectionMetricData.nelem points, as accumulate builds them
METRIC_NAMES = ("map", "nds", "mate", "mase", "maoe", "mave", "maae")
_MEAN_NAMES = dict(zip(TP_METRICS, METRIC_NAMES[2:]))


@dataclass(frozen=True, eq=False)
class MetricCurves:
    """The devkit's ``DetectionMetricData`` of every class (axis 0, ``class_names`` order).

    ``precision`` and ``confidence`` ``(K, T, 101)`` at each distance threshold (axis 1);
    ``tp_errors[name]`` ``(K, 101)`` at ``dist_th_tp``; all read at ``RECALLS``.
    """

    dist_ths: np.ndarray  # (T,)
    precision: np.ndarray  # (K, T, 101)
    confidence: np.ndarray  # (K, T, 101)
    tp_errors: dict[str, np.ndarray]  # name -> (K, 101)


@dataclass(frozen=True, eq=False)
class NuScenesEvaluation:
    """Result of ``nuscenes_evaluate``.

    ``metrics``: ``map``, ``nds``, ``mate``, ``mase``, ``maoe``, ``mave``, ``maae`` (the devkit's
    ``mean_ap``, ``nd_score`` and ``tp_errors``; a mean TP error is NaN only when every class
    has it undefined).

    ``per_class``: one row per class of ``class_names``, sorted by label: ``label``, ``name``,
    ``n_gt`` / ``n_dt`` (boxes left after the filters), ``ap`` (mean over thresholds),
    ``ap_{th}`` for each threshold (``ap_0.5``, ``ap_1.0``, ``ap_2.0``, ``ap_4.0``), and the TP
    errors ``trans_err``, ``scale_err``, ``orient_err``, ``vel_err``, ``attr_err`` (NaN where
    undefined for the class).

    ``curves``: the interpolated curves behind them. ``matching``: per-object matches and errors
    at the analysis threshold (see ``CenterMatching``).
    """

    metrics: dict[str, float]
    per_class: pd.DataFrame
    class_names: tuple[str, ...]
    labels: np.ndarray
    config: NuScenesConfig
    curves: MetricCurves
    matching: CenterMatching


def nuscenes_evaluate(
    frames: FrameSet,
    *,
    class_names: Mapping[int, str],
    config: NuScenesConfig = NUSCENES_DEFAULTS,
    match_threshold: float | None = None,
) -> NuScenesEvaluation:
    """nuScenes detection evaluation of ``frames``, equal to the devkit's (see the module doc).

    ``class_names`` maps every label of the rows to a class name (unique); class ranges and the
    per-class rules of ``config`` are looked up by name. ``match_threshold`` is the distance of
    the per-object ``matching`` (default ``config.dist_th_tp``, the matches of the TP errors).
    """
    classes = EvaluatedClasses.resolve(frames, class_names, config)
    matching = match_classes(frames, classes, config, match_threshold)
    curves = _accumulate(frames, classes, matching, config)
    first = round(100 * config.min_recall) + 1  # calc_ap / calc_tp: +1 leaves out the min-recall point
    clipped = curves.precision[:, :, first:] - config.min_precision
    clipped[clipped < 0] = 0
    ap = clipped.mean(axis=2) / (1.0 - config.min_precision)
    t_tp = config.dist_ths.index(config.dist_th_tp)
    tp = np.column_stack([_calc_tp(curves, name, first, t_tp) for name in TP_METRICS])
    for k, name in enumerate(classes.names):
        for metric in config.undefined_tp_errors.get(name, ()):
            tp[k, TP_METRICS.index(metric)] = np.nan
    return NuScenesEvaluation(
        metrics=_summary(ap, tp, config.mean_ap_weight),
        per_class=_per_class(classes, ap, tp, config),
        class_names=classes.names,
        labels=classes.labels,
        config=config,
        curves=curves,
        matching=matching,
    )


def _accumulate(
    frames: FrameSet, classes: EvaluatedClasses, matching: CenterMatching, config: NuScenesConfig
) -> MetricCurves:
    """``accumulate`` for every class and threshold (module doc, steps 3 and 4)."""
    n_classes, n_ths = len(classes.names), len(config.dist_ths)
    precision = np.zeros((n_classes, n_ths, len(RECALLS)))
    confidence = np.zeros((n_classes, n_ths, len(RECALLS)))
    tp_errors = {name: np.ones((n_classes, len(RECALLS))) for name in TP_METRICS}
    n_gt = np.bincount(classes.gt_class[classes.gt_evaluated], minlength=n_classes)
    order = classes.dt_order
    bounds = np.searchsorted(classes.dt_class[order], np.arange(n_classes + 1))
    t_tp = config.dist_ths.index(config.dist_th_tp)
    for k in np.flatnonzero(n_gt):
        rows = order[bounds[k] : bounds[k + 1]]
        conf = frames.dt_scores[rows]
        for t in range(n_ths):
            match = matching.dt_match_at[rows, t]
            is_tp = match >= 0
            if not is_tp.any():
                continue  # no_predictions
            tp = np.cumsum(is_tp).astype(float)
            fp = np.cumsum(~is_tp).astype(float)
            recall = tp / float(n_gt[k])
            precision[k, t] = np.interp(RECALLS, recall, tp / (fp + tp), right=0)
            confidence[k, t] = np.interp(RECALLS, recall, conf, right=0)
            if t != t_tp:
                continue
            errors = box_pair_errors(frames, rows[is_tp], match[is_tp], classes.periods[k])
            match_conf = conf[is_tp][::-1]
            for name in TP_METRICS:
                tp_errors[name][k] = np.interp(confidence[k, t][::-1], match_conf, _cummean(errors[name])[::-1])[::-1]
    return MetricCurves(dist_ths=np.array(config.dist_ths), precision=precision, confidence=confidence, tp_errors=tp_errors)


def _cummean(x: np.ndarray) -> np.ndarray:
    """The devkit's ``cummean``: running mean without NaNs (0 before the first value); all NaN -> ones."""
    if np.isnan(x).all():
        return np.ones(len(x))
    sums = np.nancumsum(x)
    counts = np.cumsum(~np.isnan(x))
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)


def _calc_tp(curves: MetricCurves, name: str, first: int, t_tp: int) -> np.ndarray:
    """``calc_tp`` of every class: mean error from ``first`` to the last non-zero confidence, else 1."""
    return np.array([
        _calc_tp_one(errors, confidence, first)
        for errors, confidence in zip(curves.tp_errors[name], curves.confidence[:, t_tp])
    ])  # fmt: skip


def _calc_tp_one(errors: np.ndarray, confidence: np.ndarray, first: int) -> float:
    nonzero = np.flatnonzero(confidence)
    last = int(nonzero[-1]) if len(nonzero) else 0
    return 1.0 if last < first else float(np.mean(errors[first : last + 1]))


def _summary(ap: np.ndarray, tp: np.ndarray, weight: float) -> dict[str, float]:
    """``DetectionMetrics.mean_ap``, ``tp_errors`` (NaN-skipping means) and ``nd_score``."""
    mean_ap = float(np.mean(ap.mean(axis=1)))
    metrics = {"map": mean_ap, "nds": np.nan}
    scores = []
    for m, name in enumerate(TP_METRICS):
        values = tp[:, m]
        defined = ~np.isnan(values)
        error = float(np.sum(np.where(defined, values, 0.0)) / defined.sum()) if defined.any() else np.nan
        metrics[_MEAN_NAMES[name]] = error
        scores.append(0.0 if np.isnan(error) else max(0.0, 1.0 - error))
    metrics["nds"] = float(weight * mean_ap + np.sum(scores)) / float(weight + len(scores))
    return metrics


def _per_class(classes: EvaluatedClasses, ap: np.ndarray, tp: np.ndarray, config: NuScenesConfig) -> pd.DataFrame:
    n_classes = len(classes.names)
    table = {
        "label": classes.labels,
        "name": list(classes.names),
        "n_gt": np.bincount(classes.gt_class[classes.gt_evaluated], minlength=n_classes),
        "n_dt": np.bincount(classes.dt_class[classes.dt_evaluated], minlength=n_classes),
        "ap": ap.mean(axis=1),
        **{f"ap_{th}": ap[:, t] for t, th in enumerate(config.dist_ths)},
        **{name: tp[:, m] for m, name in enumerate(TP_METRICS)},
    }
    return pd.DataFrame(table)
