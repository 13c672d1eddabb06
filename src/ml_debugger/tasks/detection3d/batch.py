"""3-D detection rows: the standard per-frame record and its Arrow columns."""

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
    threshold_columns,
    vector_list_column,
)
from ml_debugger.tasks.detection3d import schema as S


@dataclass(frozen=True)
class FrameBoxes:
    """One frame's ground truth or detections (numpy).

    ``boxes`` ``(n, 7)`` ``[cx, cy, cz, w, l, h, yaw]`` (gravity centre, metres, radians);
    ``labels`` ``(n,)``; ``scores`` ``(n,)`` for detections (None for ground truth); optional
    ``velocities`` ``(n, 2)``, ``num_points`` ``(n,)`` (LiDAR points inside each box),
    ``attributes`` (n names) and ``features`` ``(n, d)``.
    """

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray | None = None
    velocities: np.ndarray | None = None
    num_points: np.ndarray | None = None
    attributes: tuple[str, ...] | None = None
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


OPTIONAL_FIELDS = ("velocities", "num_points", "attributes", "features")


@dataclass(frozen=True)
class Detection3DBatch:
    """A validated batch of 3-D detection rows (one per frame)."""

    task: ClassVar[str] = "detection3d"
    predictions: tuple[FrameBoxes, ...]
    targets: tuple[FrameBoxes, ...]
    frame_features: np.ndarray | None
    pc_range: tuple[float, ...] | None
    thresholds: Thresholds
    label_names: tuple[str, ...] | None
    input_ids: np.ndarray
    input_hashes: np.ndarray

    def __len__(self) -> int:
        return len(self.predictions)

    @property
    def schema_key(self) -> tuple:
        """Batches with equal keys have equal column types and can share a part file."""

        def present(frames: Sequence[FrameBoxes]) -> tuple:
            first = frames[0]
            features = None if first.features is None else (first.features.shape[1], first.features.dtype.str)
            return tuple(getattr(first, name) is not None for name in OPTIONAL_FIELDS[:3]) + (features,)

        frame = None if self.frame_features is None else (self.frame_features.shape[1], self.frame_features.dtype.str)
        return (self.task, present(self.predictions), present(self.targets), frame, self.label_names is not None)

    @classmethod
    def columns(cls, batches: list[Detection3DBatch]) -> dict[str, pa.Array | pa.ChunkedArray]:
        """The task's Arrow columns for the rows of ``batches`` (equal ``schema_key``), in order."""
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        for side, frames in (("gt", [t for b in batches for t in b.targets]), ("pred", [p for b in batches for p in b.predictions])):
            columns[f"{side}_boxes"] = vector_list_column([f.boxes for f in frames], S.BOX_WIDTH)
            if side == "pred":
                columns["pred_scores"] = list_column([f.scores for f in frames], pa.float32())
            columns[f"{side}_labels"] = list_column([f.labels for f in frames], pa.int64())
            columns.update(_optional_columns(side, frames))
        rows = [len(b) for b in batches]
        per_row = pa.array(np.repeat(np.arange(len(batches)), rows))
        if batches[0].frame_features is not None:
            features = np.concatenate([b.frame_features for b in batches])
            columns["frame_features"] = fixed_size_list(features, pa.from_numpy_dtype(features.dtype))
        columns["pc_range"] = pa.array([b.pc_range for b in batches], type=S.PC_RANGE).take(per_row)
        columns.update(threshold_columns([b.thresholds for b in batches], rows))
        if batches[0].label_names is not None:
            columns["label_names"] = pa.array([list(b.label_names) for b in batches], type=S.LABEL_NAMES).take(per_row)
        return columns


def _optional_columns(side: str, frames: list[FrameBoxes]) -> dict[str, pa.Array]:
    """The optional per-box columns that every frame of the batch has (validated: all or none)."""
    first = frames[0]
    out: dict[str, pa.Array] = {}
    if first.velocities is not None:
        out[f"{side}_velocities"] = vector_list_column([f.velocities for f in frames], 2)
    if first.num_points is not None:
        out[f"{side}_num_points"] = list_column([f.num_points for f in frames], pa.int32())
    if first.attributes is not None:
        out[f"{side}_attributes"] = pa.array([list(f.attributes) for f in frames], type=S.ATTRIBUTES)
    if first.features is not None:
        out[f"{side}_features"] = feature_list_column([f.features for f in frames], [len(f) for f in frames])
    return out
