"""The columns of a classification trace row (one row per sample)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ml_debugger.tasks._schema import PREVIEW_COLUMN, Column, TraceSchema, exactly, fixed_size_list_of, string_like

SCORE_TYPES = ("logits", "probabilities")
FEATURE_TYPES = (pa.float16(), pa.float32())

LABEL = pa.field("label", pa.int64(), nullable=False)
SCORES_VALUE_TYPE = pa.float32()
LOSS = pa.field("loss", pa.float32(), nullable=False)


def _labels_in_range(table: pa.Table) -> str | None:
    labels = table.column("label")
    n_classes = table.schema.field("scores").type.list_size
    low, high = pc.min(labels).as_py(), pc.max(labels).as_py()
    if low is not None and (low < 0 or high >= n_classes):
        return (
            f"column 'label' has values in [{low}, {high}]; expected class indices in [0, {n_classes}) "
            f"for scores of {n_classes} classes"
        )
    return None


def _known_score_types(table: pa.Table) -> str | None:
    found = set(pc.unique(table.column("score_type").cast(pa.string())).to_pylist())
    unknown = sorted(found - set(SCORE_TYPES))
    return None if not unknown else f"column 'score_type' has {unknown}; expected one of {list(SCORE_TYPES)}"


SCHEMA = TraceSchema(
    columns=(
        Column(LABEL.name, "int64 class index", exactly(LABEL.type)),
        Column("scores", "fixed_size_list<float32>[n_classes]", fixed_size_list_of(SCORES_VALUE_TYPE)),
        Column("score_type", "string ('logits' or 'probabilities')", string_like),
        Column(LOSS.name, "float32", exactly(LOSS.type)),
        Column("features", "fixed_size_list<float16 or float32>[d]", fixed_size_list_of(*FEATURE_TYPES),
               required=False),
        PREVIEW_COLUMN,
    ),
    checks=(_labels_in_range, _known_score_types),
)
