"""2-D detection rows: the standard per-image record, its validation and its Arrow columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from ml_debugger.core.schema import fixed_size_list
from ml_debugger.tasks._columns import (
    Thresholds,
    feature_list_column,
    list_column,
    preview_column,
    threshold_columns,
    vector_list_column,
)
from ml_debugger.tasks.detection2d import schema as S


@dataclass(frozen=True)
class ImagePredictions:
    """One image's detections: ``boxes`` ``(m, 4)`` xyxy pixels, ``scores`` ``(m,)``, ``labels``
    ``(m,)`` class ids, optional ``features`` ``(m, d)`` (one vector per detection)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    features: np.ndarray | None = None


@dataclass(frozen=True)
class ImageTargets:
    """One image's ground truth: ``boxes`` ``(n, 4)`` xyxy pixels, ``labels`` ``(n,)``, ``iscrowd``
    ``(n,)`` (crowd regions are ignored as COCO does), ``area`` ``(n,)`` (COCO's object area; the
    box area when none is given), optional ``features`` ``(n, d)`` (one vector per object)."""

    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    features: np.ndarray | None = None


@dataclass(frozen=True)
class DetectionBatch:
    """A validated batch of 2-D detection rows (one per image)."""

    task: ClassVar[str] = "detection2d"
    predictions: tuple[ImagePredictions, ...]
    targets: tuple[ImageTargets, ...]
    image_sizes: np.ndarray  # (batch, 2) int32 width, height
    image_features: np.ndarray | None
    thresholds: Thresholds
    label_names: tuple[str, ...] | None
    input_ids: np.ndarray
    input_hashes: np.ndarray
    previews: tuple[bytes, ...] | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    @property
    def schema_key(self) -> tuple:
        """Batches with equal keys have equal column types and can share a part file."""

        def feature_key(arrays: Sequence[np.ndarray | None]) -> tuple | None:
            first = next((a for a in arrays if a is not None), None)
            return None if first is None else (first.shape[1], first.dtype.str)

        image = None if self.image_features is None else (self.image_features.shape[1], self.image_features.dtype.str)
        return (
            self.task,
            feature_key([p.features for p in self.predictions]),
            feature_key([t.features for t in self.targets]),
            image,
            self.label_names is not None,
            self.previews is not None,
        )

    @classmethod
    def columns(cls, batches: list[DetectionBatch]) -> dict[str, pa.Array | pa.ChunkedArray]:
        """The task's Arrow columns for the rows of ``batches`` (equal ``schema_key``), in order."""
        predictions = [p for b in batches for p in b.predictions]
        targets = [t for b in batches for t in b.targets]
        sizes = np.concatenate([b.image_sizes for b in batches])
        columns: dict[str, pa.Array | pa.ChunkedArray] = {
            "image_width": pa.array(sizes[:, 0], type=S.IMAGE_SIZE),
            "image_height": pa.array(sizes[:, 1], type=S.IMAGE_SIZE),
            "gt_boxes": vector_list_column([t.boxes for t in targets], 4),
            "gt_labels": list_column([t.labels for t in targets], pa.int64()),
            "gt_iscrowd": list_column([t.iscrowd for t in targets], pa.bool_()),
            "gt_area": list_column([t.area for t in targets], pa.float32()),
            "pred_boxes": vector_list_column([p.boxes for p in predictions], 4),
            "pred_scores": list_column([p.scores for p in predictions], pa.float32()),
            "pred_labels": list_column([p.labels for p in predictions], pa.int64()),
        }
        if any(t.features is not None for t in targets):
            columns["gt_features"] = feature_list_column([t.features for t in targets], [len(t.labels) for t in targets])
        if any(p.features is not None for p in predictions):
            columns["pred_features"] = feature_list_column(
                [p.features for p in predictions], [len(p.labels) for p in predictions]
            )
        if batches[0].image_features is not None:
            features = np.concatenate([b.image_features for b in batches])
            columns["image_features"] = fixed_size_list(features, pa.from_numpy_dtype(features.dtype))
        columns.update(threshold_columns([b.thresholds for b in batches], [len(b) for b in batches]))
        if batches[0].previews is not None:
            columns["preview"] = preview_column(batches)
        if batches[0].label_names is not None:
            names = pa.array([list(b.label_names) for b in batches], type=S.LABEL_NAMES)
            columns["label_names"] = names.take(pa.array(np.repeat(np.arange(len(batches)), [len(b) for b in batches])))
        return columns
