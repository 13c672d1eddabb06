"""Per-unit signals of the 2-D detection evaluation beyond the matching.

``log_area`` and ``aspect_ratio`` (``log(w / h)``) describe the box's shape; the shared object
signals (``ml_debugger.tasks._object_signals``: neighbours, ``error_proba`` learned from
``DETECTION_ERROR_FEATURES``, dynamics, recurrence) follow, a false positive recurring when a
false positive of its class overlaps it (IoU >= ``iou_threshold``) on its image in another epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_debugger.tasks._object_signals import add_object_signals
from ml_debugger.tasks.detection2d.config import DetectionConfig
from ml_debugger.tasks.detection2d.detection_set import DetectionSet
from ml_debugger.tasks.detection2d.matching import overlapping_pairs

DETECTION_ERROR_FEATURES = (
    "score", "log_area", "aspect_ratio", "crowding", "knn_error_rate", "knn_distance", "coverage_percentile",
)
"""What the error model reads: the best detection's score and the object's own properties."""


def add_signals(table: pd.DataFrame, features: np.ndarray | None, config: DetectionConfig) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The unit table with the box shape and every shared object signal, and the feature
    embedding (None without features)."""
    width = (table["x2"] - table["x1"]).to_numpy(dtype=np.float64)
    height = (table["y2"] - table["y1"]).to_numpy(dtype=np.float64)
    table = table.assign(
        log_area=np.log1p(table["area"].to_numpy(dtype=np.float64)),
        aspect_ratio=np.log(np.maximum(width, 1e-6) / np.maximum(height, 1e-6)),
    )
    return add_object_signals(
        table, features, config, error_features=DETECTION_ERROR_FEATURES,
        false_positive_recurrence=lambda fps: _false_positive_recurrence(fps, config.iou_threshold),
    )


def _false_positive_recurrence(fps: pd.DataFrame, iou_threshold: float) -> np.ndarray:
    """For each false positive, the number of epochs with an overlapping one of its class on its image."""
    image = pd.factorize(pd.MultiIndex.from_frame(fps[["dataset", "input_id"]]))[0]
    boxes = fps[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float64)
    labels = fps["prediction"].to_numpy(dtype=np.int64)
    both = DetectionSet(
        n_images=int(image.max()) + 1, gt_image=image, gt_boxes=boxes, gt_labels=labels,
        dt_image=image, dt_boxes=boxes, dt_scores=np.zeros(len(fps)), dt_labels=labels,
    )
    pairs = overlapping_pairs(both)
    epoch = fps["epoch"].to_numpy()
    keep = (labels[pairs.dt] == labels[pairs.gt]) & (pairs.iou >= iou_threshold) & (epoch[pairs.dt] != epoch[pairs.gt])
    other_epochs = pd.DataFrame({"unit": pairs.dt[keep], "epoch": epoch[pairs.gt[keep]]}).drop_duplicates()
    counts = np.bincount(other_epochs["unit"].to_numpy(dtype=np.int64), minlength=len(fps))
    return 1 + counts
