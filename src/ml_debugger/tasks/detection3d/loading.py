"""From stored 3-D detection rows to one :class:`FrameSet` per dataset and epoch, with the frames,
the per-box features and the class names beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.evaluator.loading import latest_rows
from ml_debugger.tasks._columns import label_names, list_features, list_values, take_rows, vector_features
from ml_debugger.tasks.detection3d.frame_set import FrameSet

FRAME_COLUMNS = ("input_id", "input_hash", "global_step")


@dataclass(frozen=True, eq=False)
class FrameGroup:
    """The frames of one dataset at one epoch and everything traced on them.

    Attributes:
        dataset, epoch: which split and epoch.
        frames: one row per frame (``FRAME_COLUMNS``), in the order of ``boxes``' frame index.
        boxes: ground truth and detections of those frames.
        gt_features, dt_features: ``(n_gt, d)`` / ``(n_dt, d)`` per-box features, or None.
        frame_features: ``(n_frames, d)`` one vector per frame, or None.
        dt_num_points: ``(n_dt,)`` points inside each detection (-1 unknown).
    """

    dataset: str
    epoch: int
    frames: pd.DataFrame
    boxes: FrameSet
    gt_features: np.ndarray | None
    dt_features: np.ndarray | None
    frame_features: np.ndarray | None
    dt_num_points: np.ndarray


@dataclass(frozen=True)
class Detection3DData:
    """The de-duplicated traces of a version, grouped, and what loading did."""

    groups: list[FrameGroup]
    label_names: dict[int, str]
    stored_rows: int
    duplicates_removed: int


def _optional_vectors(table: pa.Table, name: str, n: int) -> np.ndarray:
    if name not in table.column_names:
        return np.full((n, 2), np.nan)
    return list_values(table.column(name), 2)[0].astype(np.float64)


def _optional_counts(table: pa.Table, name: str, n: int) -> np.ndarray:
    if name not in table.column_names:
        return np.full(n, -1, np.int64)
    return list_values(table.column(name))[0].astype(np.int64)


def _optional_names(table: pa.Table, name: str, n: int) -> np.ndarray | None:
    """The names of a list-of-strings column as an object array, null as ``""`` (decoded by
    dictionary: one Python string per distinct name)."""
    if name not in table.column_names:
        return None
    column = table.column(name)
    encoded = pc.list_flatten(column.combine_chunks()).dictionary_encode()
    names = np.array([*encoded.dictionary.to_pylist(), ""], dtype=object)
    return names[encoded.indices.fill_null(len(names) - 1).to_numpy(zero_copy_only=False)]


def _group(table: pa.Table, dataset: str, epoch: int) -> FrameGroup:
    gt_boxes, gt_counts = list_values(table.column("gt_boxes"), 7)
    dt_boxes, dt_counts = list_values(table.column("pred_boxes"), 7)
    n, n_gt, n_dt = table.num_rows, len(gt_boxes), len(dt_boxes)
    boxes = FrameSet(
        n_frames=n,
        gt_frame=np.repeat(np.arange(n), gt_counts),
        gt_boxes=gt_boxes.astype(np.float64),
        gt_labels=list_values(table.column("gt_labels"))[0],
        gt_velocities=_optional_vectors(table, "gt_velocities", n_gt),
        gt_num_points=_optional_counts(table, "gt_num_points", n_gt),
        gt_attributes=_optional_names(table, "gt_attributes", n_gt),
        dt_frame=np.repeat(np.arange(n), dt_counts),
        dt_boxes=dt_boxes.astype(np.float64),
        dt_scores=list_values(table.column("pred_scores"))[0].astype(np.float64),
        dt_labels=list_values(table.column("pred_labels"))[0],
        dt_velocities=_optional_vectors(table, "pred_velocities", n_dt),
        dt_attributes=_optional_names(table, "pred_attributes", n_dt),
    )
    frames = pd.DataFrame({name: table.column(name).to_pylist() for name in FRAME_COLUMNS})
    frames["global_step"] = frames["global_step"].astype("Int64")
    return FrameGroup(
        dataset=dataset, epoch=epoch, frames=frames, boxes=boxes,
        gt_features=list_features(table, "gt_features"), dt_features=list_features(table, "pred_features"),
        frame_features=vector_features(table, "frame_features"),
        dt_num_points=_optional_counts(table, "pred_num_points", n_dt),
    )


def load_detection3d_data(table: pa.Table) -> Detection3DData:
    """De-duplicate stored rows on ``(input_id, dataset_type, epoch)`` (the latest wins, as for
    every task) and group them by dataset and epoch, frames in their stored order."""
    rows = latest_rows(table)
    kept = take_rows(table, rows)
    keys = pd.DataFrame({
        "dataset": kept.column("dataset_type").to_numpy(zero_copy_only=False),
        "epoch": kept.column("epoch").to_numpy().astype(np.int64),
    })
    groups = [
        _group(take_rows(kept, np.sort(positions)), str(dataset), int(epoch))
        for (dataset, epoch), positions in keys.groupby(["dataset", "epoch"], sort=True).indices.items()
    ]
    return Detection3DData(
        groups=groups, label_names=label_names(kept), stored_rows=table.num_rows,
        duplicates_removed=table.num_rows - len(rows),
    )
