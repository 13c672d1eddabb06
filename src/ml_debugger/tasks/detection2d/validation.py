"""Turning a batch's predictions and ground truth (numpy, in the reference's formats) into a
validated :class:`DetectionBatch`; every error names the field and the image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml_debugger.core.ids import as_id_vector
from ml_debugger.exceptions import TraceValidationError
from ml_debugger.tasks._columns import Thresholds
from ml_debugger.tasks._validation import as_features, as_matrix, as_previews, as_vector, entry
from ml_debugger.tasks.detection2d.batch import (
    DetectionBatch,
    ImagePredictions,
    ImageTargets,
)


def as_boxes(value: Any, field: str) -> np.ndarray:
    """``(n, 4)`` finite float32 xyxy boxes with x2 >= x1 and y2 >= y1."""
    boxes = as_matrix(value, 4, field, "[x1, y1, x2, y2]")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        raise TraceValidationError(
            f"{field} has {int(bad.sum())} boxes with x2 < x1 or y2 < y1 (first: {boxes[bad][0].tolist()}); "
            "boxes must be [x1, y1, x2, y2] (convert xywh or cxcywh boxes first)"
        )
    return boxes


def predictions_from(raw: Sequence[Mapping[str, Any]], field: str = "predictions") -> list[ImagePredictions]:
    """Per-image dicts with ``boxes``, ``scores``, ``labels`` (and optional ``features``)."""
    out = []
    for i, item in enumerate(raw):
        boxes = as_boxes(entry(item, "boxes", i, field), f"{field}[{i}]['boxes']")
        n = len(boxes)
        out.append(ImagePredictions(
            boxes=boxes,
            scores=as_vector(entry(item, "scores", i, field), n, f"{field}[{i}]['scores']", "score"),
            labels=as_vector(entry(item, "labels", i, field), n, f"{field}[{i}]['labels']", "label"),
            features=as_features(item.get("features"), n, f"{field}[{i}]['features']"),
        ))
    return out


def targets_from(raw: Any, batch_size: int, field: str = "targets") -> list[ImageTargets]:
    """Ground truth in either format of the reference: a list of per-image dicts with ``boxes`` and
    ``labels``, or a dict of per-image lists; optional ``iscrowd`` and ``area`` (COCO's) and
    ``features`` per object."""
    if isinstance(raw, Mapping):
        keys = [k for k in ("boxes", "labels", "iscrowd", "area", "features") if k in raw]
        for key in ("boxes", "labels"):
            if key not in raw:
                raise TraceValidationError(f"{field} as a dict of per-image lists needs {key!r}; it has {sorted(raw)}")
        lengths = {key: len(raw[key]) for key in keys}
        if any(n != batch_size for n in lengths.values()):
            raise TraceValidationError(f"{field} has per-image lists of lengths {lengths}; the batch has {batch_size} images")
        raw = [{key: raw[key][i] for key in keys} for i in range(batch_size)]
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise TraceValidationError(
            f"{field} must be a list of per-image dicts with 'boxes' and 'labels', or a dict of per-image lists; "
            f"got {type(raw).__name__}"
        )
    if len(raw) != batch_size:
        raise TraceValidationError(f"{field} has {len(raw)} images; the batch has {batch_size}")
    out = []
    for i, item in enumerate(raw):
        boxes = as_boxes(entry(item, "boxes", i, field), f"{field}[{i}]['boxes']")
        n = len(boxes)
        iscrowd = item.get("iscrowd")
        area = item.get("area")
        out.append(ImageTargets(
            boxes=boxes,
            labels=as_vector(entry(item, "labels", i, field), n, f"{field}[{i}]['labels']", "label"),
            iscrowd=np.zeros(n, bool) if iscrowd is None else as_vector(iscrowd, n, f"{field}[{i}]['iscrowd']", "flag"),
            area=_areas(boxes) if area is None else _given_areas(area, n, f"{field}[{i}]['area']"),
            features=as_features(item.get("features"), n, f"{field}[{i}]['features']"),
        ))
    return out


def _areas(boxes: np.ndarray) -> np.ndarray:
    return ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).astype(np.float32)


def _given_areas(value: Any, n: int, field: str) -> np.ndarray:
    area = as_vector(value, n, field, "score")
    if (area < 0).any():
        raise TraceValidationError(f"{field} has negative areas")
    return area


def make_detection_batch(
    predictions: Sequence[ImagePredictions],
    targets: Sequence[ImageTargets],
    *,
    input_hashes: np.ndarray,
    image_sizes: Any,
    input_ids: Any = None,
    image_features: Any = None,
    thresholds: Thresholds = Thresholds(),
    label_names: Sequence[str] | None = None,
    previews: Sequence[bytes] | None = None,
) -> DetectionBatch:
    """Check that the parts of a batch agree and return it as a :class:`DetectionBatch`.

    Args:
        predictions, targets: per image (see `predictions_from`, `targets_from`).
        input_hashes: ``(batch,)`` content hashes of the images.
        image_sizes: ``(batch, 2)`` image ``(width, height)`` in pixels.
        input_ids: ``(batch,)`` ids (ints or strings); ``None`` uses the hashes.
        image_features: ``(batch, d)`` one vector per image, or None.
        thresholds: the post-processing settings the predictions were made with.
        label_names: the name of class ``i`` at position ``i``, or None.
        previews: one small JPEG per image (``ml_debugger.core.previews``), or None.
    """
    batch = len(predictions)
    if batch == 0:
        raise TraceValidationError("the batch has no images")
    if len(targets) != batch:
        raise TraceValidationError(f"targets has {len(targets)} images but the predictions have {batch}")
    input_hashes = as_id_vector(input_hashes, batch, "input_hashes")
    input_ids = input_hashes if input_ids is None else as_id_vector(input_ids, batch, "input_ids")
    sizes = np.asarray(image_sizes)
    if sizes.shape != (batch, 2) or sizes.dtype.kind not in "iuf" or (sizes <= 0).any():
        raise TraceValidationError(f"image_sizes must be ({batch}, 2) positive (width, height); got {sizes.tolist()[:3]}")
    for name, items in (("predictions", predictions), ("targets", targets)):
        present = {item.features is not None for item in items}
        if len(present) > 1:
            raise TraceValidationError(f"{name} have per-box features for some images but not others")
        if True in present and len({item.features.shape[1] for item in items}) > 1:
            raise TraceValidationError(f"{name} have per-box features of different sizes")
    if image_features is not None:
        image_features = as_features(image_features, batch, "image_features")
    return DetectionBatch(
        predictions=tuple(predictions), targets=tuple(targets), image_sizes=sizes.astype(np.int32),
        image_features=image_features, thresholds=thresholds,
        label_names=None if label_names is None else tuple(str(n) for n in label_names),
        input_ids=input_ids, input_hashes=input_hashes, previews=as_previews(previews, batch),
    )
