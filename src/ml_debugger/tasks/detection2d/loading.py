"""From stored 2-D detection rows to one :class:`DetectionSet` per dataset and epoch, with the
images, the per-box features and the class names beside it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.evaluator.loading import latest_rows
from ml_debugger.tasks.detection2d.detection_set import DetectionSet

IMAGE_COLUMNS = ("input_id", "input_hash", "global_step", "image_width", "image_height")


@dataclass(frozen=True, eq=False)
class ImageGroup:
    """The images of one dataset at one epoch and everything traced on them.

    Attributes:
        dataset, epoch: which split and epoch.
        images: one row per image (``IMAGE_COLUMNS``), in the order of ``boxes``' image index.
        boxes: ground truth and detections of those images.
        gt_features, dt_features: ``(n_gt, d)`` / ``(n_dt, d)`` per-box features in their stored
            dtype (float16 or float32), or None.
        image_features: ``(n_images, d)`` one vector per image (stored dtype), or None.
        thresholds: the post-processing settings of the first image (score, iou, max detections).
    """

    dataset: str
    epoch: int
    images: pd.DataFrame
    boxes: DetectionSet
    gt_features: np.ndarray | None
    dt_features: np.ndarray | None
    image_features: np.ndarray | None
    thresholds: dict[str, float | int | None]


@dataclass(frozen=True)
class DetectionData:
    """The de-duplicated traces of a version, grouped, and what loading did."""

    groups: list[ImageGroup]
    label_names: dict[int, str]
    stored_rows: int
    duplicates_removed: int


def _flat(column: pa.ChunkedArray, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Values and per-row counts of a list column (of fixed-size lists when ``width`` is given)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(array)
    if width is not None:
        values = pc.list_flatten(values)
    numbers = values.to_numpy(zero_copy_only=False)
    return (numbers.reshape(-1, width) if width is not None else numbers), counts


def _features(table: pa.Table, name: str) -> np.ndarray | None:
    """``(n_boxes, d)`` features in their stored dtype (float16 or float32; the units take the
    rows they need and widen them, which saves converting every detection's vector)."""
    if name not in table.column_names or table.column(name).null_count:
        return None
    array = table.column(name).combine_chunks()
    width = array.type.value_type.list_size
    return pc.list_flatten(pc.list_flatten(array)).to_numpy(zero_copy_only=False).reshape(-1, width)


def _images(table: pa.Table) -> pd.DataFrame:
    """One row per image: ``IMAGE_COLUMNS``, ids as strings, sizes as int64, global_step as Int64."""
    images = pd.DataFrame({
        "input_id": table.column("input_id").to_pandas(),
        "input_hash": table.column("input_hash").to_pandas(),
        "global_step": pd.array(table.column("global_step").to_pylist(), dtype="Int64"),
        "image_width": table.column("image_width").to_numpy().astype(np.int64),
        "image_height": table.column("image_height").to_numpy().astype(np.int64),
    })
    return images[list(IMAGE_COLUMNS)]


def _group(table: pa.Table, dataset: str, epoch: int) -> ImageGroup:
    gt_boxes, gt_counts = _flat(table.column("gt_boxes"), 4)
    dt_boxes, dt_counts = _flat(table.column("pred_boxes"), 4)
    n = table.num_rows
    boxes = DetectionSet(
        n_images=n,
        gt_image=np.repeat(np.arange(n), gt_counts),
        gt_boxes=gt_boxes,  # float32 as stored; DetectionSet widens to float64 (one copy)
        gt_labels=_flat(table.column("gt_labels"))[0],
        gt_iscrowd=_flat(table.column("gt_iscrowd"))[0].astype(bool),
        gt_area=_flat(table.column("gt_area"))[0],
        dt_image=np.repeat(np.arange(n), dt_counts),
        dt_boxes=dt_boxes,
        dt_scores=_flat(table.column("pred_scores"))[0],
        dt_labels=_flat(table.column("pred_labels"))[0],
    )
    images = _images(table)
    image_features = None
    if "image_features" in table.column_names and table.column("image_features").null_count == 0:
        array = table.column("image_features").combine_chunks()
        image_features = array.flatten().to_numpy(zero_copy_only=False).reshape(n, -1)
    first = {name: table.column(name)[0].as_py() for name in ("score_thresh", "iou_thresh", "max_detections")}
    return ImageGroup(
        dataset=dataset, epoch=epoch, images=images, boxes=boxes,
        gt_features=_features(table, "gt_features"), dt_features=_features(table, "pred_features"),
        image_features=image_features, thresholds=first,
    )


def _label_names(column: pa.ChunkedArray | None) -> dict[int, str]:
    """Class names from the ``label_names`` lists: the distinct non-empty lists in sorted order,
    each naming class ``i`` at position ``i`` (a later list overrides an earlier one's names).

    Every row usually repeats the same list, so the distinct lists are found on integer codes of
    the names (rows equal to a found list are set aside, one comparison per distinct list)
    rather than by converting every row to Python.
    """
    if column is None:
        return {}
    array = column.combine_chunks()
    array = array.filter(pc.fill_null(pc.greater(pc.list_value_length(array), 0), False))
    if not len(array):
        return {}
    lengths = pc.list_value_length(array).to_numpy().astype(np.int64)
    encoded = pc.list_flatten(array).dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    words = encoded.dictionary.to_pylist()
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    distinct = set()
    for length in np.unique(lengths):
        rows = codes[starts[lengths == length][:, None] + np.arange(length)]
        while len(rows):
            distinct.add(tuple(words[c] if c >= 0 else None for c in rows[0].tolist()))
            rows = rows[(rows != rows[0]).any(axis=1)]
    names: dict[int, str] = {}
    for row in sorted(distinct):
        for label, name in enumerate(row):
            if name:
                names[label] = str(name)
    return names


def load_detection_data(table: pa.Table) -> DetectionData:
    """De-duplicate stored rows on ``(input_id, dataset_type, epoch)`` (the latest wins, as for
    every task) and group them by dataset and epoch, images in their stored order."""
    rows = latest_rows(table)
    datasets = table.column("dataset_type").to_numpy(zero_copy_only=False)[rows]
    epochs = table.column("epoch").to_numpy().astype(np.int64)[rows]
    keys = pd.DataFrame({"dataset": datasets, "epoch": epochs})
    groups = [
        _group(_rows(table, rows[np.sort(positions)]), str(dataset), int(epoch))
        for (dataset, epoch), positions in keys.groupby(["dataset", "epoch"], sort=True).indices.items()
    ]
    names = _rows(table.column("label_names"), rows) if "label_names" in table.column_names else None
    return DetectionData(
        groups=groups, label_names=_label_names(names), stored_rows=table.num_rows,
        duplicates_removed=table.num_rows - len(rows),
    )


def _rows(table: pa.Table | pa.ChunkedArray, rows: np.ndarray) -> pa.Table | pa.ChunkedArray:
    """``table.take(rows)``; a zero-copy slice when ``rows`` are consecutive (no duplicate, and
    the group's parts are stored one after the other)."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (np.diff(rows) == 1).all():
        return table.slice(int(rows[0]), len(rows))
    return table.take(pa.array(rows))
