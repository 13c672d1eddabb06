"""3-D object detection: one trace row per frame (GT and predicted 7-DoF boxes, velocities,
points-in-box counts, scores, labels, features)."""

from ml_debugger.tasks import Task
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks.detection3d.batch import Detection3DBatch, FrameBoxes
from ml_debugger.tasks.detection3d.schema import SCHEMA
from ml_debugger.tasks.detection3d.validation import make_detection3d_batch, predictions_from, targets_from

TASK = Task(
    name="detection3d",
    description="one row per frame: ground-truth and predicted [cx, cy, cz, w, l, h, yaw] boxes, velocities, scores",
    schema=SCHEMA,
    evaluation_module="ml_debugger.tasks.detection3d.evaluation",
)

__all__ = [
    "TASK",
    "Detection3DBatch",
    "FrameBoxes",
    "Thresholds",
    "make_detection3d_batch",
    "predictions_from",
    "targets_from",
]
