"""Recognising a 3-D detector's output format and converting it to per-frame numpy dicts
(``boxes_3d`` ``[cx, cy, cz, w, l, h, yaw]``, ``scores_3d``, 0-based ``labels_3d``, optional
``velocities``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.training.detection3d import _mmdet3d, _openpcdet

OutputMapping = Callable[[Any], Any]

FORMATS = (
    "MMDetection3D 1.x data samples with pred_instances_3d; MMDetection3D 0.x / project result dicts with "
    "'pts_bbox' or 'img_bbox' (boxes_3d, scores_3d, labels_3d); OpenPCDet (pred_dicts, recall_dict) with "
    "pred_boxes, pred_scores, 1-based pred_labels"
)


def predictions_from_output(output: Any) -> list[dict[str, Any]]:
    """Per-frame predictions of an output in one of ``FORMATS``."""
    if _openpcdet.is_output(output):
        return _openpcdet.predictions_from_pred_dicts(output)
    if isinstance(output, (list, tuple)) and output:
        if all(hasattr(item, "pred_instances_3d") for item in output):
            return _mmdet3d.predictions_from_samples(list(output))
        if all(isinstance(item, Mapping) for item in output) and all(
            any(key in item for key in ("pts_bbox", "img_bbox", "boxes_3d", "bboxes_3d")) for item in output
        ):
            return _mmdet3d.predictions_from_results(list(output))
    raise TraceValidationError(
        f"cannot read 3-D detections from a model output of type {type(output).__name__}; known formats: {FORMATS}. "
        "Pass output_mapping=callable(output) -> one dict per frame with boxes_3d, scores_3d, labels_3d"
    )


def mapped_predictions(mapping: OutputMapping, output: Any) -> list[dict[str, Any]]:
    """Per-frame predictions from a user's ``output_mapping``: box objects are converted as
    MMDetection3D boxes, arrays are taken as ``[cx, cy, cz, w, l, h, yaw(, vx, vy)]``."""
    frames = mapping(output)
    if not isinstance(frames, (list, tuple)):
        raise TraceValidationError(
            f"output_mapping must return one dict per frame (a list); got {type(frames).__name__}"
        )
    for i, frame in enumerate(frames):
        if not isinstance(frame, Mapping):
            raise TraceValidationError(
                f"output_mapping(...)[{i}] must be a dict with boxes_3d, scores_3d, labels_3d; "
                f"got {type(frame).__name__}"
            )
    return [_mmdet3d.frame_to_numpy(frame) for frame in frames]
