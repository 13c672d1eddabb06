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


def common_columns(context: RowContext, input_ids: np.ndarray, input_hashes: np.ndarray) -> dict[str, pa.Array]:
    """The common columns of a batch of ``len(input_ids)`` rows."""
    n = len(input_ids)
    types = {f.name: f.type for f in COMMON_FIELDS}

    def repeat(name: str, value: object) -> pa.Array:
        return pa.repeat(pa.scalar(value, type=types[name]), n)

    return {
        "model_name": repeat("model_name", context.model_name),
        "version_name": repeat("version_name", context.version_name),
        "dataset_type": repeat("dataset_type", context.dataset_type),
        "epoch": repeat("epoch", context.epoch),
        "global_step": repeat("global_step", context.global_step),
        "final_validation": repeat("final_validation", context.final_validation),
        "input_id": pa.array(input_ids, type=pa.string()),
        "input_hash": pa.array(input_hashes, type=pa.string()),
        "rank": repeat("rank", context.rank),
        "run_id": repeat("run_id", context.run_id),
        "timestamp": repeat("timestamp", context.timestamp),
    }


def fixed_size_list(matrix: np.ndarray, value_type: pa.DataType) -> pa.FixedSizeListArray:
    """A ``(n, d)`` matrix as an Arrow fixed-size-list column without copying row by row."""
    n, d = matrix.shape
    values = pa.array(np.ascontiguousarray(matrix).reshape(n * d), type=value_type)
    return pa.FixedSizeListArray.from_arrays(values, d)
