"""Turning a batch's predictions and ground truth (numpy, in the reference's formats) into a
validated :class:`DetectionBatch`; every error names the field and the image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ml_debugger.exceptions import TraceValidationError
from ml_debugger.core.ids import as_id_vector
from ml_debugger.tasks.detection2d.batch import (
    DetectionBatch,
    ImagePredictions,
    ImageTargets,
    Thresholds,
)

FEATURE_DTYPES = (np.float16, np.float32)


def as_boxes(value: Any, field: str) -> np.ndarray:
    """``(n, 4)`` finite float32 xyxy boxes with x2 >= x1 and y2 >= y1."""
    boxes = np.asarray(value, dtype=np.float64) if not isinstance(value, np.ndarray) else value
    if boxes.size == 0:
        return np.zeros((0, 4), np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise TraceValidationError(f"{field} must have shape (n, 4) as [x1, y1, x2, y2]; got shape {boxes.shape}")
    if boxes.dtype.kind not in "fiu":
        raise TraceValidationError(f"{field} must be numeric; got dtype {boxes.dtype}")
    if not np.isfinite(boxes).all():
        raise TraceValidationError(f"{field} has NaN or infinite coordinates")
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        raise TraceValidationError(
            f"{field} has {int(bad.sum())} boxes with x2 < x1 or y2 < y1 (first: {boxes[bad][0].tolist()}); "
            "boxes must be [x1, y1, x2, y2] (convert xywh or cxcywh boxes first)"
        )
    return boxes.astype(np.float32)


def as_vector(value: Any, n: int, field: str, kind: str) -> np.ndarray:
    """A ``(n,)`` vector: ``kind`` ``"label"`` (int64 >= 0), ``"score"`` (finite float32), ``"flag"`` (bool)."""
    array = np.asarray(value)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.size == 0 and n == 0:
        array = array.reshape(0)
    if array.ndim != 1 or len(array) != n:
        raise TraceValidationError(f"{field} must have shape ({n},), one per box; got shape {array.shape}")
    if kind == "flag":
        return array.astype(bool)
    if array.dtype.kind not in "fiub":
        raise TraceValidationError(f"{field} must be numeric; got dtype {array.dtype}")
    if kind == "score":
        if not np.isfinite(array).all():
            raise TraceValidationError(f"{field} has NaN or infinite scores")
        return array.astype(np.float32)
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise TraceValidationError(f"{field} must be integer class ids; got {array[:5].tolist()}")
    labels = array.astype(np.int64)
    if (labels < 0).any():
        raise TraceValidationError(f"{field} must be class ids >= 0; got {sorted(set(labels[labels < 0].tolist()))[:5]}")
    return labels


def as_features(value: Any, n: int, field: str) -> np.ndarray | None:
    """``(n, d)`` float16/float32 feature vectors (flattened), or None."""
    if value is None:
        return None
    features = np.asarray(value)
    if features.ndim < 1 or features.shape[0] != n:
        raise TraceValidationError(f"{field} must have one feature vector per box ({n}); got shape {features.shape}")
    if features.dtype.kind not in "fiu":
        raise TraceValidationError(f"{field} must be numeric; got dtype {features.dtype}")
    dtype = np.float16 if features.dtype == np.float16 else np.float32
    width = int(np.prod(features.shape[1:]))
    return np.ascontiguousarray(features.reshape(n, width), dtype=dtype)


def _entry(mapping: Any, key: str, index: int, field: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise TraceValidationError(f"{field}[{index}] must be a dict with {key!r}; got {type(mapping).__name__}")
    if key not in mapping:
        raise TraceValidationError(f"{field}[{index}] has no {key!r}; it has {sorted(map(str, mapping))}")
    return mapping[key]


def predictions_from(raw: Sequence[Mapping[str, Any]], field: str = "predictions") -> list[ImagePredictions]:
    """Per-image dicts with ``boxes``, ``scores``, ``labels`` (and optional ``features``)."""
    out = []
    for i, item in enumerate(raw):
        boxes = as_boxes(_entry(item, "boxes", i, field), f"{field}[{i}]['boxes']")
        n = len(boxes)
        out.append(ImagePredictions(
            boxes=boxes,
            scores=as_vector(_entry(item, "scores", i, field), n, f"{field}[{i}]['scores']", "score"),
            labels=as_vector(_entry(item, "labels", i, field), n, f"{field}[{i}]['labels']", "label"),
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
        boxes = as_boxes(_entry(item, "boxes", i, field), f"{field}[{i}]['boxes']")
        n = len(boxes)
        iscrowd = item.get("iscrowd")
        area = item.get("area")
        out.append(ImageTargets(
            boxes=boxes,
            labels=as_vector(_entry(item, "labels", i, field), n, f"{field}[{i}]['labels']", "label"),
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
        input_ids=input_ids, input_hashes=input_hashes,
    )
