"""Arrow list columns from per-row numpy arrays, as the tasks' batches build them, and back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.core.schema import fixed_size_list

THRESHOLD = pa.float32()
MAX_DETECTIONS = pa.int32()


@dataclass(frozen=True)
class Thresholds:
    """The post-processing settings the predictions were made with (``None``: not applied/unknown)."""

    score_thresh: float | None = None
    iou_thresh: float | None = None
    max_detections: int | None = None


def offsets(counts: Sequence[int]) -> pa.Array:
    """Arrow list offsets of rows holding ``counts`` items."""
    return pa.array(np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int32))


def list_column(arrays: Sequence[np.ndarray], value_type: pa.DataType) -> pa.ListArray:
    """One list per row from per-row 1-D arrays."""
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(offsets([len(a) for a in arrays]), pa.array(values, type=value_type))


def vector_list_column(arrays: Sequence[np.ndarray], width: int) -> pa.ListArray:
    """One list of fixed-size float32 vectors per row (e.g. boxes) from per-row ``(n_i, width)`` arrays."""
    values = np.concatenate(arrays).astype(np.float32) if arrays else np.zeros((0, width), np.float32)
    return pa.ListArray.from_arrays(offsets([len(a) for a in arrays]), fixed_size_list(values, pa.float32()))


def feature_list_column(arrays: Sequence[np.ndarray | None], counts: Sequence[int]) -> pa.ListArray:
    """One list of feature vectors per row (every row has them: validated by the batch builders)."""
    values = np.concatenate(arrays)
    return pa.ListArray.from_arrays(offsets(counts), fixed_size_list(values, pa.from_numpy_dtype(values.dtype)))


def threshold_columns(thresholds: Sequence[Thresholds], rows: Sequence[int]) -> dict[str, pa.Array]:
    """``score_thresh``, ``iou_thresh`` and ``max_detections`` of consecutive batches of ``rows`` rows."""
    per_row = pa.array(np.repeat(np.arange(len(thresholds)), rows))
    out = {}
    for name, data_type in (("score_thresh", THRESHOLD), ("iou_thresh", THRESHOLD), ("max_detections", MAX_DETECTIONS)):
        out[name] = pa.array([getattr(t, name) for t in thresholds], type=data_type).take(per_row)
    return out


def take_rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table.take(rows)``; a zero-copy slice when ``rows`` are consecutive and increasing."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (np.diff(rows) == 1).all():
        return table.slice(int(rows[0]), len(rows))
    return table.take(pa.array(rows, type=pa.int64()))


def list_values(column: pa.ChunkedArray | pa.Array, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The items of a list column as one numpy array (``(n, width)`` for lists of fixed-size
    vectors) and the number of items of each row."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    counts = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(array)
    if width is not None:
        values = pc.list_flatten(values)
    numbers = values.to_numpy(zero_copy_only=False)
    return (numbers.reshape(-1, width) if width is not None else numbers), counts


def list_features(table: pa.Table, name: str) -> np.ndarray | None:
    """The per-box feature vectors of list column ``name`` as float32 ``(n_boxes, d)``, or None
    when the table lacks the column or some rows have none."""
    if name not in table.column_names or table.column(name).null_count:
        return None
    array = table.column(name).combine_chunks()
    width = array.type.value_type.list_size
    return pc.list_flatten(pc.list_flatten(array)).to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32)


def vector_features(table: pa.Table, name: str) -> np.ndarray | None:
    """One feature vector per row (fixed-size list column ``name``) as float32, or None."""
    if name not in table.column_names or table.column(name).null_count:
        return None
    array = table.column(name).combine_chunks()
    return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), -1).astype(np.float32)


def label_names(table: pa.Table) -> dict[int, str]:
    """Class names from the ``label_names`` column (position = class id; later rows win)."""
    if "label_names" not in table.column_names:
        return {}
    names: dict[int, str] = {}
    for row in pc.unique(pc.binary_join(table.column("label_names"), "\x1f")).to_pylist():
        for label, name in enumerate((row or "").split("\x1f")):
            if name:
                names[label] = name
    return names


def preview_column(batches: Sequence[object]) -> pa.Array:
    """The ``preview`` column of batches that all carry ``previews`` (one JPEG per row)."""
    return pa.array([image for batch in batches for image in batch.previews], type=pa.binary())
