"""Turning a batch's 3-D predictions and ground truth (numpy, in the reference's formats) into a
validated :class:`Detection3DBatch`; every error names the field and the frame."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml_debugger.core.ids import as_id_vector
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks._validation import as_features, as_matrix, as_vector, entry
from ml_debugger.tasks.detection3d.batch import OPTIONAL_FIELDS, Detection3DBatch, FrameBoxes

BOX_LAYOUT = "[cx, cy, cz, w, l, h, yaw] (or 9 values with [vx, vy])"


def as_boxes_3d(value: Any, field: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(n, 7)`` float32 boxes with non-negative sizes, and the velocities of 9-value boxes."""
    array = np.asarray(value, dtype=np.float64) if not isinstance(value, np.ndarray) else value
    width = array.shape[1] if array.ndim == 2 and array.shape[1] == 9 else 7
    boxes = as_matrix(array, width, field, BOX_LAYOUT)
    velocities = boxes[:, 7:9].copy() if width == 9 else None
    boxes = np.ascontiguousarray(boxes[:, :7])
    if (boxes[:, 3:6] < 0).any():
        raise TraceValidationError(f"{field} has boxes with a negative size (w, l or h); boxes are {BOX_LAYOUT}")
    return boxes, velocities


def _velocities(value: Any, n: int, field: str) -> np.ndarray:
    velocities = np.asarray(value, dtype=np.float32)
    if velocities.size == 0 and n == 0:
        velocities = velocities.reshape(0, 2)
    if velocities.shape != (n, 2):
        raise TraceValidationError(f"{field} must have shape ({n}, 2) as [vx, vy]; got {np.shape(value)}")
    if np.isinf(velocities).any():
        raise TraceValidationError(f"{field} has infinite values; use NaN for an unknown velocity")
    return velocities


def _attributes(value: Any, n: int, field: str) -> tuple[str, ...]:
    names = tuple(str(v) for v in value)
    if len(names) != n:
        raise TraceValidationError(f"{field} must have one attribute name per box ({n}); got {len(names)}")
    return names


def _frame(item: Any, index: int, field: str, *, predictions: bool) -> FrameBoxes:
    boxes, velocities = as_boxes_3d(entry(item, "boxes_3d", index, field), f"{field}[{index}]['boxes_3d']")
    n = len(boxes)
    name = f"{field}[{index}]"
    if item.get("velocities") is not None:
        velocities = _velocities(item["velocities"], n, f"{name}['velocities']")
    num_points = item.get("num_points")
    return FrameBoxes(
        boxes=boxes,
        labels=as_vector(entry(item, "labels_3d", index, field), n, f"{name}['labels_3d']", "label"),
        scores=as_vector(entry(item, "scores_3d", index, field), n, f"{name}['scores_3d']", "score") if predictions else None,
        velocities=velocities,
        num_points=None if num_points is None else as_vector(num_points, n, f"{name}['num_points']", "label").astype(np.int32),
        attributes=None if item.get("attributes") is None else _attributes(item["attributes"], n, f"{name}['attributes']"),
        features=as_features(item.get("features"), n, f"{name}['features']"),
    )


def predictions_from(raw: Sequence[Mapping[str, Any]], field: str = "predictions") -> list[FrameBoxes]:
    """Per-frame dicts with ``boxes_3d``, ``scores_3d``, ``labels_3d`` (optional ``velocities``,
    ``num_points``, ``attributes``, ``features``)."""
    return [_frame(item, i, field, predictions=True) for i, item in enumerate(raw)]


def targets_from(raw: Any, batch_size: int, field: str = "targets") -> list[FrameBoxes]:
    """Ground truth in either format of the reference: a list of per-frame dicts with ``boxes_3d``
    and ``labels_3d`` (optional ``velocities``, ``num_points``, ``attributes``), or a dict of
    per-frame lists."""
    if isinstance(raw, Mapping):
        for key in ("boxes_3d", "labels_3d"):
            if key not in raw:
                raise TraceValidationError(f"{field} as a dict of per-frame lists needs {key!r}; it has {sorted(raw)}")
        keys = [k for k in raw if raw[k] is not None]
        lengths = {key: len(raw[key]) for key in keys}
        if any(n != batch_size for n in lengths.values()):
            raise TraceValidationError(f"{field} has per-frame lists of lengths {lengths}; the batch has {batch_size} frames")
        raw = [{key: raw[key][i] for key in keys} for i in range(batch_size)]
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise TraceValidationError(
            f"{field} must be a list of per-frame dicts with 'boxes_3d' and 'labels_3d', or a dict of per-frame "
            f"lists; got {type(raw).__name__}"
        )
    if len(raw) != batch_size:
        raise TraceValidationError(f"{field} has {len(raw)} frames; the batch has {batch_size}")
    return [_frame(item, i, field, predictions=False) for i, item in enumerate(raw)]


def _same_optional_fields(frames: Sequence[FrameBoxes], name: str) -> None:
    for optional in OPTIONAL_FIELDS:
        present = {getattr(f, optional) is not None for f in frames}
        if len(present) > 1:
            raise TraceValidationError(f"{name} have {optional} for some frames but not others")
    if frames and frames[0].features is not None and len({f.features.shape[1] for f in frames}) > 1:
        raise TraceValidationError(f"{name} have per-box features of different sizes")


def make_detection3d_batch(
    predictions: Sequence[FrameBoxes],
    targets: Sequence[FrameBoxes],
    *,
    input_hashes: Any,
    input_ids: Any = None,
    frame_features: Any = None,
    pc_range: Sequence[float] | None = None,
    thresholds: Thresholds = Thresholds(),
    label_names: Sequence[str] | None = None,
    n_classes: int | None = None,
) -> Detection3DBatch:
    """Check that the parts of a batch agree and return it as a :class:`Detection3DBatch`.

    ``n_classes``, when the model tells it, bounds the labels of both sides.
    """
    batch = len(predictions)
    if batch == 0:
        raise TraceValidationError("the batch has no frames")
    if len(targets) != batch:
        raise TraceValidationError(f"targets has {len(targets)} frames but the predictions have {batch}")
    input_hashes = as_id_vector(input_hashes, batch, "input_hashes")
    input_ids = input_hashes if input_ids is None else as_id_vector(input_ids, batch, "input_ids")
    _same_optional_fields(predictions, "predictions")
    _same_optional_fields(targets, "targets")
    if n_classes is not None:
        for name, frames in (("targets", targets), ("predictions", predictions)):
            for i, frame in enumerate(frames):
                if len(frame) and frame.labels.max() >= n_classes:
                    raise TraceValidationError(
                        f"{name}[{i}]['labels_3d'] has class {int(frame.labels.max())}; the model has {n_classes} classes"
                    )
    if pc_range is not None:
        pc_range = tuple(float(v) for v in np.asarray(pc_range, dtype=np.float64).reshape(-1))
        if len(pc_range) != 6 or not all(lo < hi for lo, hi in zip(pc_range[:3], pc_range[3:])):
            raise TraceValidationError(f"pc_range must be [x_min, y_min, z_min, x_max, y_max, z_max]; got {pc_range}")
    if frame_features is not None:
        frame_features = as_features(frame_features, batch, "frame_features")
    return Detection3DBatch(
        predictions=tuple(predictions), targets=tuple(targets), frame_features=frame_features, pc_range=pc_range,
        thresholds=thresholds, label_names=None if label_names is None else tuple(str(n) for n in label_names),
        input_ids=input_ids, input_hashes=input_hashes,
    )
