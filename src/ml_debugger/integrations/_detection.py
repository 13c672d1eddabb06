"""What the framework callbacks share for 2-D detection, free of any framework: the task of a
model, the detection tracer a callback records through, and ground truth in the frameworks'
own conventions (Hugging Face DETR labels, KerasCV / KerasHub padded dicts) turned into the
reference format (per-image ``boxes`` xyxy pixels and ``labels``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml_debugger.core import TraceSession
from ml_debugger.exceptions import ConfigurationError, TraceValidationError
from ml_debugger.training.detection import DetectionTracer, ObjectDetectionTracer, detector_class
from ml_debugger.training.detection._arrays import to_numpy, to_xyxy

CLASSIFICATION, DETECTION = "classification", "detection2d"
TASKS = (CLASSIFICATION, DETECTION)


def check_task(task: str | None) -> str | None:
    """``task`` if it is None (found from the model) or a task the callbacks trace."""
    if task is not None and task not in TASKS:
        raise ConfigurationError(f"task must be None (found from the model) or one of {TASKS}; got {task!r}")
    return task


def task_of(model: Any, task: str | None) -> str:
    """The given task, else ``detection2d`` for a detector of a family the detection tracers
    recognise (`detector_class`), else ``classification``."""
    if task is not None:
        return task
    return DETECTION if model is not None and detector_class(model) is not None else CLASSIFICATION


@dataclass(frozen=True)
class DetectionOptions:
    """The detection options a callback accepts, with the names of `ObjectDetectionTracer`'s."""

    score_thresh: float | None = None
    iou_thresh: float | None = None
    max_detections_per_image: int | None = None
    output_mapping: Mapping[str, Any] | Callable[[Any, Any], Sequence[Mapping[str, Any]]] | None = None
    label_names: Sequence[str] | None = None
    num_classes: int | None = None
    record_features: bool = True
    previews: bool = False

    def tracer(self, model: Any, session: TraceSession) -> DetectionTracer:
        """The family's tracer of ``model``, recording into ``session``."""
        return ObjectDetectionTracer(
            model, score_thresh=self.score_thresh, iou_thresh=self.iou_thresh,
            max_detections_per_image=self.max_detections_per_image, output_mapping=self.output_mapping,
            record_features=self.record_features, previews=self.previews, label_names=self.label_names,
            num_classes=self.num_classes, session=session,
        )


def hf_detection_targets(labels: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Ground truth and image sizes of Hugging Face object-detection labels.

    Each label is a dict as DETR's image processors make it: ``boxes`` ``(n, 4)`` normalised
    ``(cx, cy, w, h)``, ``class_labels`` ``(n,)`` and ``orig_size`` (or else ``size``) ``(height,
    width)``. Returns per-image ``{"boxes": xyxy pixels of the original image, "labels"}`` and the
    ``(batch, 2)`` width, height of the original images (the ``target_sizes`` that
    ``post_process_object_detection`` scales predictions with).
    """
    if isinstance(labels, Mapping) or not isinstance(labels, Sequence):
        raise TraceValidationError(
            f"labels must be a list of per-image dicts with 'boxes' and 'class_labels'; got {type(labels).__name__}"
        )
    targets, sizes = [], []
    for i, label in enumerate(labels):
        if not isinstance(label, Mapping) or not {"boxes", "class_labels"} <= set(label):
            found = sorted(label) if isinstance(label, Mapping) else type(label).__name__
            raise TraceValidationError(f"labels[{i}] must have 'boxes' and 'class_labels'; got {found}")
        size_key = next((k for k in ("orig_size", "size") if k in label), None)
        if size_key is None:
            raise TraceValidationError(f"labels[{i}] has no 'orig_size' or 'size' (height, width) to scale its boxes by")
        height, width = (float(v) for v in to_numpy(label[size_key]).reshape(-1)[:2])
        boxes = to_xyxy(to_numpy(label["boxes"]), "rel_cxcywh", width, height)
        targets.append({"boxes": boxes, "labels": to_numpy(label["class_labels"]).astype(np.int64).reshape(-1)})
        sizes.append([round(width), round(height)])
    return targets, np.asarray(sizes, dtype=np.int64).reshape(-1, 2)


def padded_targets(targets: Mapping[str, Any], box_format: str, sizes: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Per-image ground truth of a KerasCV / KerasHub padded dict: ``boxes`` ``(batch, max, 4)``
    in ``box_format`` and ``labels`` (or ``classes``) ``(batch, max)``, padded with -1."""
    key = "labels" if "labels" in targets else "classes"
    boxes, labels = np.asarray(to_numpy(targets["boxes"]), np.float64), np.asarray(to_numpy(targets[key]))
    if boxes.ndim != 3 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:2]:
        raise TraceValidationError(
            f"padded targets need boxes (batch, max_boxes, 4) and {key} (batch, max_boxes); "
            f"got {boxes.shape} and {labels.shape}"
        )
    out = []
    for image_boxes, image_labels, (width, height) in zip(boxes, labels, sizes):
        real = image_labels >= 0
        out.append({
            "boxes": to_xyxy(image_boxes[real], box_format, float(width), float(height)),
            "labels": image_labels[real].astype(np.int64),
        })
    return out


def is_padded(targets: Any) -> bool:
    """Ground truth as KerasCV / KerasHub pad it: a dict whose ``boxes`` is one ``(batch, max, 4)`` array."""
    return isinstance(targets, Mapping) and "boxes" in targets and np.ndim(to_numpy(targets["boxes"])) == 3


def slice_targets(targets: Any, part: slice) -> Any:
    """The images ``part`` of ground truth in any accepted format (a list of per-image dicts, a dict
    of per-image lists, or a padded dict)."""
    if isinstance(targets, Mapping):
        return {key: values[part] for key, values in targets.items()}
    return targets[part]


def count_targets(targets: Any) -> int:
    """The number of images ``targets`` describes."""
    if isinstance(targets, Mapping):
        return len(next(iter(targets.values()))) if targets else 0
    return len(targets)
