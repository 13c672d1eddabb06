"""Shared helpers of the detection tracer tests: rows read back from the store, checked against
the detection2d schema, and what every family's rows must satisfy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml_debugger.store import LocalStore
from ml_debugger.tasks import get_task

# Two images of different sizes: the first with two objects, the second with none.
GT_LIST = [
    {"boxes": [[4.0, 6.0, 30.0, 40.0], [40.0, 10.0, 60.0, 30.0]], "labels": [1, 2]},
    {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, dtype=np.int64)},
]


def read_rows(store: LocalStore, model_name: str = "m") -> pd.DataFrame:
    """Every committed row of ``model_name``/v1, after checking the table against the schema."""
    table = store.read_traces(model_name, "v1", None)
    get_task("detection2d").schema.check(table)
    return table.to_pandas()


def boxes_of(cell) -> np.ndarray:
    return np.stack(cell).astype(np.float64) if len(cell) else np.zeros((0, 4))


def check_rows(rows: pd.DataFrame, sizes: list[tuple[int, int]], thresholds: tuple) -> None:
    """Rows in the images' order: sizes, boxes inside the image and xyxy, thresholds recorded."""
    assert rows[["image_width", "image_height"]].to_numpy().tolist() == [list(s) for s in sizes]
    for (width, height), cell in zip(sizes, rows["pred_boxes"]):
        boxes = boxes_of(cell)
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= width).all() and (boxes[:, [1, 3]] <= height).all()
    recorded = rows[["score_thresh", "iou_thresh", "max_detections"]].iloc[0].tolist()
    expected = [None if v is None else v for v in thresholds]
    for got, want in zip(recorded, expected):
        assert (pd.isna(got) and want is None) or got == pytest.approx(want, rel=1e-6)
    assert [len(b) for b in rows["gt_boxes"]] == [len(t["boxes"]) for t in GT_LIST][: len(rows)]
