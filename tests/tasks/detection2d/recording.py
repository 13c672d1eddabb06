"""Recording a ``DetectionSet`` through the real engine, as a tracer would, for evaluation tests."""

from __future__ import annotations

import numpy as np

from ml_debugger.core import TraceSession
from ml_debugger.store import TraceStore
from ml_debugger.tasks.detection2d import ImagePredictions, ImageTargets, Thresholds, make_detection_batch
from ml_debugger.tasks.detection2d.detection_set import DetectionSet


def as_stored(data: DetectionSet) -> DetectionSet:
    """``data`` with the float32 precision the trace rows store boxes, areas and scores in."""
    return DetectionSet(
        n_images=data.n_images, gt_image=data.gt_image,
        gt_boxes=data.gt_boxes.astype(np.float32).astype(np.float64), gt_labels=data.gt_labels,
        gt_iscrowd=data.gt_iscrowd, gt_area=data.gt_area.astype(np.float32).astype(np.float64),
        dt_image=data.dt_image, dt_boxes=data.dt_boxes.astype(np.float32).astype(np.float64),
        dt_scores=data.dt_scores.astype(np.float32).astype(np.float64), dt_labels=data.dt_labels,
    )


def record(
    store: TraceStore,
    data: DetectionSet,
    *,
    model: str = "det",
    version: str = "v1",
    dataset: str = "val",
    epoch: int = 0,
    gt_features: np.ndarray | None = None,
    dt_features: np.ndarray | None = None,
    ids: list[str] | None = None,
) -> None:
    """Record every image of ``data`` (image ``i`` has id ``img{i}`` unless ``ids`` are given)."""
    predictions, targets = [], []
    for i in range(data.n_images):
        g, d = data.gt_image == i, data.dt_image == i
        targets.append(ImageTargets(
            boxes=data.gt_boxes[g].astype(np.float32), labels=data.gt_labels[g], iscrowd=data.gt_iscrowd[g],
            area=data.gt_area[g].astype(np.float32), features=None if gt_features is None else gt_features[g],
        ))
        predictions.append(ImagePredictions(
            boxes=data.dt_boxes[d].astype(np.float32), scores=data.dt_scores[d].astype(np.float32),
            labels=data.dt_labels[d], features=None if dt_features is None else dt_features[d],
        ))
    ids = ids or [f"img{i}" for i in range(data.n_images)]
    session = TraceSession(model, version, "detection2d", store=store)
    session.record(
        make_detection_batch(
            predictions, targets, input_hashes=[f"hash-{i}" for i in ids], input_ids=ids,
            image_sizes=[[640, 480]] * data.n_images, thresholds=Thresholds(0.05, 0.5, 100),
        ),
        dataset_type=dataset, n_epoch=epoch,
    )
    session.wait_for_save()
    session.close()
