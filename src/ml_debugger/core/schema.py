"""Columns every trace row carries, whatever the task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

COMMON_FIELDS = (
    pa.field("model_name", pa.string(), nullable=False),
    pa.field("version_name", pa.string(), nullable=False),
    pa.field("dataset_type", pa.string(), nullable=False),
    pa.field("epoch", pa.int32(), nullable=False),
    pa.field("global_step", pa.int64()),
    pa.field("final_validation", pa.bool_()),
    pa.field("input_id", pa.string(), nullable=False),
    pa.field("input_hash", pa.string(), nullable=False),
    pa.field("rank", pa.int32(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
)


@dataclass(frozen=True)
class RowContext:
    """What a whole recorded batch shares: who traced it, where and when."""

    model_name: str
    version_name: str
    dataset_type: str
    epoch: int
    global_step: int | None
    final_validation: bool | None
    rank: int
    run_id: str
    timestamp: datetime


def common_columns(contexts: list[RowContext], counts: list[int], input_ids: np.ndarray,
                   input_hashes: np.ndarray) -> dict[str, pa.Array]:
    """The common columns of consecutive batches: batch ``i`` has ``counts[i]`` rows and ``contexts[i]``."""
    types = {f.name: f.type for f in COMMON_FIELDS}

    def per_batch(name: str) -> pa.Array:
        values = pa.array([getattr(c, name) for c in contexts], type=types[name])
        return values.take(pa.array(np.repeat(np.arange(len(contexts)), counts)))

    columns = {name: per_batch(name) for name in types if name not in ("input_id", "input_hash")}
    columns["input_id"] = pa.array(input_ids, type=pa.string())
    columns["input_hash"] = pa.array(input_hashes, type=pa.string())
    return {name: columns[name] for name in types}


def fixed_size_list(matrix: np.ndarray, value_type: pa.DataType) -> pa.FixedSizeListArray:
    """A ``(n, d)`` matrix as an Arrow fixed-size-list column without copying row by row."""
    n, d = matrix.shape
    values = pa.array(np.ascontiguousarray(matrix).reshape(n * d), type=value_type)
    return pa.FixedSizeListArray.from_arrays(values, d)
