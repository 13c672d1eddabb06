"""Recording a ``FrameSet`` through the real engine, as a 3-D tracer would, for evaluation tests."""

from __future__ import annotations

import numpy as np

from ml_debugger.core import TraceSession
from ml_debugger.store import TraceStore
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks.detection3d import FrameBoxes, make_detection3d_batch
from ml_debugger.tasks.detection3d.frame_set import FrameSet


def as_stored(frames: FrameSet) -> FrameSet:
    """``frames`` as a trace keeps them: float32 boxes, velocities and scores, the ego at the origin
    (the trace's frame), attributes as given."""
    f32 = lambda a: np.asarray(a, np.float32).astype(np.float64)  # noqa: E731
    return FrameSet(
        n_frames=frames.n_frames, gt_frame=frames.gt_frame, gt_boxes=f32(frames.gt_boxes), gt_labels=frames.gt_labels,
        gt_velocities=f32(frames.gt_velocities), gt_num_points=frames.gt_num_points,
        gt_attributes=frames.gt_attributes, dt_frame=frames.dt_frame, dt_boxes=f32(frames.dt_boxes),
        dt_scores=f32(frames.dt_scores), dt_labels=frames.dt_labels, dt_velocities=f32(frames.dt_velocities),
        dt_attributes=frames.dt_attributes,
    )


def _names(values, rows) -> tuple[str, ...] | None:
    return None if values is None else tuple("" if v is None else str(v) for v in np.asarray(values, dtype=object)[rows])


def record(
    store: TraceStore,
    frames: FrameSet,
    class_names: dict[int, str],
    *,
    model: str = "det3d",
    version: str = "v1",
    dataset: str = "val",
    epoch: int = 0,
    gt_features: np.ndarray | None = None,
    dt_features: np.ndarray | None = None,
) -> None:
    """Record every frame of ``frames`` (frame ``i`` has id ``frame{i}``)."""
    predictions, targets = [], []
    for i in range(frames.n_frames):
        g, d = np.flatnonzero(frames.gt_frame == i), np.flatnonzero(frames.dt_frame == i)
        targets.append(FrameBoxes(
            boxes=frames.gt_boxes[g].astype(np.float32), labels=frames.gt_labels[g],
            velocities=frames.gt_velocities[g].astype(np.float32), num_points=frames.gt_num_points[g].astype(np.int32),
            attributes=_names(frames.gt_attributes, g), features=None if gt_features is None else gt_features[g],
        ))
        predictions.append(FrameBoxes(
            boxes=frames.dt_boxes[d].astype(np.float32), labels=frames.dt_labels[d],
            scores=frames.dt_scores[d].astype(np.float32), velocities=frames.dt_velocities[d].astype(np.float32),
            attributes=_names(frames.dt_attributes, d), features=None if dt_features is None else dt_features[d],
        ))
    names = [""] * (max(class_names) + 1)
    for label, name in class_names.items():
        names[label] = name
    session = TraceSession(model, version, "detection3d", store=store)
    session.record(
        make_detection3d_batch(
            predictions, targets, input_hashes=[f"hash-{i}" for i in range(frames.n_frames)],
            input_ids=[f"frame{i}" for i in range(frames.n_frames)], pc_range=[-70, -70, -5, 70, 70, 3],
            thresholds=Thresholds(0.1, None, 500), label_names=names,
        ),
        dataset_type=dataset, n_epoch=epoch,
    )
    session.wait_for_save()
    session.close()
