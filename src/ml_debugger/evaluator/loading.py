"""From stored classification traces to :class:`EvalData`: de-duplication, probabilities, features."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from ml_debugger.evaluator._data import EvalData
from ml_debugger.exceptions import StoreError

logger = logging.getLogger(__name__)

DEDUP_KEY = ["input_id", "dataset", "epoch"]


@dataclass(frozen=True)
class LoadReport:
    """What loading did to the stored rows."""

    stored_rows: int
    duplicates_removed: int
    nonfinite_removed: int
    features: bool


def _matrix(column: pa.ChunkedArray, rows: np.ndarray, field: str) -> np.ndarray:
    array = column.combine_chunks()
    if not pa.types.is_fixed_size_list(array.type):
        raise StoreError(f"stored column {field!r} has type {array.type}; expected a fixed-size list")
    width = array.type.list_size
    values = array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), width)
    return values[rows]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def latest_rows(table: pa.Table) -> np.ndarray:
    """Positions of the rows to keep: one per ``(input_id, dataset_type, epoch)``, the latest.

    Several ranks, distributed-sampler padding, re-runs and several validations in one epoch
    leave several rows of a unit; the one with the highest ``global_step``, then the newest
    ``timestamp``, then the last stored, is kept. Positions are sorted by dataset, epoch and
    stored order. Every task de-duplicates this way.
    """
    meta = pd.DataFrame({
        "input_id": table.column("input_id").to_numpy(zero_copy_only=False),
        "dataset": table.column("dataset_type").to_numpy(zero_copy_only=False),
        "epoch": table.column("epoch").to_numpy().astype(np.int64),
        "global_step": pd.array(table.column("global_step").to_pylist(), dtype="Int64"),
        "timestamp": table.column("timestamp").to_numpy(),
    })
    meta["_row"] = np.arange(len(meta))
    meta = meta.sort_values(["global_step", "timestamp", "_row"], na_position="first", kind="stable")
    kept = meta.drop_duplicates(DEDUP_KEY, keep="last").sort_values(["dataset", "epoch", "_row"], kind="stable")
    return kept["_row"].to_numpy()


def load_eval_data(table: pa.Table) -> tuple[EvalData, LoadReport]:
    """De-duplicate stored rows (`latest_rows`) and turn them into analysis-ready arrays.

    Rows whose outputs are NaN or inf are removed with a warning; the count is kept in the report.
    """
    rows = latest_rows(table)
    kept = pd.DataFrame({
        "input_id": table.column("input_id").to_numpy(zero_copy_only=False)[rows],
        "input_hash": table.column("input_hash").to_numpy(zero_copy_only=False)[rows],
        "dataset": table.column("dataset_type").to_numpy(zero_copy_only=False)[rows],
        "epoch": table.column("epoch").to_numpy().astype(np.int64)[rows],
        "global_step": pd.array(table.column("global_step").to_pylist(), dtype="Int64")[rows],
        "label": table.column("label").to_numpy().astype(np.int64)[rows],
    })

    scores = _matrix(table.column("scores"), rows, "scores").astype(np.float64)
    score_types = table.column("score_type").to_numpy(zero_copy_only=False)[rows].astype(str)
    finite = np.isfinite(scores).all(axis=1)
    if not finite.all():
        warnings.warn(
            f"ml-debugger: {int((~finite).sum())} traced rows have NaN or infinite model outputs and are "
            "left out of the evaluation (their count is in the result's metadata)",
            stacklevel=3,
        )
    probabilities = scores.copy()
    logit_rows = (score_types == "logits") & finite
    probabilities[logit_rows] = softmax(scores[logit_rows])

    features = None
    if "features" in table.column_names and table.column("features").null_count == 0:
        features = _matrix(table.column("features"), rows, "features").astype(np.float32)
        bad = ~np.isfinite(features)
        if bad.any():
            warnings.warn(
                f"ml-debugger: {int(bad.any(axis=1).sum())} rows have NaN or infinite features; "
                "those values are read as 0",
                stacklevel=3,
            )
            features[bad] = 0.0
    elif "features" in table.column_names:
        warnings.warn(
            "ml-debugger: some traced rows have no features, so feature-space signals are not computed",
            stacklevel=3,
        )

    samples = kept[finite].reset_index(drop=True)
    data = EvalData(
        samples=samples,
        probabilities=probabilities[finite],
        features=None if features is None else features[finite],
    )
    report = LoadReport(
        stored_rows=table.num_rows,
        duplicates_removed=table.num_rows - len(rows),
        nonfinite_removed=int((~finite).sum()),
        features=features is not None,
    )
    return data, report
