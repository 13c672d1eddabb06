"""What a model's own configuration says about its post-processing, and the thresholds a tracer
records with (explicit arguments, else the model's, else the reference's defaults)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml_debugger.exceptions import ConfigurationError

DEFAULT_SCORE_THRESH = 0.1
DEFAULT_IOU_THRESH = 0.2
DEFAULT_MAX_DETECTIONS = 300


@dataclass(frozen=True)
class ModelSettings:
    """Post-processing and geometry read from a model (``None``: the model does not say).

    ``iou_thresh`` is the IoU of the model's own rotated NMS (None when it has none, e.g. circle
    NMS or DETR-style heads); ``pc_range`` is ``(x_min, y_min, z_min, x_max, y_max, z_max)``.
    """

    score_thresh: float | None = None
    iou_thresh: float | None = None
    max_detections: int | None = None
    pc_range: tuple[float, ...] | None = None
    n_classes: int | None = None
    label_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PostProcessing:
    """The filter a tracer applies to the model's detections before recording them.

    Detections scoring below ``score_thresh`` are dropped; when ``nms`` is set, class-wise BEV
    NMS at ``iou_thresh`` follows; the ``max_detections`` best are kept. ``iou_thresh`` is
    recorded as the NMS the detections went through (the tracer's or the model's own).
    """

    score_thresh: float
    iou_thresh: float | None
    max_detections: int
    nms: bool


def first(*values: Any) -> Any:
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def config_value(config: Any, *keys: str) -> Any:
    """The first key of ``config`` (a dict, ConfigDict or EasyDict; None is empty) that is set."""
    if not isinstance(config, Mapping):
        return None
    return first(*(config.get(key) for key in keys))


def as_pc_range(value: Any) -> tuple[float, ...] | None:
    """Six floats ``(x_min, y_min, z_min, x_max, y_max, z_max)``, or None for anything else
    (e.g. the two-value ``pc_range`` of CenterPoint's box coder)."""
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    return tuple(float(v) for v in array) if array.size == 6 else None


def checked_pc_range(value: Sequence[float]) -> tuple[float, ...]:
    pc_range = as_pc_range(value)
    if pc_range is None or not all(lo < hi for lo, hi in zip(pc_range[:3], pc_range[3:])):
        raise ConfigurationError(f"pc_range must be [x_min, y_min, z_min, x_max, y_max, z_max]; got {value!r}")
    return pc_range


def _warn(message: str) -> None:
    warnings.warn("ml-debugger: " + message, stacklevel=5)  # the caller of ObjectDetection3DTracer


def resolve(
    family: str,
    *,
    tracer_nms: bool,
    nms_free: bool,
    score_thresh: float | None,
    iou_thresh: float | None,
    max_detections: int | None,
    model: ModelSettings,
) -> PostProcessing:
    """The thresholds to record with. The model's own post-processing runs first and is never
    changed, so an explicit threshold looser than the model's cannot bring back what the model
    dropped: it is replaced by the model's, with a warning."""
    score = first(score_thresh, model.score_thresh, DEFAULT_SCORE_THRESH)
    if score_thresh is not None and model.score_thresh is not None and score_thresh < model.score_thresh:
        _warn(
            f"score_thresh={score_thresh} is below the model's own score threshold {model.score_thresh}; "
            f"the model drops those detections itself, so {model.score_thresh} is recorded "
            "(lower the model's test_cfg threshold to trace more)"
        )
        score = model.score_thresh
    most = int(first(max_detections, model.max_detections, DEFAULT_MAX_DETECTIONS))
    if max_detections is not None and model.max_detections is not None and max_detections > model.max_detections:
        _warn(
            f"max_detections_per_frame={max_detections} is above the model's own limit {model.max_detections}; "
            f"{model.max_detections} is recorded"
        )
        most = int(model.max_detections)
    if tracer_nms:
        iou = first(iou_thresh, model.iou_thresh, DEFAULT_IOU_THRESH)
        if iou_thresh is not None and model.iou_thresh is not None and iou_thresh > model.iou_thresh:
            _warn(
                f"iou_thresh={iou_thresh} is above the IoU of the model's own NMS ({model.iou_thresh}); "
                f"{model.iou_thresh} is recorded"
            )
            iou = model.iou_thresh
        return PostProcessing(float(score), float(iou), most, nms=model.iou_thresh is None or iou < model.iou_thresh)
    if iou_thresh is not None:
        reason = (
            "it is DETR-style and has no NMS" if nms_free else "the tracer applies BEV-IoU NMS only to PointPillars"
        )
        _warn(f"iou_thresh={iou_thresh} is ignored for a {family} model: {reason}")
    return PostProcessing(float(score), None if nms_free else model.iou_thresh, most, nms=False)
