"""2-D object detection: one trace row per image (GT and predicted boxes, scores, labels, features)."""

from ml_debugger.tasks import Task
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks.detection2d.batch import (
    DetectionBatch,
    ImagePredictions,
    ImageTargets,
)
from ml_debugger.tasks.detection2d.schema import SCHEMA
from ml_debugger.tasks.detection2d.validation import make_detection_batch, predictions_from, targets_from

TASK = Task(
    name="detection2d",
    description="one row per image: ground-truth and predicted xyxy boxes, labels, scores, features",
    schema=SCHEMA,
    evaluation_module="ml_debugger.tasks.detection2d.evaluation",
)

__all__ = [
    "TASK",
    "DetectionBatch",
    "ImagePredictions",
    "ImageTargets",
    "Thresholds",
    "make_detection_batch",
    "predictions_from",
    "targets_from",
]
