"""The columns of a 3-D detection trace row (one row per frame).

Boxes are ``[cx, cy, cz, w, l, h, yaw]``: the gravity centre in metres, the size in metres and
the heading in radians, in the sensor (LiDAR / ego) frame, as the reference SDK defines them.
Velocities are ``[vx, vy]`` in m/s (NaN where unknown, as nuScenes has some); ``num_points`` is
the number of LiDAR points inside each box; ``attributes`` are nuScenes attribute names.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.tasks._schema import (
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

BOX_WIDTH = 7
BOXES = pa.list_(pa.list_(pa.float32(), BOX_WIDTH))
VELOCITIES = pa.list_(pa.list_(pa.float32(), 2))
LABELS = pa.list_(pa.int64())
SCORES = pa.list_(pa.float32())
COUNTS = pa.list_(pa.int32())
ATTRIBUTES = pa.list_(pa.string())
PC_RANGE = pa.list_(pa.float32(), 6)
LABEL_NAMES = pa.list_(pa.string())
FEATURE_TYPES = (pa.float16(), pa.float32())

GT_COLUMNS = ("gt_boxes", "gt_labels", "gt_velocities", "gt_num_points", "gt_attributes", "gt_features")
PRED_COLUMNS = ("pred_boxes", "pred_scores", "pred_labels", "pred_velocities", "pred_num_points",
                "pred_attributes", "pred_features")


def _valid_boxes(name: str) -> ValueCheck:
    def check(table: pa.Table) -> str | None:
        values = pc.list_flatten(pc.list_flatten(table.column(name)))
        if len(values) == 0:
            return None
        boxes = values.to_numpy(zero_copy_only=False).reshape(-1, BOX_WIDTH)
        if not np.isfinite(boxes).all():
            return f"column {name!r} has NaN or infinite values"
        if (boxes[:, 3:6] < 0).any():
            return f"column {name!r} has boxes with a negative size; boxes are [cx, cy, cz, w, l, h, yaw]"
        return None

    return check


def _no_infinite_velocities(name: str) -> ValueCheck:
    def check(table: pa.Table) -> str | None:
        if name not in table.column_names:
            return None
        values = pc.list_flatten(pc.list_flatten(table.column(name))).to_numpy(zero_copy_only=False)
        return f"column {name!r} has infinite values (NaN marks an unknown velocity)" if np.isinf(values).any() else None

    return check


def _optional(name: str, expected: str, accepts) -> Column:
    return Column(name, expected, accepts, required=False)


def _feature_column(name: str) -> Column:
    return _optional(name, "list<fixed_size_list<float16 or float32>[d]>", list_of(fixed_size_list_of(*FEATURE_TYPES)))


SCHEMA = TraceSchema(
    columns=(
        Column("gt_boxes", "list<fixed_size_list<float32>[7]> [cx, cy, cz, w, l, h, yaw]", exactly(BOXES)),
        Column("gt_labels", "list<int64>", exactly(LABELS)),
        _optional("gt_velocities", "list<fixed_size_list<float32>[2]> [vx, vy]", exactly(VELOCITIES)),
        _optional("gt_num_points", "list<int32>", exactly(COUNTS)),
        _optional("gt_attributes", "list<string>", exactly(ATTRIBUTES)),
        _feature_column("gt_features"),
        Column("pred_boxes", "list<fixed_size_list<float32>[7]> [cx, cy, cz, w, l, h, yaw]", exactly(BOXES)),
        Column("pred_scores", "list<float32>", exactly(SCORES)),
        Column("pred_labels", "list<int64>", exactly(LABELS)),
        _optional("pred_velocities", "list<fixed_size_list<float32>[2]> [vx, vy]", exactly(VELOCITIES)),
        _optional("pred_num_points", "list<int32>", exactly(COUNTS)),
        _optional("pred_attributes", "list<string>", exactly(ATTRIBUTES)),
        _feature_column("pred_features"),
        _optional("frame_features", "fixed_size_list<float16 or float32>[d]", fixed_size_list_of(*FEATURE_TYPES)),
        Column("pc_range", "fixed_size_list<float32>[6] [x_min, y_min, z_min, x_max, y_max, z_max]",
               exactly(PC_RANGE), nullable=True),
        *THRESHOLD_COLUMNS,
        Column("label_names", "list<string> (the name of class i at position i)", exactly(LABEL_NAMES),
               nullable=True, required=False),
    ),
    checks=(
        same_lengths(*GT_COLUMNS),
        same_lengths(*PRED_COLUMNS),
        _valid_boxes("gt_boxes"),
        _valid_boxes("pred_boxes"),
        nonnegative_items("gt_labels"),
        nonnegative_items("pred_labels"),
        finite_items("pred_scores"),
        nonnegative_items("gt_num_points"),
        nonnegative_items("pred_num_points"),
        _no_infinite_velocities("gt_velocities"),
        _no_infinite_velocities("pred_velocities"),
    ),
)
