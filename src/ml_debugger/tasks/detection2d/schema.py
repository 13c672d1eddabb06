"""The columns of a 2-D detection trace row (one row per image).

Boxes are ``[x1, y1, x2, y2]`` in pixels of the original input image; lists of one image's
objects are Arrow list columns, so the parts stay readable by DuckDB, Polars and Spark.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.tasks._schema import (
    PREVIEW_COLUMN,
    THRESHOLD_COLUMNS,
    Column,
    TraceSchema,
    ValueCheck,
    exactly,
    finite_items,
    fixed_size_list_of,
    list_of,
    nonnegative_items,
    same_lengths,
)

BOX = pa.list_(pa.float32(), 4)
BOXES = pa.list_(BOX)
LABELS = pa.list_(pa.int64())
SCORES = pa.list_(pa.float32())
FLAGS = pa.list_(pa.bool_())
AREAS = pa.list_(pa.float32())
FEATURE_TYPES = (pa.float16(), pa.float32())
IMAGE_SIZE = pa.int32()
LABEL_NAMES = pa.list_(pa.string())

GT_COLUMNS = ("gt_boxes", "gt_labels", "gt_iscrowd", "gt_area")
PRED_COLUMNS = ("pred_boxes", "pred_scores", "pred_labels")


def _valid_boxes(name: str) -> ValueCheck:
    def check(table: pa.Table) -> str | None:
        values = pc.list_flatten(pc.list_flatten(table.column(name)))
        if len(values) == 0:
            return None
        if not pc.all(pc.is_finite(values)).as_py():
            return f"column {name!r} has NaN or infinite coordinates"
        corners = values.to_numpy().reshape(-1, 4)
        if (corners[:, 2] < corners[:, 0]).any() or (corners[:, 3] < corners[:, 1]).any():
            return f"column {name!r} has boxes with x2 < x1 or y2 < y1; boxes are [x1, y1, x2, y2]"
        return None

    return check


def _positive_sizes(table: pa.Table) -> str | None:
    for name in ("image_width", "image_height"):
        smallest = pc.min(table.column(name)).as_py()
        if smallest is not None and smallest <= 0:
            return f"column {name!r} has values <= 0 ({smallest}); expected the image size in pixels"
    return None


def _feature_column(name: str, expected: str, required: bool = False) -> Column:
    return Column(name, expected, list_of(fixed_size_list_of(*FEATURE_TYPES)), required=required)


SCHEMA = TraceSchema(
    columns=(
        Column("image_width", "int32 pixels", exactly(IMAGE_SIZE)),
        Column("image_height", "int32 pixels", exactly(IMAGE_SIZE)),
        Column("gt_boxes", "list<fixed_size_list<float32>[4]> xyxy", exactly(BOXES)),
        Column("gt_labels", "list<int64>", exactly(LABELS)),
        Column("gt_iscrowd", "list<bool>", exactly(FLAGS)),
        Column("gt_area", "list<float32>", exactly(AREAS)),
        Column("pred_boxes", "list<fixed_size_list<float32>[4]> xyxy", exactly(BOXES)),
        Column("pred_scores", "list<float32>", exactly(SCORES)),
        Column("pred_labels", "list<int64>", exactly(LABELS)),
        _feature_column("gt_features", "list<fixed_size_list<float16 or float32>[d]>"),
        _feature_column("pred_features", "list<fixed_size_list<float16 or float32>[d]>"),
        Column("image_features", "fixed_size_list<float16 or float32>[d]", fixed_size_list_of(*FEATURE_TYPES),
               required=False),
        *THRESHOLD_COLUMNS,
        Column("label_names", "list<string> (the name of class i at position i)", exactly(LABEL_NAMES),
               nullable=True, required=False),
        PREVIEW_COLUMN,
    ),
    checks=(
        _positive_sizes,
        same_lengths(*GT_COLUMNS, "gt_features"),
        same_lengths(*PRED_COLUMNS, "pred_features"),
        _valid_boxes("gt_boxes"),
        _valid_boxes("pred_boxes"),
        nonnegative_items("gt_labels"),
        nonnegative_items("pred_labels"),
        nonnegative_items("gt_area"),
        finite_items("gt_area"),
        finite_items("pred_scores"),
    ),
)
